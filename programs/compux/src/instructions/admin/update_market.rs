use anchor_lang::prelude::*;

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, MarketUpdated};
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
    fn validate(&self, update: &MarketUpdate) -> Result<()> {
        if let Some(relayer) = update.relayer {
            require_keys_neq!(relayer, Pubkey::default(), CompuxError::NotRelayer);
        }
        Ok(())
    }

    /// Changes prices, hour multipliers, bulk tiers, term discounts, the early-termination
    /// fee, the relayer key or the paused flag. Fields left `None` keep their value.
    #[access_control(ctx.accounts.validate(&update))]
    pub fn handler(ctx: Context<Self>, update: MarketUpdate) -> Result<()> {
        let market = &mut ctx.accounts.market;
        market.apply_update(&update)?;
        events::emit(MarketUpdated {
            market: market.key(),
            config: market.config(),
            relayer: market.relayer,
            paused: market.paused,
        });
        Ok(())
    }
}
