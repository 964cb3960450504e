//! Charging a served request: its usage record made durable first, then the hold charged
//! with the real cost (never more than the hold).

use serde_json::Value;

use crate::domain::ids::{KeyHash, Pubkey};
use crate::domain::meter::Hold;
use crate::domain::pricing::{self, Price, Tokens};
use crate::domain::usage::UsageRecord;
use crate::store::ledger::Ledger;

/// One served request, waiting to be recorded and charged.
pub(crate) struct Served {
    pub request_id: String,
    pub key_hash: KeyHash,
    pub account: Pubkey,
    pub model: String,
    pub provider: String,
    pub price: Price,
    pub provider_price: Price,
    /// The most input tokens the request can count (what a cut stream's input is charged
    /// at when the provider reported none).
    pub prompt_bound: u64,
    /// Counts what providers bill beyond what a request could be charged (`/metrics`).
    pub shortfalls: prometheus::IntCounterVec,
}

impl Served {
    /// Records the usage durably, then charges it. A reply without usage is charged its
    /// worst case, the hold. A provider that bills more than the hold (it ignored the bound
    /// it was sent, or billed a field the relayer does not know) is charged what the source
    /// can pay beyond the hold, and the rest is a shortfall: in the ledger, in `/metrics`
    /// and logged at ERROR, never silent. If the record cannot be written, nothing is
    /// charged and the error is returned.
    pub async fn record_and_charge(
        self,
        ledger: &Ledger,
        mut hold: Hold,
        usage: Option<Tokens>,
    ) -> anyhow::Result<u64> {
        let cost = match usage {
            Some(t) => pricing::charge(self.price, t).unwrap_or(u64::MAX),
            None => hold.amount(),
        };
        let tokens = usage.unwrap_or_default();
        let held = hold.amount();
        let charged = if cost > held { hold.extend_toward(cost) } else { cost };
        let shortfall = cost - charged;
        if shortfall > 0 {
            self.shortfalls.with_label_values(&[&self.provider]).inc_by(shortfall);
            tracing::error!(
                request_id = %self.request_id, provider = %self.provider, model = %self.model,
                held, cost, charged, shortfall,
                "a provider billed more than the request held and the account could pay: the marketplace loses the shortfall"
            );
        }
        // What the provider bills for the same tokens; with no usage reported, the hold's
        // share of it (the caller is charged its hold).
        let provider_cost = match usage {
            Some(t) => pricing::charge(self.provider_price, t).unwrap_or(u64::MAX),
            None => pricing::proportion(charged, self.provider_price, self.price),
        };
        ledger
            .record(UsageRecord {
                request_id: self.request_id,
                created_at_ms: hold.admitted_at_ms(),
                key_hash: self.key_hash,
                account: self.account,
                source: hold.source(),
                provider: self.provider,
                model: self.model,
                input_tokens: tokens.input,
                output_tokens: tokens.output,
                cached_input_tokens: tokens.cached,
                cache_write_tokens: tokens.cache_write,
                credits_charged: charged,
                input_per_1m: self.price.input_per_1m,
                output_per_1m: self.price.output_per_1m,
                provider_input_per_1m: self.provider_price.input_per_1m,
                provider_output_per_1m: self.provider_price.output_per_1m,
                provider_cost,
                shortfall,
            })
            .await?;
        Ok(hold.charge(cost))
    }
}

/// The tokens in a reply's or chunk's `usage`.
pub(crate) fn usage_of(v: &Value) -> Option<Tokens> {
    Tokens::of_usage(&v["usage"])
}
