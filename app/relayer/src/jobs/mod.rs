//! Background work: balance refresh and chain events, leases between replicas, leader
//! election, low-balance alerts, settlement. Imports access, the store and the domain.

pub mod alerts;
pub mod balances;
pub mod chain;
pub mod leases;
pub mod settler;
pub mod tasks;
pub mod watch;
