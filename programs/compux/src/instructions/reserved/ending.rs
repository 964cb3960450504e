//! How every reservation ends: its deposit leaves the deposit vault (all of it back to the
//! owner on completion; on an early end the fee and the clawed-back discount to the
//! treasury and the rest to the owner) and the account closes, rent to the owner.

use anchor_lang::prelude::*;

use crate::errors::CompuxError;
use crate::events::{self, ReservationEnded, ReservationOutcome};
use crate::state::{add_to, sub_from, Market, Reservation};
use crate::token_ops;

pub struct Ending<'a, 'info> {
    pub market: &'a mut Account<'info, Market>,
    pub reservation: &'a Account<'info, Reservation>,
    pub deposit_vault: AccountInfo<'info>,
    pub owner_quote: AccountInfo<'info>,
    pub treasury: AccountInfo<'info>,
    /// Receives the reservation's rent.
    pub owner: AccountInfo<'info>,
}

pub fn end(e: Ending<'_, '_>, outcome: ReservationOutcome) -> Result<()> {
    let r = e.reservation;
    let forfeited = match outcome {
        ReservationOutcome::Completed => 0,
        _ => r.forfeit().ok_or(CompuxError::MathOverflow)?.min(r.deposit),
    };
    let refunded = r.deposit - forfeited;
    for (to, amount) in [(e.treasury, forfeited), (e.owner_quote, refunded)] {
        if amount > 0 {
            token_ops::transfer(
                e.deposit_vault.clone(),
                to,
                e.market.to_account_info(),
                Some(&**e.market),
                amount,
            )?;
        }
    }
    sub_from(&mut e.market.deposits_outstanding, r.deposit)?;
    add_to(&mut e.market.forfeits_received, forfeited)?;
    events::emit(ReservationEnded {
        market: r.market,
        reservation: r.key(),
        credit_account: r.credit_account,
        outcome,
        claimed_periods: r.claimed_periods,
        deposit: r.deposit,
        forfeited,
        refunded,
    });
    r.close(e.owner)
}
