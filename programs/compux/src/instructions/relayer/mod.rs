pub mod settle;
pub mod settle_facility;

pub use settle::*;
pub use settle_facility::*;
