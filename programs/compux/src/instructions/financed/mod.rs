pub mod accept_facility;
pub mod cancel_offer;
pub mod close_facility;
pub mod freeze_escrow;
pub mod offer_facility;
pub mod recover;
pub mod refresh_facility;
pub mod release_tranche;
pub mod repay;
pub mod withdraw_repayments;

pub use accept_facility::*;
pub use cancel_offer::*;
pub use close_facility::*;
pub use freeze_escrow::*;
pub use offer_facility::*;
pub use recover::*;
pub use refresh_facility::*;
pub use release_tranche::*;
pub use repay::*;
pub use withdraw_repayments::*;

use anchor_lang::prelude::*;

use crate::errors::CompuxError;
use crate::events::{self, FacilityStatusChanged};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

/// Refreshes `facility` to the chain clock and emits the status change, if any.
pub(crate) fn refresh(facility: &mut Account<Facility>) -> Result<i64> {
    let now = Clock::get()?.unix_timestamp;
    let before = facility.refresh(now)?;
    emit_transition(facility, before);
    Ok(now)
}

pub(crate) fn emit_transition(facility: &Account<Facility>, before: FacilityStatus) {
    if facility.status != before {
        events::emit(FacilityStatusChanged {
            market: facility.market,
            facility: facility.key(),
            from: before,
            to: facility.status,
        });
    }
}

pub(crate) fn require_status(facility: &Facility, allowed: &[FacilityStatus]) -> Result<()> {
    require!(allowed.contains(&facility.status), CompuxError::InvalidFacilityStatus);
    Ok(())
}

/// Closes a closed facility's emptied vault, its rent back to the lender. The facility
/// account itself stays, status Closed, as a tombstone: its address is the lender's
/// choice, and offering it again would start a new settlement sequence where the relayer
/// (and the auditor's replay) keep the old one.
pub(crate) fn close_facility_vault<'info>(
    market: &Account<'info, Market>,
    quote_vault: AccountInfo<'info>,
    lender: AccountInfo<'info>,
) -> Result<()> {
    token_ops::close_vault(market, quote_vault, lender)
}
