use anchor_lang::prelude::*;

use crate::constants::MARKET_SEED;
use crate::events::{self, MarketUpdated};
use crate::state::Market;

#[derive(Accounts)]
pub struct ApplyMarketUpdate<'info> {
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
}

impl ApplyMarketUpdate<'_> {
    /// Applies the market's pending parameter change once its update delay has passed.
    /// Permissionless: the change was public for the whole delay, and whoever it favours may
    /// crank it.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let market = &mut ctx.accounts.market;
        market.apply_pending(Clock::get()?.unix_timestamp)?;
        events::emit(MarketUpdated {
            market: market.key(),
            config: market.config(),
            relayer: market.relayer,
            paused: market.paused,
        });
        Ok(())
    }
}
