//! The CompuX relayer: an OpenAI-compatible gateway that meters every request against
//! on-chain credits (a hard cap: never below zero), routes it to the cheapest provider
//! serving the model with failover, and charges only what was served.
//!
//! Status: chat completions (non-streaming), models, usage, routing with failover, the hard
//! cap, the SQLite usage ledger and OpenAI-shaped errors. Streaming, completions,
//! embeddings, wallet-issued keys, on-chain balance refresh and metrics come next.

pub mod config;
pub mod error;
pub mod gateway;
pub mod ledger;
pub mod meter;
pub mod pricing;
pub mod sim;

pub use config::Config;
pub use gateway::{serve, Gateway};
pub use ledger::Ledger;
pub use meter::Meter;
