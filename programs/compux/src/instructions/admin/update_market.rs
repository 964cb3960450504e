use anchor_lang::prelude::*;

use crate::constants::{MARKET_SEED, PENDING_UPDATE_SEED};
use crate::errors::CompuxError;
use crate::events::{self, MarketUpdateScheduled, MarketUpdated};
use crate::state::{Market, MarketUpdate, PendingUpdate};

#[derive(Accounts)]
pub struct UpdateMarket<'info> {
    pub admin: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = admin @ CompuxError::NotAdmin,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [PENDING_UPDATE_SEED, market.key().as_ref()],
        bump = pending.bump,
    )]
    pub pending: Box<Account<'info, PendingUpdate>>,
}

impl UpdateMarket<'_> {
    /// Pauses or resumes the market and revokes the relayer key (`relayer: Some(default)`)
    /// at once; schedules every other change (prices, hour multipliers, bulk tiers, term
    /// discounts, the early-termination fee, the financing policy, a new relayer key) to
    /// apply after the market's update delay (`apply_market_update`). Fields left `None`
    /// keep their value.
    pub fn handler(ctx: Context<Self>, update: MarketUpdate) -> Result<()> {
        let (market, pending) = (&mut ctx.accounts.market, &mut ctx.accounts.pending);
        let was = (pending.effective_at, pending.params);
        pending.schedule(market, &update, Clock::get()?.unix_timestamp)?;
        if (pending.effective_at, pending.params) != was && pending.is_pending() {
            events::emit(MarketUpdateScheduled {
                market: market.key(),
                effective_at: pending.effective_at,
                params: pending.params,
            });
        }
        events::emit(MarketUpdated::of(market.key(), market));
        Ok(())
    }
}
