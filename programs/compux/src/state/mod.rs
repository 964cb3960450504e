pub mod credit_account;
pub mod facility;
pub mod market;
pub mod pending_update;
pub mod reservation;
pub mod settlement;

pub use credit_account::*;
pub use facility::*;
pub use market::*;
pub use pending_update::*;
pub use reservation::*;
pub use settlement::*;

use anchor_lang::prelude::*;

/// Adds `amount` to a running total, failing with `MathOverflow` rather than wrapping.
pub fn add_to(total: &mut u64, amount: u64) -> Result<()> {
    *total = total.checked_add(amount).ok_or(crate::errors::CompuxError::MathOverflow)?;
    Ok(())
}

/// Takes `amount` off a running total, failing with `MathOverflow` on underflow.
pub fn sub_from(total: &mut u64, amount: u64) -> Result<()> {
    *total = total.checked_sub(amount).ok_or(crate::errors::CompuxError::MathOverflow)?;
    Ok(())
}
