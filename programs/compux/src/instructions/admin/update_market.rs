use anchor_lang::prelude::*;

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, MarketUpdateScheduled, MarketUpdated};
use crate::state::{Market, MarketUpdate};

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
}

impl UpdateMarket<'_> {
    /// Pauses or resumes the market and revokes the relayer key (`relayer: Some(default)`)
    /// at once; schedules every other change (prices, hour multipliers, bulk tiers, term
    /// discounts, the early-termination fee, the financing policy, a new relayer key) to
    /// apply after the market's update delay (`apply_market_update`). Fields left `None`
    /// keep their value.
    pub fn handler(ctx: Context<Self>, update: MarketUpdate) -> Result<()> {
        let market = &mut ctx.accounts.market;
        let was_pending = market.pending;
        market.schedule_update(&update, Clock::get()?.unix_timestamp)?;
        if market.pending != was_pending && market.pending.is_pending() {
            events::emit(MarketUpdateScheduled {
                market: market.key(),
                effective_at: market.pending.effective_at,
                params: market.pending.params,
            });
        }
        events::emit(MarketUpdated {
            market: market.key(),
            config: market.config(),
            relayer: market.relayer,
            paused: market.paused,
        });
        Ok(())
    }
}
