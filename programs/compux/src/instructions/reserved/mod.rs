pub mod cancel_reservation;
pub mod claim_period;
mod ending;
pub mod lapse_reservation;
pub mod reserve;

pub use cancel_reservation::*;
pub use claim_period::*;
pub use lapse_reservation::*;
pub use reserve::*;
