use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, ReserveWithdrawn};
use crate::state::{add_to, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct WithdrawReserve<'info> {
    pub admin: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = admin @ CompuxError::NotAdmin,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    #[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub destination: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl WithdrawReserve<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        require!(amount > 0, CompuxError::ZeroAmount);
        // Earmarks are promises to live facilities' lenders: only the rest may leave.
        let free = self.market.free_reserve(self.recovery_reserve.amount);
        require!(amount <= free, CompuxError::WithdrawalExceedsFree);
        Ok(())
    }

    /// The admin takes quote out of the recovery reserve, only above the sum of live
    /// facilities' earmarks.
    #[access_control(ctx.accounts.validate(amount))]
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        let a = ctx.accounts;
        let market = &a.market;
        token_ops::transfer(
            a.recovery_reserve.to_account_info(),
            a.destination.to_account_info(),
            market.to_account_info(),
            Some(market),
            amount,
        )?;
        add_to(&mut a.market.reserve_withdrawn, amount)?;
        events::emit(ReserveWithdrawn {
            market: a.market.key(),
            admin: a.admin.key(),
            destination: a.destination.key(),
            amount,
            reserve_balance: a.recovery_reserve.amount - amount,
            earmarked: a.market.reserve_earmarked,
        });
        Ok(())
    }
}
