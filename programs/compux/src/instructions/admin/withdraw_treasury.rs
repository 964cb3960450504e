use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::MARKET_SEED;
use crate::errors::CompuxError;
use crate::events::{self, TreasuryWithdrawn};
use crate::state::{add_to, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct WithdrawTreasury<'info> {
    pub admin: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = admin @ CompuxError::NotAdmin,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    #[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub destination: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl WithdrawTreasury<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        require!(amount > 0, CompuxError::ZeroAmount);
        require!(amount <= self.treasury.amount, CompuxError::WithdrawalExceedsFree);
        Ok(())
    }

    /// The admin pays quote out of the treasury (purchases, claims, principals and
    /// forfeits flow in) to any quote account: how the marketplace pays the providers whose
    /// compute the burns represent. Each withdrawal is an event and a running total on the
    /// market, so an auditor reconciles the treasury's balance with its flows.
    #[access_control(ctx.accounts.validate(amount))]
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        let a = ctx.accounts;
        let market = &a.market;
        token_ops::transfer(
            a.treasury.to_account_info(),
            a.destination.to_account_info(),
            market.to_account_info(),
            Some(market),
            amount,
        )?;
        add_to(&mut a.market.treasury_withdrawn, amount)?;
        events::emit(TreasuryWithdrawn {
            market: a.market.key(),
            admin: a.admin.key(),
            destination: a.destination.key(),
            amount,
            treasury_balance: a.treasury.amount - amount,
            total_withdrawn: a.market.treasury_withdrawn,
        });
        Ok(())
    }
}
