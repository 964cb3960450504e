use anchor_lang::prelude::*;

/// Reserved credits at a locked price. Seeds: [RESERVATION_SEED, credit_account, nonce].
/// Period `k` (0-based) may be claimed during `[start_ts + k*period_secs, start_ts +
/// (k+1)*period_secs)`; the account is closed (rent to the owner) when it completes, is
/// cancelled or lapses, so a live account always means an outstanding deposit.
#[account]
#[derive(InitSpace, Debug)]
pub struct Reservation {
    pub market: Pubkey,
    pub credit_account: Pubkey,
    pub owner: Pubkey,
    pub nonce: u64,
    pub bump: u8,
    /// Quote units per whole credit, after the term discount.
    pub locked_price: u64,
    pub discount_bps: u16,
    pub credits_per_period: u64,
    /// Quote owed per claim (`credits_per_period` at `locked_price`, rounded up).
    pub period_cost: u64,
    pub periods: u16,
    pub period_secs: i64,
    pub start_ts: i64,
    pub claimed_periods: u16,
    /// Taken at reservation: `fee` plus room to claw back the discount of every period but
    /// the last (`period_discount` each).
    pub deposit: u64,
    /// The early-termination fee: a share of the whole commitment at the locked price.
    pub fee: u64,
    /// Quote the discount saves on one period's credits against the base price.
    pub period_discount: u64,
}

impl Reservation {
    /// What an early end (cancel or lapse) forfeits to the treasury: the fee, and the
    /// discount already taken on claimed periods (the commitment that earned it was broken).
    /// The rest of the deposit goes back to the owner.
    pub fn forfeit(&self) -> Option<u64> {
        self.period_discount.checked_mul(self.claimed_periods as u64)?.checked_add(self.fee)
    }

    /// End of the claim window of the next unclaimed period. `None` on overflow.
    pub fn current_period_end(&self) -> Option<i64> {
        let next = (self.claimed_periods as i64).checked_add(1)?;
        self.start_ts.checked_add(next.checked_mul(self.period_secs)?)
    }

    /// Start of the claim window of the next unclaimed period.
    pub fn current_period_start(&self) -> Option<i64> {
        self.start_ts.checked_add((self.claimed_periods as i64).checked_mul(self.period_secs)?)
    }
}
