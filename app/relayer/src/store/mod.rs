//! The database and the durable path of usage: every statement of the ledger, the journal,
//! settlement batches. Imports the domain.

pub mod batches;
pub mod db;
pub mod journal;
pub mod ledger;
