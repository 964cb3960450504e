use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityCancelled};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct CancelOffer<'info> {
    #[account(mut)]
    pub lender: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        close = lender,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    /// Any quote account the lender names for the refund.
    #[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub destination: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl CancelOffer<'_> {
    /// Refunds the whole principal while the offer is unaccepted, and returns every rent.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        require_status(&a.facility, &[FacilityStatus::Offered])?;
        let refunded = a.quote_vault.amount;
        let market = &a.market;
        token_ops::transfer(
            a.quote_vault.to_account_info(),
            a.destination.to_account_info(),
            market.to_account_info(),
            Some(market),
            refunded,
        )?;
        token_ops::close_vault(market, a.quote_vault.to_account_info(), a.lender.to_account_info())?;
        token_ops::close_vault(market, a.escrow.to_account_info(), a.lender.to_account_info())?;
        events::emit(FacilityCancelled { market: market.key(), facility: a.facility.key(), refunded });
        Ok(())
    }
}
