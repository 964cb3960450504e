use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::create;
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
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    /// CHECK: created here (crate::create), at the PDA of the lender's `nonce`.
    #[account(mut, seeds = [FACILITY_SEED, market.key().as_ref(), lender.key().as_ref(), &nonce.to_le_bytes()], bump)]
    pub facility: UncheckedAccount<'info>,
    #[account(address = market.quote_mint @ CompuxError::WrongMint)]
    pub quote_mint: Box<Account<'info, Mint>>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    /// CHECK: created here as a quote token account owned by the market PDA.
    #[account(mut, seeds = [FACILITY_VAULT_SEED, facility.key().as_ref()], bump)]
    pub quote_vault: UncheckedAccount<'info>,
    /// CHECK: created here as a credit-mint token account owned by the market PDA.
    #[account(mut, seeds = [ESCROW_SEED, facility.key().as_ref()], bump)]
    pub escrow: UncheckedAccount<'info>,
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
        // Any nonce: the address is the lender's own. An offer cancelled and made again at
        // one address cannot catch a borrower's accept in flight, which names every term.
        terms.validate()?;
        terms.check_policy(&self.market.financing)
    }

    /// Moves the principal from the lender's wallet into the facility vault and records the
    /// terms; only `terms.borrower` may accept. The lender pays every rent.
    #[access_control(ctx.accounts.validate(&terms))]
    pub fn handler(ctx: Context<Self>, nonce: u64, terms: FacilityTerms) -> Result<()> {
        let a = ctx.accounts;
        a.market.facility_count = a.market.facility_count.checked_add(1).ok_or(CompuxError::MathOverflow)?;
        let (market, lender, facility) = (a.market.key(), a.lender.key(), a.facility.key());
        let payer = a.lender.to_account_info();
        let authority = a.market.to_account_info();
        let vault_seeds: &[&[u8]] = &[FACILITY_VAULT_SEED, facility.as_ref(), &[ctx.bumps.quote_vault]];
        create::init_token_account(
            &payer,
            &a.quote_vault,
            vault_seeds,
            &a.quote_mint.to_account_info(),
            &authority,
        )?;
        let escrow_seeds: &[&[u8]] = &[ESCROW_SEED, facility.as_ref(), &[ctx.bumps.escrow]];
        create::init_token_account(
            &payer,
            &a.escrow,
            escrow_seeds,
            &a.credit_mint.to_account_info(),
            &authority,
        )?;
        token_ops::transfer(
            a.lender_quote.to_account_info(),
            a.quote_vault.to_account_info(),
            a.lender.to_account_info(),
            None,
            terms.principal,
        )?;
        let bump = ctx.bumps.facility;
        let value = Facility {
            market,
            lender,
            nonce,
            bump,
            quote_vault: a.quote_vault.key(),
            escrow: a.escrow.key(),
            terms,
            status: FacilityStatus::Offered,
            offered_at: Clock::get()?.unix_timestamp,
            accepted_at: 0,
            frozen_at: 0,
            total_credits: 0,
            accepted_base_price: 0,
            accepted_cap_bps: 0,
            recovery_rate_bps: 0,
            earmark: 0,
            released_credits: 0,
            tranches_released: 0,
            burned_credits: 0,
            converted_credits: 0,
            recovered_credits: 0,
            returned_credits: 0,
            recovered_quote: 0,
            shortfall: 0,
            settlement: Default::default(),
            loan: Loan::default(),
        };
        let seeds: &[&[u8]] =
            &[FACILITY_SEED, market.as_ref(), lender.as_ref(), &nonce.to_le_bytes(), &[bump]];
        create::init_account(&payer, &a.facility, seeds, &value)?;
        events::emit(FacilityOffered { market, facility, lender, terms });
        Ok(())
    }
}
