use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityClosed};
use crate::state::{convertible_credits, CreditAccount, Facility, FacilityStatus, Market, UnusedCredits};
use crate::token_ops;

#[derive(Accounts)]
pub struct CloseFacility<'info> {
    /// Its earmark, if any is still held, is released.
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
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    /// Paid every rent, so receives it back; need not sign.
    #[account(mut)]
    pub lender: SystemAccount<'info>,
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
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
    fn validate(&self) -> Result<()> {
        require_status(&self.facility, &[FacilityStatus::Repaid, FacilityStatus::Recovered])?;
        let now = Clock::get()?.unix_timestamp;
        require!(now >= self.facility.maturity()?, CompuxError::NotMatured);
        // The usage metered before maturity burns from the escrow first: converting or
        // burning it earlier would charge that usage again to the borrower's vault.
        require!(now > self.facility.maturity_settlement_end()?, CompuxError::SettlementWindowOpen);
        Ok(())
    }

    /// Permissionless at the end of the financing period, once the facility is repaid or
    /// recovered (never earlier: a prepayment must not turn financed credits into standard
    /// ones). A repaid facility's tranches are all due by then; its unused credits become
    /// the borrower's standard credits at their principal's worth (`convertible_credits`:
    /// the multiplier's surplus is burned) or are all burned, as the terms say. A recovered
    /// facility's leftover released credits go back to the borrower the same way. Nothing
    /// else leaves the escrow, which closes with its rent to the lender; so does the vault
    /// once empty. The facility stays, Closed, so its address is never offered again.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let f = &mut a.facility;
        let unused = a.escrow.amount;
        let convert = match f.status {
            FacilityStatus::Repaid => {
                f.released_credits = f.total_credits;
                f.tranches_released = f.terms.tranches;
                f.terms.unused_at_close == UnusedCredits::Convert
            }
            _ => true,
        };
        let converted = match convert {
            true => {
                convertible_credits(unused, f.terms.credit_multiplier_bps).ok_or(CompuxError::MathOverflow)?
            }
            false => 0,
        };
        let burned = unused - converted;
        let market = &a.market;
        if a.escrow.is_frozen() {
            token_ops::set_frozen(
                market,
                a.credit_mint.to_account_info(),
                a.escrow.to_account_info(),
                false,
            )?;
        }
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
        token_ops::close_vault(market, a.escrow.to_account_info(), a.lender.to_account_info())?;
        f.converted_credits = converted;
        f.status = FacilityStatus::Closed;
        f.release_earmark(&mut a.market)?;
        let vault_balance = a.quote_vault.amount;
        events::emit(FacilityClosed {
            market: a.market.key(),
            facility: a.facility.key(),
            converted_credits: converted,
            burned_credits: burned,
            vault_balance,
        });
        if vault_balance == 0 {
            super::close_facility_vault(
                &a.market,
                a.quote_vault.to_account_info(),
                a.lender.to_account_info(),
            )?;
        }
        Ok(())
    }
}
