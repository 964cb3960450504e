//! Test harness: a bank with the program and SPL Token, a quote mint, a market, and users.

pub mod assert;
pub mod env;
pub mod fixtures;

pub use assert::*;
pub use env::*;
pub use fixtures::*;
