use anchor_lang::prelude::*;

use crate::errors::CompuxError;
use crate::math::usage_chain::next_usage_chain;

/// Settlement state of a credit source (a credit account or a facility escrow): exactly-once
/// batches, chained into `usage_chain`.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct Settlement {
    /// Last settled batch; the next must carry `settled_seq + 1`.
    pub settled_seq: u64,
    /// Hash chain over every settled batch (see `math::usage_chain`).
    pub usage_chain: [u8; 32],
    pub last_window_end: i64,
    pub total_settled: u64,
}

impl Settlement {
    /// Checks a batch of `amount` credits against `spendable` credits at chain time `now`.
    pub fn check(&self, seq: u64, amount: u64, spendable: u64, window_end: i64, now: i64) -> Result<()> {
        // Exactly-once: the relayer persists `seq` before sending, so a resend after a crash
        // carries the same `seq` and is refused here instead of burning twice.
        require!(seq > self.settled_seq, CompuxError::SettleReplay);
        require!(seq == self.settled_seq.saturating_add(1), CompuxError::SettleGap);
        require!(amount > 0, CompuxError::ZeroAmount);
        require!(amount <= spendable, CompuxError::InsufficientCredits);
        require!(window_end >= self.last_window_end, CompuxError::SettleWindowRegressed);
        require!(window_end <= now, CompuxError::SettleWindowInFuture);
        Ok(())
    }

    pub fn record(&mut self, seq: u64, amount: u64, batch_root: &[u8; 32], window_end: i64) -> Result<()> {
        self.usage_chain = next_usage_chain(&self.usage_chain, seq, amount, batch_root, window_end);
        self.settled_seq = seq;
        self.last_window_end = window_end;
        self.total_settled = self.total_settled.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        Ok(())
    }
}
