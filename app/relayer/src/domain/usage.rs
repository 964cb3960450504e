//! One served request as the ledger keeps it: who spent what, from which credit source, at
//! which provider and price. Written to the journal, then the ledger, before the reply.

use serde::{Deserialize, Serialize};

use crate::domain::ids::KeyHash;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub created_at_ms: i64,
    pub key_hash: KeyHash,
    pub account: String,
    /// What the request spends from: the credit account (its vault) or a facility.
    pub source: String,
    pub provider: String,
    pub model: String,
    /// Every prompt token, the cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache, and written to it (charged at their
    /// own prices; absent in journals written before they were kept).
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub credits_charged: u64,
    pub input_per_1m: u64,
    pub output_per_1m: u64,
    /// The provider's own price for the same tokens, and the cost at it (rounded up).
    pub provider_input_per_1m: u64,
    pub provider_output_per_1m: u64,
    pub provider_cost: u64,
}

/// What a credit source is: where a settlement batch burns from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Burns from the credit account's vault (`settle`).
    CreditAccount,
    /// Burns from the facility's escrow (`settle_facility`).
    Facility,
}

impl SourceKind {
    /// What `source` is to `account`, the credit account whose request spent from it: the
    /// account itself stands for its own vault; any other source is a facility it borrows
    /// under (the meter's sources are exactly these). The one place this rule lives.
    pub fn of(source: &str, account: &str) -> SourceKind {
        if source == account {
            SourceKind::CreditAccount
        } else {
            SourceKind::Facility
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::CreditAccount => "credit_account",
            SourceKind::Facility => "facility",
        }
    }

    pub fn parse(s: &str) -> SourceKind {
        if s == "facility" {
            SourceKind::Facility
        } else {
            SourceKind::CreditAccount
        }
    }
}
