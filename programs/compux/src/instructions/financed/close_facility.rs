use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityClosed};
use crate::state::{CreditAccount, Facility, FacilityStatus, Market, UnusedCredits};
use crate::token_ops;

#[derive(Accounts)]
pub struct CloseFacility<'info> {
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
    /// Paid every rent, so receives it back; need not sign.
    #[account(mut)]
    pub lender: SystemAccount<'info>,
    #[account(mut, address = facility.lender_quote @ CompuxError::WrongTokenOwner)]
    pub lender_quote: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.principal_vault @ CompuxError::WrongVault)]
    pub principal_vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), facility.terms.borrower.as_ref()],
        bump = borrower_account.bump,
        has_one = vault @ CompuxError::WrongVault,
    )]
    pub borrower_account: Box<Account<'info, CreditAccount>>,
    /// The borrower's credit vault, where converted credits go.
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl CloseFacility<'_> {
    /// Permissionless once the facility is repaid (or recovered): unused credits become the
    /// borrower's standard credits (or are burned, as the terms say), and the escrow, the
    /// principal vault and the facility close with their rent back to the lender.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        require_status(&a.facility, &[FacilityStatus::Repaid, FacilityStatus::Recovered])?;
        let market = &a.market;
        let unused = a.escrow.amount;
        let (converted, burned) = match a.facility.terms.unused_at_close {
            UnusedCredits::Convert => (unused, 0),
            UnusedCredits::Forfeit => (0, unused),
        };
        if converted > 0 {
            let (escrow, vault) = (a.escrow.to_account_info(), a.vault.to_account_info());
            token_ops::transfer(escrow, vault, market.to_account_info(), Some(market), converted)?;
            let acct = &mut a.borrower_account;
            acct.total_transferred_in =
                acct.total_transferred_in.checked_add(converted).ok_or(CompuxError::MathOverflow)?;
        }
        if burned > 0 {
            token_ops::burn_credits(
                market,
                a.credit_mint.to_account_info(),
                a.escrow.to_account_info(),
                burned,
            )?;
        }
        // Anything sent to the principal vault after acceptance goes back to the lender.
        let stray = a.principal_vault.amount;
        if stray > 0 {
            let (from, to) = (a.principal_vault.to_account_info(), a.lender_quote.to_account_info());
            token_ops::transfer(from, to, market.to_account_info(), Some(market), stray)?;
        }
        token_ops::close_vault(market, a.escrow.to_account_info(), a.lender.to_account_info())?;
        token_ops::close_vault(market, a.principal_vault.to_account_info(), a.lender.to_account_info())?;
        a.facility.converted_credits = converted;
        events::emit(FacilityClosed {
            market: market.key(),
            facility: a.facility.key(),
            converted_credits: converted,
            burned_credits: burned,
        });
        Ok(())
    }
}
