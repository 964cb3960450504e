//! The API: routes from one table, handlers, streaming, metrics; errors become HTTP in
//! `crate::error`. The top layer, with the composition in `lib.rs`.

pub mod account;
pub(crate) mod charge;
pub mod gateway;
pub mod messages;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub(crate) mod sse;
