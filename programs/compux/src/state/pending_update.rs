use anchor_lang::prelude::*;

use crate::constants::UPDATE_APPLY_WINDOW_SECS;
use crate::errors::CompuxError;
use crate::state::{Market, MarketParams, MarketUpdate};

/// A market's parameter change waiting out its update delay, at
/// [PENDING_UPDATE_SEED, market]. Created with the market and kept apart from it, so that no
/// instruction on the hot path (a purchase, a settle) loads it.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct PendingUpdate {
    pub market: Pubkey,
    pub bump: u8,
    /// When `apply_market_update` may apply `params`; 0: nothing pending.
    pub effective_at: i64,
    /// The market's whole parameter set once the change applies.
    pub params: MarketParams,
}

impl PendingUpdate {
    pub fn is_pending(&self) -> bool {
        self.effective_at != 0
    }

    /// `update_market`. A pause or resume and a revoked relayer key apply to `market` at
    /// once: they only stop things, and an emergency must not wait. Every other change is
    /// validated now and waits the market's update delay here; a change made while one is
    /// pending joins it, and the delay starts again for the whole of it.
    pub fn schedule(&mut self, market: &mut Market, u: &MarketUpdate, now: i64) -> Result<()> {
        let revoke = u.relayer == Some(Pubkey::default());
        let delayed = MarketUpdate { relayer: u.relayer.filter(|_| !revoke), paused: None, ..u.clone() };
        let mut next = if self.is_pending() { self.params } else { market.params() };
        next.overlay(&delayed)?;
        if let Some(p) = u.paused {
            market.paused = p;
        }
        if revoke {
            // A pending change must not bring a revoked key back.
            market.relayer = Pubkey::default();
            next.relayer = Pubkey::default();
            self.params.relayer = Pubkey::default();
        }
        if delayed != MarketUpdate::default() {
            let effective_at = now.checked_add(market.update_delay_secs).ok_or(CompuxError::MathOverflow)?;
            self.effective_at = effective_at;
            self.params = next;
        }
        Ok(())
    }

    /// `apply_market_update`: anyone may apply a pending change once its delay has passed,
    /// within `UPDATE_APPLY_WINDOW_SECS` of its time.
    pub fn apply(&mut self, market: &mut Market, now: i64) -> Result<()> {
        require!(self.is_pending(), CompuxError::NoPendingUpdate);
        require!(now >= self.effective_at, CompuxError::UpdateNotDue);
        let expires =
            self.effective_at.checked_add(UPDATE_APPLY_WINDOW_SECS).ok_or(CompuxError::MathOverflow)?;
        require!(now <= expires, CompuxError::UpdateExpired);
        market.set_params(&self.params);
        self.effective_at = 0;
        self.params = MarketParams::default();
        Ok(())
    }
}
