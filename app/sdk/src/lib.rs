//! Rust client for the `compux` program: PDA derivations, instruction builders, account
//! and event decoding. It performs no I/O, so the tests, the CLI, the localnet and the
//! relayer all build the same instructions from the same code.

pub mod audit;
pub mod changes;
pub mod compute;
pub mod decode;
pub mod ix;
pub mod pda;
pub mod receipt;
pub mod units;

pub use compux::{self, constants, errors::CompuxError, events, math, state, ID as PROGRAM_ID};
pub use pda::{CreditAccountKeys, FacilityKeys, MarketKeys};
