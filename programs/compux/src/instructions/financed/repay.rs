use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityRepaid};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct Repay<'info> {
    pub borrower: Signer<'info>,
    /// Its earmark is released when the facility is repaid in full.
    #[account(
        mut,
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
    #[account(mut, constraint = borrower_quote.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub borrower_quote: Box<Account<'info, TokenAccount>>,
    /// The facility's own vault: the lender withdraws from it, so it cannot refuse a
    /// repayment by closing a token account.
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
    /// Thawed when a frozen facility is cured by full repayment.
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl Repay<'_> {
    /// Pays into the facility vault up to `amount`: late fees, then interest, then principal due, then
    /// the current period's interest and principal not yet due (prepayment). Only what is
    /// owed is taken. Accepted after default; a frozen facility repaid in full is cured
    /// (thawed) and becomes closable.
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        require!(amount > 0, CompuxError::ZeroAmount);
        let a = ctx.accounts;
        let now = super::refresh(&mut a.facility)?;
        use FacilityStatus::*;
        require_status(&a.facility, &[Active, Delinquent, Defaulted, Frozen])?;

        let applied = a.facility.loan.repay(amount, now).ok_or(CompuxError::MathOverflow)?;
        token_ops::transfer(
            a.borrower_quote.to_account_info(),
            a.quote_vault.to_account_info(),
            a.borrower.to_account_info(),
            None,
            applied.total(),
        )?;

        let before = a.facility.status;
        if before == Frozen && a.facility.loan.is_repaid() {
            token_ops::set_frozen(
                &a.market,
                a.credit_mint.to_account_info(),
                a.escrow.to_account_info(),
                false,
            )?;
            a.facility.status = Repaid;
        } else {
            a.facility.refresh(now)?;
        }
        super::emit_transition(&a.facility, before);
        if a.facility.status == Repaid {
            a.facility.release_earmark(&mut a.market)?;
        }

        let f = &a.facility;
        events::emit(FacilityRepaid {
            market: f.market,
            facility: f.key(),
            fees: applied.fees,
            interest: applied.interest,
            principal: applied.principal,
            principal_outstanding: f.loan.principal_outstanding,
            past_due: f.loan.past_due(),
            status: f.status,
        });
        Ok(())
    }
}
