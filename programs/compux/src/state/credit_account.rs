use anchor_lang::prelude::*;

use super::Settlement;
use crate::constants::SECONDS_PER_DAY;
use crate::errors::CompuxError;

/// Standing instruction to buy `refill_credits` whenever the vault falls below `threshold`,
/// paid from `source` through an SPL delegate approval granted to the market PDA.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct AutoRefill {
    /// The owner's quote token account; `Pubkey::default()` when auto-refill is off.
    pub source: Pubkey,
    pub threshold: u64,
    pub refill_credits: u64,
    /// Slippage bound for one refill, in quote units.
    pub max_quote_per_refill: u64,
    /// The fewest credits (bonus included) one refill may deliver.
    pub min_credits_per_refill: u64,
    /// Total quote the auto-refill may spend; `spent` counts towards it.
    pub cap_quote: u64,
    pub spent_quote: u64,
}

impl AutoRefill {
    pub fn enabled(&self) -> bool {
        self.source != Pubkey::default() && self.refill_credits > 0
    }
}

/// Credits the owner announced it will move out of its vault (`announce_transfer`): from
/// the announcement on the relayer spends none of them, and they may move only from
/// `ready_at`, once the usage charged before the relayer saw the notice has been burned.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct TransferNotice {
    pub amount: u64,
    pub ready_at: i64,
}

/// The owner's ceiling on what the relayer may burn from the vault per UTC day: a relayer
/// key that leaks burns no more than this. 0: no ceiling. Raising (or removing) it takes
/// effect at once; lowering waits the market's transfer notice, like credits leaving the
/// vault, because usage the relayer charged under the old ceiling must still burn: the
/// relayer stops admitting above the lower ceiling as soon as it sees it announced.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct BurnCeiling {
    pub per_day: u64,
    /// The UTC day (days since the epoch) `burned` counts.
    pub day: i64,
    pub burned: u64,
    /// A lower ceiling announced, and when it applies (0: none pending).
    pub lower_to: u64,
    pub lower_at: i64,
}

/// The UTC day of `unix_timestamp` (days since the epoch; 0 before it). Unsigned division:
/// SBF has no signed one.
pub fn utc_day(unix_timestamp: i64) -> i64 {
    (u64::try_from(unix_timestamp).unwrap_or(0) / SECONDS_PER_DAY as u64) as i64
}

impl BurnCeiling {
    /// The ceiling in force at `now` (0: none).
    pub fn in_force(&self, now: i64) -> u64 {
        if self.lower_at != 0 && now >= self.lower_at {
            self.lower_to
        } else {
            self.per_day
        }
    }

    /// The most that may still burn today at `now` under the ceiling in force and the
    /// one announced (what the relayer admits against); `u64::MAX` without a ceiling.
    pub fn room(&self, now: i64) -> u64 {
        let announced = if self.lower_at != 0 { self.lower_to } else { 0 };
        let ceiling = [self.in_force(now), announced].into_iter().filter(|c| *c > 0).min().unwrap_or(0);
        if ceiling == 0 {
            return u64::MAX;
        }
        let burned = if self.day == utc_day(now) { self.burned } else { 0 };
        ceiling.saturating_sub(burned)
    }

    /// Sets the ceiling to `per_day` at `now`; a lower one (or a first one) applies from
    /// `now + notice_secs`. Returns when the ceiling in force becomes `per_day`.
    pub fn set(&mut self, per_day: u64, now: i64, notice_secs: i64) -> Result<i64> {
        self.apply(now);
        let raises = per_day == 0 || (self.per_day != 0 && per_day >= self.per_day);
        if raises {
            (self.per_day, self.lower_to, self.lower_at) = (per_day, 0, 0);
            return Ok(now);
        }
        let at = now.checked_add(notice_secs).ok_or(CompuxError::MathOverflow)?;
        (self.lower_to, self.lower_at) = (per_day, at);
        Ok(at)
    }

    /// Counts a burn of `amount` at `now` against the ceiling in force.
    pub fn burn(&mut self, amount: u64, now: i64) -> Result<()> {
        self.apply(now);
        let today = utc_day(now);
        if self.day != today {
            (self.day, self.burned) = (today, 0);
        }
        let burned = self.burned.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        require!(self.per_day == 0 || burned <= self.per_day, CompuxError::BurnCeilingExceeded);
        self.burned = burned;
        Ok(())
    }

    /// Makes an announced lower ceiling the one in force once its time has come.
    fn apply(&mut self, now: i64) {
        if self.lower_at != 0 && now >= self.lower_at {
            (self.per_day, self.lower_to, self.lower_at) = (self.lower_to, 0, 0);
        }
    }
}

/// One per (market, owner). Seeds: [CREDIT_ACCOUNT_SEED, market, owner]. Its vault
/// (seeds [CREDIT_VAULT_SEED, credit_account]) is a token account of the credit mint whose
/// authority is the market PDA: standard credits move only through this program.
#[account]
#[derive(InitSpace, Debug)]
pub struct CreditAccount {
    pub market: Pubkey,
    pub owner: Pubkey,
    pub vault: Pubkey,
    pub bump: u8,
    pub vault_bump: u8,
    pub settlement: Settlement,
    /// Lifetime counters (per account, so purchases and settlements never write-lock the
    /// market).
    pub total_quote_paid: u64,
    pub total_purchased: u64,
    pub total_bonus: u64,
    pub total_reserved_claimed: u64,
    pub total_transferred_in: u64,
    pub total_transferred_out: u64,
    /// Nonce of the next reservation (seeds of `Reservation`).
    pub reservation_count: u64,
    pub auto_refill: AutoRefill,
    /// Credits announced to leave the vault (`transfer_credits` moves only these).
    pub notice: TransferNotice,
    /// The owner's daily ceiling on what `settle` may burn.
    pub burn_ceiling: BurnCeiling,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOTICE: i64 = 900;

    #[derive(Clone, Debug)]
    enum Step {
        Set(u64),
        Burn(u64),
        Wait(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..50).prop_map(Step::Set),
            (1u64..30).prop_map(Step::Burn),
            (0i64..2 * SECONDS_PER_DAY).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Whatever the owner sets and whenever: a burn that lands leaves the day's burns
        /// within the ceiling in force, and a lower ceiling never refuses, before its
        /// notice has passed, a burn the ceiling in force when it was announced allowed.
        #[test]
        fn burns_stay_within_the_ceiling_and_a_lowering_waits_its_notice(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut c = BurnCeiling::default();
            let mut now = 1_767_225_600;
            // The ceiling each lowering replaced, until it applies: (old, applies at).
            let mut shielded: Option<(u64, i64)> = None;
            for s in steps {
                match s {
                    Step::Set(v) => {
                        let before = c.in_force(now);
                        let at = c.set(v, now, NOTICE).unwrap();
                        prop_assert!(at == now || at == now + NOTICE);
                        shielded = (at > now).then_some((before, at));
                    }
                    Step::Burn(a) => {
                        let today_before = if c.day == utc_day(now) { c.burned } else { 0 };
                        let ok = c.burn(a, now).is_ok();
                        let ceiling = c.in_force(now);
                        if ok {
                            prop_assert!(ceiling == 0 || c.burned <= ceiling);
                        } else if let Some((old, at)) = shielded {
                            let old_allowed = old == 0 || today_before + a <= old;
                            prop_assert!(!(now < at && old_allowed), "a lowering refused a burn before its notice");
                        }
                    }
                    Step::Wait(d) => now += d,
                }
            }
        }
    }
}
