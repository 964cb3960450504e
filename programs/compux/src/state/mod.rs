pub mod credit_account;
pub mod market;
pub mod reservation;

pub use credit_account::*;
pub use market::*;
pub use reservation::*;
