use anchor_lang::prelude::*;

use super::{sub_from, FinancingPolicy, Market, Settlement};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::math::loan::Loan;
use crate::math::mul_div_floor;

/// What happens to released credits the borrower did not use when a repaid facility closes
/// at the end of its financing period.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum UnusedCredits {
    /// They become standard credits in the borrower's credit account.
    Convert,
    /// They are burned.
    Forfeit,
}

/// A lender's offer, all integers. Amounts in quote base units, rates in basis points.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct FacilityTerms {
    /// Only this wallet may accept.
    pub borrower: Pubkey,
    pub principal: u64,
    pub apr_bps: u16,
    pub installments: u16,
    pub period_secs: i64,
    /// Credits minted = principal at the market's base price x this (>= 10_000), at most
    /// the market's cap for the principal.
    pub credit_multiplier_bps: u16,
    /// Share of the credits released at acceptance.
    pub upfront_bps: u16,
    /// Equal top-ups of the rest, tranche `k` due `k` periods after acceptance.
    pub tranches: u16,
    /// After a missed due date: delinquent once this passes, and a late fee is charged.
    pub grace_secs: i64,
    /// After a missed due date: defaulted once this passes (>= grace).
    pub default_after_secs: i64,
    pub late_fee_bps: u16,
    pub unused_at_close: UnusedCredits,
    /// The lowest market recovery rate the lender offers at: the rate is the market's and
    /// is recorded at acceptance, so an admin change between offer and acceptance fails
    /// the acceptance rather than cutting the lender's recovery.
    pub min_recovery_rate_bps: u16,
}

impl FacilityTerms {
    pub fn validate(&self) -> Result<()> {
        require!(self.principal > 0, CompuxError::ZeroAmount);
        require!(
            (1..=MAX_INSTALLMENTS).contains(&self.installments)
                && (MIN_PERIOD_SECS..=MAX_PERIOD_SECS).contains(&self.period_secs)
                && self.apr_bps <= MAX_APR_BPS,
            CompuxError::InvalidFacilityTerms
        );
        require!(
            (MIN_CREDIT_MULTIPLIER_BPS..=MAX_CREDIT_MULTIPLIER_BPS).contains(&self.credit_multiplier_bps)
                && self.upfront_bps as u64 <= BPS
                && self.tranches <= self.installments
                && (self.tranches > 0 || self.upfront_bps as u64 == BPS),
            CompuxError::InvalidReleaseSchedule
        );
        require!(
            self.grace_secs >= 0
                && self.default_after_secs >= self.grace_secs
                && self.late_fee_bps as u64 <= BPS
                && self.min_recovery_rate_bps as u64 <= BPS,
            CompuxError::InvalidFacilityTerms
        );
        require_keys_neq!(self.borrower, Pubkey::default(), CompuxError::InvalidFacilityTerms);
        Ok(())
    }

    /// The market's limits, checked at offer and again at acceptance (the admin may have
    /// changed them in between): the multiplier cap for this principal, the term, grace and
    /// default bounds, and the recovery rate the lender asked for.
    pub fn check_policy(&self, policy: &FinancingPolicy) -> Result<()> {
        require!(policy.recovery_rate_bps >= self.min_recovery_rate_bps, CompuxError::RecoveryRateBelowTerms);
        let cap = policy.cap_for(self.principal).ok_or(CompuxError::MultiplierAboveCap)?;
        require!(self.credit_multiplier_bps <= cap, CompuxError::MultiplierAboveCap);
        let term = self.period_secs.checked_mul(self.installments as i64).ok_or(CompuxError::MathOverflow)?;
        require!(
            (policy.min_term_secs..=policy.max_term_secs).contains(&term)
                && self.grace_secs <= policy.max_grace_secs
                && self.default_after_secs <= policy.max_default_after_secs,
            CompuxError::TermOutsideMarketBounds
        );
        Ok(())
    }
}

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum FacilityStatus {
    /// Principal in the facility vault, waiting for the borrower.
    Offered,
    /// Accepted and current.
    Active,
    /// Past due beyond the grace period: no new tranches.
    Delinquent,
    /// Past due beyond the default threshold: the lender may freeze.
    Defaulted,
    /// The lender froze the escrow.
    Frozen,
    /// Unused credits bought back as the debt needed and burned; any shortfall recorded.
    Recovered,
    /// Paid in full: closable at the end of the financing period.
    Repaid,
    /// The escrow is settled and closed; the facility stays until the lender withdraws
    /// what its vault still holds.
    Closed,
}

