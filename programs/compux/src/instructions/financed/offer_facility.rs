use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityOffered};
use crate::math::loan::Loan;
use crate::state::{Facility, FacilityStatus, FacilityTerms, Market};
use crate::token_ops;

#[derive(Accounts)]
#[instruction(nonce: u64)]
pub struct OfferFacility<'info> {
    #[account(mut)]
    pub lender: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        init,
        payer = lender,
        space = 8 + Facility::INIT_SPACE,
        seeds = [FACILITY_SEED, market.key().as_ref(), lender.key().as_ref(), &nonce.to_le_bytes()],
        bump,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(address = market.quote_mint @ CompuxError::WrongMint)]
    pub quote_mint: Box<Account<'info, Mint>>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(
        init,
        payer = lender,
        seeds = [FACILITY_VAULT_SEED, facility.key().as_ref()],
        bump,
        token::mint = quote_mint,
        token::authority = market,
    )]
    pub principal_vault: Box<Account<'info, TokenAccount>>,
    #[account(
        init,
        payer = lender,
        seeds = [ESCROW_SEED, facility.key().as_ref()],
        bump,
        token::mint = credit_mint,
        token::authority = market,
    )]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(
        mut,
        constraint = lender_quote.mint == market.quote_mint @ CompuxError::WrongMint,
        constraint = lender_quote.owner == lender.key() @ CompuxError::WrongTokenOwner,
    )]
    pub lender_quote: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl OfferFacility<'_> {
    fn validate(&self, terms: &FacilityTerms) -> Result<()> {
        require!(!self.market.paused, CompuxError::MarketPaused);
        terms.validate()
    }

    /// Moves the principal from the lender's wallet into the facility vault and records the
    /// terms; only `terms.borrower` may accept. The lender pays every rent.
    #[access_control(ctx.accounts.validate(&terms))]
    pub fn handler(ctx: Context<Self>, nonce: u64, terms: FacilityTerms) -> Result<()> {
        let a = ctx.accounts;
        token_ops::transfer(
            a.lender_quote.to_account_info(),
            a.principal_vault.to_account_info(),
            a.lender.to_account_info(),
            None,
            terms.principal,
        )?;
        a.facility.set_inner(Facility {
            market: a.market.key(),
            lender: a.lender.key(),
            lender_quote: a.lender_quote.key(),
            nonce,
            bump: ctx.bumps.facility,
            principal_vault: a.principal_vault.key(),
            escrow: a.escrow.key(),
            terms,
            status: FacilityStatus::Offered,
            offered_at: Clock::get()?.unix_timestamp,
            accepted_at: 0,
            frozen_at: 0,
            total_credits: 0,
            released_credits: 0,
            tranches_released: 0,
            burned_credits: 0,
            converted_credits: 0,
            recovered_credits: 0,
            recovered_quote: 0,
            shortfall: 0,
            settlement: Default::default(),
            loan: Loan::default(),
        });
        events::emit(FacilityOffered {
            market: a.market.key(),
            facility: a.facility.key(),
            lender: a.lender.key(),
            terms,
        });
        Ok(())
    }
}
