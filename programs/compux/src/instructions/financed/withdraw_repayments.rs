use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, RepaymentsWithdrawn};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct WithdrawRepayments<'info> {
    #[account(mut)]
    pub lender: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
    /// Any quote account the lender names.
    #[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub destination: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl WithdrawRepayments<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        // While offered the vault holds the principal: `cancel_offer` is the way out.
        require!(self.facility.status != FacilityStatus::Offered, CompuxError::InvalidFacilityStatus);
        require!(amount > 0, CompuxError::ZeroAmount);
        require!(amount <= self.quote_vault.amount, CompuxError::WithdrawalExceedsFree);
        Ok(())
    }

    /// The lender takes repayments and recoveries out of the facility vault, to an account of
    /// its choosing, whenever it likes. Emptying the vault of a closed facility closes the vault
    /// (the facility stays as a tombstone).
    #[access_control(ctx.accounts.validate(amount))]
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        let a = ctx.accounts;
        let market = &a.market;
        token_ops::transfer(
            a.quote_vault.to_account_info(),
            a.destination.to_account_info(),
            market.to_account_info(),
            Some(market),
            amount,
        )?;
        let vault_balance = a.quote_vault.amount - amount;
        events::emit(RepaymentsWithdrawn {
            market: market.key(),
            facility: a.facility.key(),
            destination: a.destination.key(),
            amount,
            vault_balance,
        });
        if vault_balance == 0 && a.facility.status == FacilityStatus::Closed {
            super::close_facility_vault(market, a.quote_vault.to_account_info(), a.lender.to_account_info())?;
        }
        Ok(())
    }
}
