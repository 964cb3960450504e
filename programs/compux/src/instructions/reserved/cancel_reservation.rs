use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use super::ending::{self, Ending};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::ReservationOutcome;
use crate::state::{Market, Reservation};

#[derive(Accounts)]
pub struct CancelReservation<'info> {
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
        seeds = [RESERVATION_SEED, reservation.credit_account.as_ref(), &reservation.nonce.to_le_bytes()],
        bump = reservation.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = owner @ CompuxError::NotAccountOwner,
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

impl CancelReservation<'_> {
    /// Ends the reservation early: the early-termination fee and the discount already taken
    /// on claimed periods go to the treasury, the rest of the deposit back to the owner;
    /// credits already claimed stay with the owner.
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
            ReservationOutcome::Cancelled,
        )
    }
}
