//! One served request as the ledger keeps it: who spent what, from which credit source, at
//! which provider and price. Written to the journal, then the ledger, before the reply.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub created_at_ms: i64,
    pub key_hash: String,
    pub account: String,
    /// What the request spends from: the credit account (its vault) or a facility.
    pub source: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub credits_charged: u64,
    pub input_per_1m: u64,
    pub output_per_1m: u64,
    /// The provider's own price for the same tokens, and the cost at it (rounded up).
    pub provider_input_per_1m: u64,
    pub provider_output_per_1m: u64,
    pub provider_cost: u64,
}
