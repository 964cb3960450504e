//! Who may spend: API keys (wallet-issued, hashed, shared by replicas) and
//! requests-per-minute limits. Imports the store and the domain.

pub mod keys;
pub mod limits;
