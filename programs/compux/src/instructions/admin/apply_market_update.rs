use anchor_lang::prelude::*;

use crate::constants::{MARKET_SEED, PENDING_UPDATE_SEED};
use crate::events::{self, MarketUpdated};
use crate::state::{Market, PendingUpdate};

#[derive(Accounts)]
pub struct ApplyMarketUpdate<'info> {
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [PENDING_UPDATE_SEED, market.key().as_ref()],
        bump = pending.bump,
    )]
    pub pending: Box<Account<'info, PendingUpdate>>,
}

impl ApplyMarketUpdate<'_> {
    /// Applies the market's pending parameter change once its update delay has passed.
    /// Permissionless: the change was public for the whole delay, and whoever it favours may
    /// crank it.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let (market, pending) = (&mut ctx.accounts.market, &mut ctx.accounts.pending);
        pending.apply(market, Clock::get()?.unix_timestamp)?;
        events::emit(MarketUpdated::of(market.key(), market));
        Ok(())
    }
}