/// A financed-credit facility. Seeds: [FACILITY_SEED, market, lender, nonce], the nonce the
/// lender's choice: only the lender's own offers can take its addresses, so no one can
/// make its offer fail (a market-wide counter let anyone do so, docs/economics.md). Its quote vault
/// ([FACILITY_VAULT_SEED, facility]) holds the principal while offered, then every repayment
/// and recovery until the lender withdraws them (a lender cannot block a repayment by
/// closing a token account); its escrow ([ESCROW_SEED, facility], credits) holds the
/// financed credits; both are controlled by the market PDA. The lender pays every rent and
/// gets it back.
#[account]
#[derive(InitSpace, Debug)]
pub struct Facility {
    pub market: Pubkey,
    pub lender: Pubkey,
    pub nonce: u64,
    pub bump: u8,
    pub quote_vault: Pubkey,
    pub escrow: Pubkey,
    pub terms: FacilityTerms,
    pub status: FacilityStatus,
    pub offered_at: i64,
    pub accepted_at: i64,
    /// 0 until frozen.
    pub frozen_at: i64,
    /// Credits minted into the escrow at acceptance.
    pub total_credits: u64,
    /// The market's values at acceptance: base price, multiplier cap for this principal,
    /// recovery rate. The auditor checks `total_credits` against them.
    pub accepted_base_price: u64,
    pub accepted_cap_bps: u16,
    pub recovery_rate_bps: u16,
    /// Worst-case recovery payout reserved in the recovery reserve while the facility can
    /// still default (principal x recovery rate); 0 once released.
    pub earmark: u64,
    /// Credits the relayer may burn (upfront plus tranches released).
    pub released_credits: u64,
    pub tranches_released: u16,
    pub burned_credits: u64,
    pub converted_credits: u64,
    pub recovered_credits: u64,
    /// Credits left to the borrower after a recovery, converted at close.
    pub returned_credits: u64,
    /// Quote paid into the facility vault out of the recovery reserve, and what was written off.
    pub recovered_quote: u64,
    pub shortfall: u64,
    pub settlement: Settlement,
    pub loan: Loan,
}

impl Facility {
    /// Credits released and not yet burned: what the relayer may spend.
    pub fn spendable_credits(&self) -> u64 {
        self.released_credits.saturating_sub(self.burned_credits)
    }

    /// Credits of the next tranche (the last takes the rounding remainder), and its due time.
    pub fn next_tranche(&self) -> Option<(u64, i64)> {
        if self.tranches_released >= self.terms.tranches {
            return None;
        }
        let upfront = upfront_credits(self.total_credits, self.terms.upfront_bps)?;
        let rest = self.total_credits - upfront;
        let k = self.tranches_released + 1;
        let amount = if k == self.terms.tranches {
            self.total_credits - self.released_credits
        } else {
            rest / self.terms.tranches as u64
        };
        let due = self.accepted_at.checked_add((k as i64).checked_mul(self.terms.period_secs)?)?;
        Some((amount, due))
    }

