use anchor_lang::prelude::*;

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, AdminAccepted};
use crate::state::Market;

#[derive(Accounts)]
pub struct AcceptAdmin<'info> {
    pub new_admin: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
}

impl AcceptAdmin<'_> {
    fn validate(&self) -> Result<()> {
        require_keys_neq!(self.market.pending_admin, Pubkey::default(), CompuxError::NoPendingAdmin);
        require_keys_eq!(self.market.pending_admin, self.new_admin.key(), CompuxError::NotPendingAdmin);
        Ok(())
    }

    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let market = &mut ctx.accounts.market;
        let previous_admin = market.admin;
        market.admin = market.pending_admin;
        market.pending_admin = Pubkey::default();
        events::emit(AdminAccepted { market: market.key(), previous_admin, admin: market.admin });
        Ok(())
    }
}
