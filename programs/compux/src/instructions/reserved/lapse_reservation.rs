use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use super::ending::{self, Ending};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::ReservationOutcome;
use crate::state::{Market, Reservation};

#[derive(Accounts)]
pub struct LapseReservation<'info> {
    /// Receives the reservation's rent; need not sign.
    #[account(mut, address = reservation.owner @ CompuxError::NotAccountOwner)]
    pub owner: SystemAccount<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [RESERVATION_SEED, reservation.credit_account.as_ref(), &reservation.nonce.to_le_bytes()],
        bump = reservation.bump,
        has_one = market @ CompuxError::MarketMismatch,
    )]
    pub reservation: Box<Account<'info, Reservation>>,
    #[account(mut, address = market.deposit_vault @ CompuxError::WrongVault)]
    pub deposit_vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    /// Receives what the deposit holds beyond the forfeit.
    #[account(
        mut,
        constraint = owner_quote.mint == market.quote_mint @ CompuxError::WrongMint,
        constraint = owner_quote.owner == reservation.owner @ CompuxError::WrongTokenOwner,
    )]
    pub owner_quote: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl LapseReservation<'_> {
    fn validate(&self) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let end = self.reservation.current_period_end().ok_or(CompuxError::MathOverflow)?;
        require!(now >= end, CompuxError::ReservationNotLapsed);
        Ok(())
    }

    /// Permissionless crank: ends a reservation whose current period closed unclaimed, as a
    /// cancellation would (fee and clawback to the treasury, the rest to the owner).
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        ending::end(
            Ending {
                market: &mut a.market,
                reservation: &a.reservation,
                deposit_vault: a.deposit_vault.to_account_info(),
                owner_quote: a.owner_quote.to_account_info(),
                treasury: a.treasury.to_account_info(),
                owner: a.owner.to_account_info(),
            },
            ReservationOutcome::Lapsed,
        )
    }
}