    /// Brings the loan and the status to `now` (the permissionless `refresh_facility` and
    /// every facility instruction call this first). Returns the status before.
    pub fn refresh(&mut self, now: i64) -> Result<FacilityStatus> {
        let before = self.status;
        if matches!(before, FacilityStatus::Offered | FacilityStatus::Recovered | FacilityStatus::Closed) {
            return Ok(before);
        }
        self.loan.accrue(now).ok_or(CompuxError::MathOverflow)?;
        let since = self.loan.past_due_since;
        let after = |secs: i64| since != 0 && now >= since.saturating_add(secs);
        self.status = match before {
            FacilityStatus::Frozen => FacilityStatus::Frozen,
            _ if self.loan.is_repaid() => FacilityStatus::Repaid,
            FacilityStatus::Repaid => FacilityStatus::Repaid,
            // Default sticks until the facility is repaid in full.
            FacilityStatus::Defaulted => FacilityStatus::Defaulted,
            _ if after(self.terms.default_after_secs) => FacilityStatus::Defaulted,
            _ if after(self.terms.grace_secs) => FacilityStatus::Delinquent,
            _ => FacilityStatus::Active,
        };
        Ok(before)
    }

    /// The lender may freeze a defaulted facility, or one that matured with a balance still
    /// due once the grace period after maturity has passed (like any missed installment).
    pub fn freezable(&self, now: i64) -> bool {
        match self.status {
            FacilityStatus::Defaulted => true,
            FacilityStatus::Active | FacilityStatus::Delinquent => {
                self.loan
                    .maturity_ts()
                    .and_then(|m| m.checked_add(self.terms.grace_secs))
                    .is_some_and(|end| now >= end)
                    && !self.loan.is_repaid()
            }
            _ => false,
        }
    }

    /// Whether the escrow's SPL account must be frozen: while the facility is frozen, and
    /// after a recovery while it holds the borrower's leftover credits (until close).
    pub fn escrow_frozen(&self) -> bool {
        self.status == FacilityStatus::Frozen
            || (self.status == FacilityStatus::Recovered && self.returned_credits > 0)
    }

    /// End of the financing period: the last installment's due date.
    pub fn maturity(&self) -> Result<i64> {
        self.loan.maturity_ts().ok_or_else(|| error!(CompuxError::MathOverflow))
    }

    /// Gives the earmark back to the reserve's free balance once the facility can no longer
    /// draw on it (repaid, recovered or closed). Idempotent.
    pub fn release_earmark(&mut self, market: &mut Market) -> Result<u64> {
        let earmark = std::mem::take(&mut self.earmark);
        sub_from(&mut market.reserve_earmarked, earmark)?;
        Ok(earmark)
    }

    /// Credits still locked (minted, not yet released).
    pub fn locked_credits(&self) -> u64 {
        self.total_credits.saturating_sub(self.released_credits)
    }

    pub fn settlement_window_end(&self) -> i64 {
        self.frozen_at.saturating_add(FREEZE_SETTLEMENT_WINDOW_SECS)
    }

    /// The usage `settle_facility` still accepts at `now`: metered up to the returned time
    /// (`i64::MAX`: any), or none (`None`). The relayer spends from the escrow only while
    /// any is accepted. A freeze stops it at `frozen_at`, maturity at the maturity date;
    /// either leaves the settlement window after it for the usage metered before, and
    /// `recover` and `close_facility` wait for that window to end, so usage served before
    /// is burned from the escrow before the escrow is bought back, converted or burned.
    pub fn settles_until(&self, now: i64) -> Result<Option<i64>> {
        use FacilityStatus::*;
        if !matches!(self.status, Active | Delinquent | Defaulted | Frozen | Repaid) {
            return Ok(None);
        }
        let (mut until, mut window_end) = (i64::MAX, i64::MAX);
        if self.status == Frozen {
            (until, window_end) = (self.frozen_at, self.settlement_window_end());
        }
        let maturity = self.maturity()?;
        if now >= maturity {
            until = until.min(maturity);
            window_end = window_end.min(self.maturity_settlement_end()?);
        }
        Ok((now <= window_end).then_some(until))
    }

    /// The end of the settlement window after maturity (the one a freeze gives).
    pub fn maturity_settlement_end(&self) -> Result<i64> {
        Ok(self.maturity()?.saturating_add(FREEZE_SETTLEMENT_WINDOW_SECS))
    }

