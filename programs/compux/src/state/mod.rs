pub mod credit_account;
pub mod facility;
pub mod market;
pub mod reservation;
pub mod settlement;

pub use credit_account::*;
pub use facility::*;
pub use market::*;
pub use reservation::*;
pub use settlement::*;
