//! One served request as the ledger keeps it: who spent what, from which credit source, at
//! which provider and price. Written to the journal, then the ledger, before the reply.

use serde::{Deserialize, Serialize};
use serde_with::{serde_as, DisplayFromStr};

use crate::domain::ids::{KeyHash, Pubkey, Source};

/// Written to the journal as JSON with addresses in base58 and the source as the bare
/// address it has on chain (what the ledger's columns hold too); read back through
/// `wire::Record`, where `Source::of` types the source again.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Record")]
pub struct UsageRecord {
    pub request_id: String,
    pub created_at_ms: i64,
    pub key_hash: KeyHash,
    /// The credit account whose key made the request.
    #[serde_as(as = "DisplayFromStr")]
    pub account: Pubkey,
    /// What the request spends from: the credit account's vault or a facility.
    #[serde(serialize_with = "wire::address")]
    pub source: Source,
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
    /// What the provider billed beyond what was charged (the request's hold and whatever
    /// else the source could pay): a loss to the marketplace, never silent.
    #[serde(default)]
    pub shortfall: u64,
}

/// The journal's shape of a record: addresses in base58, as in every journal written.
mod wire {
    use serde::Deserialize;
    use serde_with::{serde_as, DisplayFromStr};

    use super::UsageRecord;
    use crate::domain::ids::{KeyHash, Pubkey, Source};

    #[serde_as]
    #[derive(Deserialize)]
    pub struct Record {
        request_id: String,
        created_at_ms: i64,
        key_hash: KeyHash,
        #[serde_as(as = "DisplayFromStr")]
        account: Pubkey,
        #[serde_as(as = "DisplayFromStr")]
        source: Pubkey,
        provider: String,
        model: String,
        input_tokens: u64,
        output_tokens: u64,
        #[serde(default)]
        cached_input_tokens: u64,
        #[serde(default)]
        cache_write_tokens: u64,
        credits_charged: u64,
        input_per_1m: u64,
        output_per_1m: u64,
        provider_input_per_1m: u64,
        provider_output_per_1m: u64,
        provider_cost: u64,
        #[serde(default)]
        shortfall: u64,
    }

    pub fn address<S: serde::Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&source.address())
    }

    impl From<Record> for UsageRecord {
        fn from(r: Record) -> UsageRecord {
            UsageRecord {
                request_id: r.request_id,
                created_at_ms: r.created_at_ms,
                key_hash: r.key_hash,
                account: r.account,
                source: Source::of(r.source, r.account),
                provider: r.provider,
                model: r.model,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cached_input_tokens: r.cached_input_tokens,
                cache_write_tokens: r.cache_write_tokens,
                credits_charged: r.credits_charged,
                input_per_1m: r.input_per_1m,
                output_per_1m: r.output_per_1m,
                provider_input_per_1m: r.provider_input_per_1m,
                provider_output_per_1m: r.provider_output_per_1m,
                provider_cost: r.provider_cost,
                shortfall: r.shortfall,
            }
        }
    }
}

/// Records for the crate's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// Request `i` (`req-00i`, a second after the one before) of `account`, spending
    /// `credits` from `source`.
    pub fn record(i: i64, account: Pubkey, source: Source, credits: u64) -> UsageRecord {
        UsageRecord {
            request_id: format!("req-{i:03}"),
            created_at_ms: 1_764_000_000_000 + i * 1_000,
            key_hash: KeyHash::of("sk-test"),
            account,
            source,
            provider: "p".into(),
            model: "m".into(),
            input_tokens: 1,
            output_tokens: 2,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            credits_charged: credits,
            input_per_1m: 3,
            output_per_1m: 4,
            provider_input_per_1m: 5,
            provider_output_per_1m: 6,
            provider_cost: credits,
            shortfall: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal keeps addresses as base58 text (as journals written before the types did),
    /// and a record read back is the record written, its source's kind included.
    #[test]
    fn a_record_goes_through_the_journal_as_text_and_comes_back_typed() {
        let account = Pubkey::new_unique();
        for source in [Source::Vault(account), Source::Facility(Pubkey::new_unique())] {
            let r = fixtures::record(1, account, source, 7);
            let line = serde_json::to_value(&r).unwrap();
            assert_eq!(line["account"], account.to_string());
            assert_eq!(line["source"], source.address().to_string());
            assert_eq!(serde_json::from_value::<UsageRecord>(line).unwrap(), r);
        }
    }
}
