//! The hard cap across relayer replicas that share a Postgres ledger. Each replica leases a
//! slice of every credit source's available balance, and of every key's daily credit
//! budget, in the background and spends on its hot path only from its own leases (in
//! memory, as before), so replicas together never spend more than the balance or the
//! budget.
//!
//! A grant, for one source, in one transaction under a row lock on the source
//! (`domain::lease` has the rule): the replica's claim, recorded in its lease row, is what
//! it has in flight (held, and charged since its journal was flushed) plus what it may
//! still hold; it gets what is left of `on-chain - the ledger's unsettled charges - the
//! other replicas' claims`, at most an equal share. Before asking it flushes its journal,
//! so its own charges are in the ledger; another replica's charges since its last renewal
//! count twice (ledger and claim) until it renews: conservative, never an overdraft.
//!
//! Fencing by time, on the database's clock: a row stands for `ttl_ms` plus the longest a
//! request may run (`Config::longest_request_ms`); the replica stops admitting a margin
//! before `ttl_ms` has passed since it asked, by its own monotonic clock (which started
//! earlier than the database's grant). So a replica cut off from the database stops
//! admitting, and the requests it admitted finish, before another replica may be granted
//! its claim. A replica that crashes leaves its claim standing for that long (at most
//! `ttl_ms` + the longest request, 10 minutes by default); one that stops cleanly gives it
//! back at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{KeyHash, Source};
use crate::domain::meter::Meter;
use crate::store::leases::{self, Leased, Term};
use crate::store::ledger::Ledger;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// How long a grant lasts for the other replicas.
    #[serde(default = "default_ttl_ms")]
    pub ttl_ms: u64,
    /// How often a replica renews its leases.
    #[serde(default = "default_every_ms")]
    pub every_ms: u64,
    /// The longest a request admitted under a lease may still run and charge after the
    /// replica stops admitting: set from the upstream deadlines at start
    /// (`Config::longest_request_ms`), not configured.
    #[serde(skip)]
    pub in_flight_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig { ttl_ms: default_ttl_ms(), every_ms: default_every_ms(), in_flight_ms: 0 }
    }
}

fn default_ttl_ms() -> u64 {
    10_000
}
fn default_every_ms() -> u64 {
    500
}

/// Renews this replica's lease on `source`; returns what it may spend.
pub async fn renew(
    ledger: &Ledger,
    meter: &Meter,
    replica: &str,
    source: Source,
    config: &LeaseConfig,
) -> Result<u64> {
    let asked = meter.clock().instant();
    let charged_before = meter.charged_total(source);
    ledger.flush().await?;
    let (onchain, settled_seq) = meter.snapshot(source);
    let what = Leased::Balance { source, onchain, settled_seq };
    let exposure = || meter.exposure(source, charged_before);
    let grant = leases::grant(ledger.pool(), &what, replica, term(config, meter), exposure).await?;
    meter.set_lease(source, &grant, fence(config, asked));
    Ok(grant.spend)
}

/// Renews this replica's lease on `key`'s daily credit budget of `per_day` for `day`
/// (days since the epoch, UTC); returns what it may spend. The same rule as balances, the
/// pool being the budget less what every replica charged the key today (the ledger).
pub async fn renew_budget(
    ledger: &Ledger,
    meter: &Meter,
    replica: &str,
    key: &KeyHash,
    per_day: u64,
    day: i64,
    config: &LeaseConfig,
) -> Result<u64> {
    let asked = meter.clock().instant();
    let spent_before = meter.spent_on(key, day);
    ledger.flush().await?;
    let civil_day = crate::store::db::day_of(day * 86_400_000);
    let what = Leased::Budget { key, per_day, day: &civil_day };
    let exposure = || meter.budget_exposure(key, day, spent_before);
    let grant = leases::grant(ledger.pool(), &what, replica, term(config, meter), exposure).await?;
    meter.set_budget_lease(key, day, &grant, fence(config, asked));
    Ok(grant.spend)
}

/// A row stands for the lease's life plus the longest a request it admitted may run.
fn term(config: &LeaseConfig, meter: &Meter) -> Term {
    let for_ms = config.ttl_ms.saturating_add(config.in_flight_ms);
    Term { ahead_ms: meter.clock().ahead_ms(), for_ms: i64::try_from(for_ms).unwrap_or(i64::MAX) }
}

/// A replica stops admitting under a lease a margin before `ttl_ms` has passed since it
/// `asked` for it (before the database granted it, so never later than the grant's own
/// time plus that).
fn fence(config: &LeaseConfig, asked: Instant) -> Instant {
    asked + Duration::from_millis(config.ttl_ms.saturating_sub(config.ttl_ms / 5 + config.every_ms))
}

/// Keys with a daily credit budget: (key hash, credits per day).
pub type Budgets = Arc<dyn Fn() -> Vec<(KeyHash, u64)> + Send + Sync>;

/// Renews every source of `accounts()` and every key budget of `budgets()` every
/// `every_ms`, forever. The meter must already require leases (`Meter::require_leases`).
pub async fn run(
    ledger: Ledger,
    meter: Arc<Meter>,
    replica: String,
    accounts: crate::jobs::balances::Accounts,
    budgets: Budgets,
    config: LeaseConfig,
) {
    loop {
        for account in accounts() {
            // A source with nothing on chain has nothing to lease (and keys for empty
            // accounts cost no database work).
            for source in meter.sources(account).into_iter().filter(|s| meter.snapshot(*s).0 > 0) {
                if let Err(e) = renew(&ledger, &meter, &replica, source, &config).await {
                    tracing::warn!(%source, error = %format!("{e:#}"), "balance lease not renewed");
                }
            }
        }
        let day = meter.clock().today();
        for (key, per_day) in budgets() {
            if let Err(e) = renew_budget(&ledger, &meter, &replica, &key, per_day, day, &config).await {
                tracing::warn!(error = %format!("{e:#}"), "daily budget lease not renewed");
            }
        }
        tokio::time::sleep(Duration::from_millis(config.every_ms)).await;
    }
}
