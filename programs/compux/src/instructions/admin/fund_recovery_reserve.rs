use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, RecoveryReserveFunded};
use crate::state::{add_to, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct FundRecoveryReserve<'info> {
    pub funder: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(mut, constraint = funder_quote.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub funder_quote: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl FundRecoveryReserve<'_> {
    /// Adds quote to the reserve that buys back frozen financed credits. Anyone may fund
    /// it (usually the admin): money only flows in, and the event names the funder.
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        require!(amount > 0, CompuxError::ZeroAmount);
        let a = ctx.accounts;
        token_ops::transfer(
            a.funder_quote.to_account_info(),
            a.recovery_reserve.to_account_info(),
            a.funder.to_account_info(),
            None,
            amount,
        )?;
        add_to(&mut a.market.reserve_funded, amount)?;
        a.recovery_reserve.reload()?;
        events::emit(RecoveryReserveFunded {
            market: a.market.key(),
            funder: a.funder.key(),
            amount,
            reserve_balance: a.recovery_reserve.amount,
        });
        Ok(())
    }
}
