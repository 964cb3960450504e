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
    pub deposit: u64,
}

impl Reservation {
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
