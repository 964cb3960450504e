//! How every reservation ends: its deposit leaves the deposit vault (back to the owner on
//! completion, to the treasury otherwise) and the account closes, rent to the owner.

use anchor_lang::prelude::*;

use crate::errors::CompuxError;
use crate::events::{self, ReservationEnded, ReservationOutcome};
use crate::state::{Market, Reservation};
use crate::token_ops;

pub struct Ending<'a, 'info> {
    pub market: &'a mut Account<'info, Market>,
    pub reservation: &'a Account<'info, Reservation>,
    pub deposit_vault: AccountInfo<'info>,
    /// The owner's quote account on completion, the treasury otherwise.
    pub deposit_to: AccountInfo<'info>,
    /// Receives the reservation's rent.
    pub owner: AccountInfo<'info>,
}

pub fn end(e: Ending<'_, '_>, outcome: ReservationOutcome) -> Result<()> {
    let r = e.reservation;
    if r.deposit > 0 {
        token_ops::transfer(
            e.deposit_vault,
            e.deposit_to,
            e.market.to_account_info(),
            Some(&**e.market),
            r.deposit,
        )?;
    }
    e.market.deposits_outstanding =
        e.market.deposits_outstanding.checked_sub(r.deposit).ok_or(CompuxError::MathOverflow)?;
    events::emit(ReservationEnded {
        market: r.market,
        reservation: r.key(),
        credit_account: r.credit_account,
        outcome,
        claimed_periods: r.claimed_periods,
        deposit: r.deposit,
    });
    r.close(e.owner)
}
