//! CompuX over Solana RPC, shared by the CLI, the tests and the relayer: sending
//! transactions with progress and named program errors, market bootstrap from TOML, token
//! plumbing, and reads (markets, accounts, the auditor's snapshot).

pub mod bootstrap;
pub mod fetch;
pub mod send;
pub mod tokens;

pub use send::{send, Sender};
