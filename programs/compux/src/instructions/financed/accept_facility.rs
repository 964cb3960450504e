use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityAccepted};
use crate::math::loan::Loan;
use crate::state::{
    add_to, financed_credits, recovery_earmark, upfront_credits, CreditAccount, Facility, FacilityStatus,
    FacilityTerms, Market,
};
use crate::token_ops;

#[derive(Accounts)]
pub struct AcceptFacility<'info> {
    pub borrower: Signer<'info>,
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
    /// The borrower's credit account: unused credits convert into it at close.
    #[account(
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), borrower.key().as_ref()],
        bump = borrower_account.bump,
    )]
    pub borrower_account: Box<Account<'info, CreditAccount>>,
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    /// Read for its free balance: the facility's recovery earmark must fit in it.
    #[account(address = market.recovery_reserve @ CompuxError::WrongVault)]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl AcceptFacility<'_> {
    fn validate(&self, expected: &FacilityTerms) -> Result<()> {
        require!(!self.market.paused, CompuxError::MarketPaused);
        require_status(&self.facility, &[FacilityStatus::Offered])?;
        require!(self.facility.terms == *expected, CompuxError::TermsMismatch);
        // The market's limits may have tightened since the offer: they hold at acceptance.
        self.facility.terms.check_policy(&self.market.financing)
    }

    /// Takes the terms the borrower agreed to and the fewest credits it accepts; fails on any
    /// difference. The principal goes to the treasury (the marketplace buys capacity
    /// wholesale); principal x multiplier worth of credits at the base price are minted into
    /// the escrow; the upfront share is released; the facility's worst-case recovery payout
    /// is earmarked from the reserve's free balance; the repayment schedule starts now.
    #[access_control(ctx.accounts.validate(&expected))]
    pub fn handler(ctx: Context<Self>, expected: FacilityTerms, min_credits: u64) -> Result<()> {
        let a = ctx.accounts;
        let now = Clock::get()?.unix_timestamp;
        let t = a.facility.terms;
        let overflow = || error!(CompuxError::MathOverflow);
        let total = financed_credits(t.principal, a.market.base_price, t.credit_multiplier_bps)
            .ok_or_else(overflow)?;
        require!(total > 0, CompuxError::ZeroAmount);
        require!(total >= min_credits, CompuxError::CreditsBelowMinimum);
        let rate = a.market.financing.recovery_rate_bps;
        let earmark = recovery_earmark(t.principal, rate).ok_or_else(overflow)?;
        require!(
            earmark <= a.market.free_reserve(a.recovery_reserve.amount),
            CompuxError::ReserveInsufficient
        );
        let cap = a.market.financing.cap_for(t.principal).ok_or(CompuxError::MultiplierAboveCap)?;
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

        add_to(&mut a.market.reserve_earmarked, earmark)?;
        add_to(&mut a.market.principals_received, t.principal)?;
        let market = &a.market;
        token_ops::transfer(
            a.quote_vault.to_account_info(),
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
        f.accepted_base_price = market.base_price;
        f.accepted_cap_bps = cap;
        f.recovery_rate_bps = rate;
        f.earmark = earmark;
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
            base_price: market.base_price,
            cap_bps: cap,
            recovery_rate_bps: rate,
            earmark,
        });
        Ok(())
    }
}
