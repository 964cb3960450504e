//! The database and the durable path of usage: every statement of the ledger, the journal,
//! settlement batches. Imports the domain.

pub mod alerts;
pub mod batches;
pub mod db;
pub mod journal;
pub mod keys;
pub mod leader;
pub mod leases;
pub mod ledger;
pub mod rate_limits;