    /// Releases every tranche that fell due while the facility was current (before the
    /// grace of its missed installment ran out), whether anyone sent `release_tranche` or
    /// not: release is permissionless, and nobody sending it must not turn the borrower's
    /// top-ups into collateral burned at recovery as never released. O(1): tranche `k` is
    /// due `k` periods after acceptance. Returns the credits released.
    pub fn release_due_while_current(&mut self, now: i64) -> Result<u64> {
        let overflow = || error!(CompuxError::MathOverflow);
        let since = self.loan.past_due_since;
        // Due strictly before `end` counts: the facility was current until then.
        let end = match since {
            0 => now.saturating_add(1),
            _ => since.saturating_add(self.terms.grace_secs).min(now.saturating_add(1)),
        };
        // Unsigned division (SBF has no signed one); the period is at least a minute.
        let elapsed = u64::try_from(end.saturating_sub(self.accepted_at).saturating_sub(1)).unwrap_or(0);
        let due = elapsed / u64::try_from(self.terms.period_secs).unwrap_or(u64::MAX).max(1);
        let due = due.min(self.terms.tranches as u64) as u16;
        if due <= self.tranches_released {
            return Ok(0);
        }
        let upfront = upfront_credits(self.total_credits, self.terms.upfront_bps).ok_or_else(overflow)?;
        let each = (self.total_credits - upfront) / self.terms.tranches as u64;
        let target = if due == self.terms.tranches {
            self.total_credits
        } else {
            each.checked_mul(due as u64).and_then(|c| c.checked_add(upfront)).ok_or_else(overflow)?
        };
        let credits = target.saturating_sub(self.released_credits);
        (self.tranches_released, self.released_credits) = (due, target.max(self.released_credits));
        Ok(credits)
    }
}

/// Credits minted for `principal`: its value at `base_price` (quote units per whole credit)
/// times the multiplier, rounded down.
pub fn financed_credits(principal: u64, base_price: u64, multiplier_bps: u16) -> Option<u64> {
    let n = (principal as u128).checked_mul(CREDIT_UNIT as u128)?.checked_mul(multiplier_bps as u128)?;
    u64::try_from(n / (base_price as u128).checked_mul(BPS as u128)?).ok()
}

/// What `unused` financed credits become as standard credits at close: their principal's
/// worth (`unused / multiplier`, rounded down), the multiplier's surplus burned. The
/// multiplier subsidises compute used during the term; converted whole, one person as
/// lender and borrower bought resellable credits at a discount the market never offered.
pub fn convertible_credits(unused: u64, multiplier_bps: u16) -> Option<u64> {
    mul_div_floor(unused, BPS, multiplier_bps.max(MIN_CREDIT_MULTIPLIER_BPS) as u64)
}

pub fn upfront_credits(total: u64, upfront_bps: u16) -> Option<u64> {
    mul_div_floor(total, upfront_bps as u64, BPS)
}

/// The recovery earmark of a facility: the most `recover` can ever pay it (every credit
/// bought back at the recovery rate of its cost), rounded down like the payout.
pub fn recovery_earmark(principal: u64, recovery_rate_bps: u16) -> Option<u64> {
    mul_div_floor(principal, recovery_rate_bps as u64, BPS)
}

/// What `recover` does with the `unused` credits left in a frozen escrow (`locked` of them
/// never released) when `owed` is due: it buys back only as many as the debt needs at the
/// recovery price, pays at most the facility's earmark, burns what it bought and every
/// locked credit (never released, so never the borrower's), and leaves the rest to the
/// borrower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buyback {
    pub bought: u64,
    pub paid: u64,
    pub burned: u64,
    pub returned: u64,
}

