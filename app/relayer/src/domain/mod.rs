//! The domain, with no I/O: the hard cap (meter), prices, routing, the provider catalog
//! and the usage record. Imports only `clock` and `error`.

pub mod bound;
pub mod catalog;
pub mod ids;
pub mod lease;
pub mod meter;
pub mod pricing;
pub mod routing;
pub mod usage;
