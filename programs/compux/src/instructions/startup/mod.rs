pub mod announce_transfer;
pub mod auto_refill;
pub mod buy_credits;
pub mod configure_auto_refill;
pub mod open_credit_account;
mod purchase;
pub mod set_burn_ceiling;
pub mod transfer_credits;

pub use announce_transfer::*;
pub use auto_refill::*;
pub use buy_credits::*;
pub use configure_auto_refill::*;
pub use open_credit_account::*;
pub use set_burn_ceiling::*;
pub use transfer_credits::*;
