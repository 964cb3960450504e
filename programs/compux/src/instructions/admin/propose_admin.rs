use anchor_lang::prelude::*;

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, AdminProposed};
use crate::state::Market;

#[derive(Accounts)]
pub struct ProposeAdmin<'info> {
    pub admin: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = admin @ CompuxError::NotAdmin,
    )]
    pub market: Box<Account<'info, Market>>,
}

impl ProposeAdmin<'_> {
    /// First step of the handover: names the next admin, who must accept with its own
    /// signature (so a typo cannot hand the market to a key nobody holds). Proposing
    /// `Pubkey::default()` cancels a pending handover.
    pub fn handler(ctx: Context<Self>, new_admin: Pubkey) -> Result<()> {
        let market = &mut ctx.accounts.market;
        market.pending_admin = new_admin;
        events::emit(AdminProposed { market: market.key(), admin: market.admin, pending_admin: new_admin });
        Ok(())
    }
}
