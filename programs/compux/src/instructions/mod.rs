//! One file per instruction, grouped by who sends it. Each file holds the accounts struct,
//! a `validate()` for the checks Anchor's constraints cannot express, and the handler.

pub mod admin;
pub mod financed;
pub mod relayer;
pub mod reserved;
pub mod startup;

pub use admin::*;
pub use financed::*;
pub use relayer::*;
pub use reserved::*;
pub use startup::*;
