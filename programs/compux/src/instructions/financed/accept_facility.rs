use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityAccepted};
use crate::math::loan::Loan;
use crate::state::{financed_credits, upfront_credits, CreditAccount, Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct AcceptFacility<'info> {
    pub borrower: Signer<'info>,
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
        constraint = facility.terms.borrower == borrower.key() @ CompuxError::NotBorrower,
    )]
    pub facility: Box<Account<'info, Facility>>,
    /// The borrower's credit account: unused credits convert into it at close.
    #[account(
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), borrower.key().as_ref()],
        bump = borrower_account.bump,
    )]
    pub borrower_account: Box<Account<'info, CreditAccount>>,
    #[account(mut, address = facility.principal_vault @ CompuxError::WrongVault)]
    pub principal_vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl AcceptFacility<'_> {
    fn validate(&self) -> Result<()> {
        require!(!self.market.paused, CompuxError::MarketPaused);
        require_status(&self.facility, &[FacilityStatus::Offered])
    }

    /// The principal goes to the treasury (the marketplace buys capacity wholesale);
    /// principal x multiplier worth of credits at the base price are minted into the escrow;
    /// the upfront share is released and the repayment schedule starts now.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let now = Clock::get()?.unix_timestamp;
        let t = a.facility.terms;
        let overflow = || error!(CompuxError::MathOverflow);
        let total = financed_credits(t.principal, a.market.base_price, t.credit_multiplier_bps)
            .ok_or_else(overflow)?;
        require!(total > 0, CompuxError::ZeroAmount);
        let loan = Loan::new(
            t.principal,
            t.apr_bps,
            t.period_secs,
            t.installments,
            t.grace_secs,
            t.late_fee_bps,
            now,
        )
        .ok_or_else(overflow)?;

        let market = &a.market;
        token_ops::transfer(
            a.principal_vault.to_account_info(),
            a.treasury.to_account_info(),
            market.to_account_info(),
            Some(market),
            t.principal,
        )?;
        token_ops::mint_credits(market, a.credit_mint.to_account_info(), a.escrow.to_account_info(), total)?;

        let f = &mut a.facility;
        f.status = FacilityStatus::Active;
        f.accepted_at = now;
        f.total_credits = total;
        f.released_credits = upfront_credits(total, t.upfront_bps).ok_or_else(overflow)?;
        f.loan = loan;
        events::emit(FacilityAccepted {
            market: market.key(),
            facility: f.key(),
            borrower: a.borrower.key(),
            principal: t.principal,
            total_credits: total,
            released_credits: f.released_credits,
            installment_amount: loan.installment_amount,
            scheduled_total: loan.scheduled_total,
            maturity_ts: loan.maturity_ts().ok_or_else(overflow)?,
        });
        Ok(())
    }
}
