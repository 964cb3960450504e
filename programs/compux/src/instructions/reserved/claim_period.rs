use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::ending::{self, Ending};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, ReservationOutcome, ReservationPeriodClaimed};
use crate::state::{CreditAccount, Market, Reservation};
use crate::token_ops;

#[derive(Accounts)]
pub struct ClaimPeriod<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],
        bump = credit_account.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = owner @ CompuxError::NotAccountOwner,
        has_one = vault @ CompuxError::WrongVault,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    #[account(
        mut,
        seeds = [RESERVATION_SEED, credit_account.key().as_ref(), &reservation.nonce.to_le_bytes()],
        bump = reservation.bump,
    )]
    pub reservation: Box<Account<'info, Reservation>>,
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(mut, constraint = owner_quote.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub owner_quote: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.deposit_vault @ CompuxError::WrongVault)]
    pub deposit_vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl ClaimPeriod<'_> {
    fn validate(&self) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let r = &self.reservation;
        let start = r.current_period_start().ok_or(CompuxError::MathOverflow)?;
        let end = r.current_period_end().ok_or(CompuxError::MathOverflow)?;
        require!(now >= start, CompuxError::PeriodNotStarted);
        require!(now < end, CompuxError::ReservationLapsed);
        Ok(())
    }

    /// Pays the locked price for the next period and mints its credits. Claims stay open
    /// while the market is paused: the price was locked, and a pause must not make a
    /// reservation lapse. The last claim returns the deposit and closes the reservation.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let r = &mut a.reservation;
        token_ops::transfer(
            a.owner_quote.to_account_info(),
            a.treasury.to_account_info(),
            a.owner.to_account_info(),
            None,
            r.period_cost,
        )?;
        token_ops::mint_credits(
            &a.market,
            a.credit_mint.to_account_info(),
            a.vault.to_account_info(),
            r.credits_per_period,
        )?;
        let period = r.claimed_periods;
        r.claimed_periods += 1;
        let acct = &mut a.credit_account;
        acct.total_quote_paid =
            acct.total_quote_paid.checked_add(r.period_cost).ok_or(CompuxError::MathOverflow)?;
        acct.total_reserved_claimed =
            acct.total_reserved_claimed.checked_add(r.credits_per_period).ok_or(CompuxError::MathOverflow)?;
        events::emit(ReservationPeriodClaimed {
            market: a.market.key(),
            reservation: r.key(),
            period,
            credits: r.credits_per_period,
            quote_in: r.period_cost,
        });

        if r.claimed_periods == r.periods {
            ending::end(
                Ending {
                    market: &mut a.market,
                    reservation: &a.reservation,
                    deposit_vault: a.deposit_vault.to_account_info(),
                    owner_quote: a.owner_quote.to_account_info(),
                    treasury: a.treasury.to_account_info(),
                    owner: a.owner.to_account_info(),
                },
                ReservationOutcome::Completed,
            )?;
        }
        Ok(())
    }
}