pub fn buyback(
    loan: &Loan,
    total_credits: u64,
    rate_bps: u16,
    unused: u64,
    locked: u64,
    owed: u64,
    earmark: u64,
) -> Option<Buyback> {
    // value(c) = floor(floor(c * principal / total) * rate / BPS) (Loan::recovery_value). It
    // reaches `owed` once the cost floor(c * principal / total) reaches
    // ceil(owed * BPS / rate), that is once c >= ceil(that cost * total / principal): the
    // fewest credits that cover the debt. At a zero price every credit is taken: none is
    // worth anything to the lender, and none goes back.
    let needed = if rate_bps == 0 || loan.principal == 0 {
        unused
    } else {
        let cost = (owed as u128 * BPS as u128).div_ceil(rate_bps as u128);
        cost.checked_mul(total_credits as u128)
            .map(|n| n.div_ceil(loan.principal as u128))
            .map_or(u64::MAX, |c| u64::try_from(c).unwrap_or(u64::MAX))
    };
    let bought = unused.min(needed);
    let value = loan.recovery_value(bought, total_credits, rate_bps)?;
    let paid = value.min(owed).min(earmark);
    let burned = bought.max(locked.min(unused));
    Some(Buyback { bought, paid, burned, returned: unused - burned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loan(principal: u64) -> Loan {
        Loan::new(principal, 0, 30 * SECONDS_PER_DAY, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn buyback_examples() {
        // 15 credits bought with 100_000 at 50 %: each base unit is worth 1/300 quote unit.
        let l = loan(100_000);
        let b = buyback(&l, 15_000_000, 5_000, 14_000_000, 0, 27_000, 50_000).unwrap();
        assert_eq!(b, Buyback { bought: 8_100_000, paid: 27_000, burned: 8_100_000, returned: 5_900_000 });
        // The debt needs more than the collateral is worth: everything is bought.
        let b = buyback(&l, 15_000_000, 5_000, 14_300_000, 0, 200_000, 50_000).unwrap();
        assert_eq!((b.bought, b.paid, b.returned), (14_300_000, 47_666, 0));
        // A zero recovery rate: every credit is taken, nothing paid, nothing returned.
        let b = buyback(&l, 15_000_000, 0, 1_000, 0, 5, 0).unwrap();
        assert_eq!(b, Buyback { bought: 1_000, paid: 0, burned: 1_000, returned: 0 });
        // Never-released credits are burned even when the debt needs none.
        let b = buyback(&l, 15_000_000, 5_000, 9_000, 4_000, 0, 50_000).unwrap();
        assert_eq!(b, Buyback { bought: 0, paid: 0, burned: 4_000, returned: 5_000 });
    }

    proptest! {
        #[test]
        fn buyback_takes_only_what_the_debt_needs_and_pays_within_every_bound(
            principal in 1u64..=1u64 << 40,
            minted in 1u64..=1u64 << 50,
            rate in 0u16..=10_000,
            unused_share in 0u64..=10_000,
            locked_share in 0u64..=10_000,
            owed in 0u64..=1u64 << 41,
        ) {
            let l = loan(principal);
            let unused = (minted as u128 * unused_share as u128 / 10_000) as u64;
            let locked = (unused as u128 * locked_share as u128 / 10_000) as u64;
            let earmark = recovery_earmark(principal, rate).unwrap();
            let b = buyback(&l, minted, rate, unused, locked, owed, earmark).unwrap();
            let value = |c| l.recovery_value(c, minted, rate).unwrap();
            prop_assert!(b.bought <= unused);
            prop_assert!(b.paid <= owed && b.paid <= earmark && b.paid <= value(b.bought));
            prop_assert_eq!(b.burned + b.returned, unused);
            prop_assert!(b.burned >= locked && b.burned >= b.bought);
            if rate > 0 && b.bought > 0 {
                // The fewest credits that cover the debt: one fewer would not.
                prop_assert!(value(b.bought - 1) < owed);
            }
            if b.bought < unused {
                prop_assert!(value(b.bought) >= owed, "a partial buy-back covers the debt");
            }
        }

        #[test]
        fn the_earmark_covers_any_recovery(principal in 1u64..=1u64 << 50, rate in 0u16..=10_000, minted in 1u64..=1u64 << 50) {
            // Every minted credit bought back is worth at most the earmark.
            let l = loan(principal);
            prop_assert!(l.recovery_value(minted, minted, rate).unwrap() <= recovery_earmark(principal, rate).unwrap());
        }
    }
}
