//! The hard cap across relayer replicas that share a Postgres ledger. Each replica leases a
//! slice of every credit source's available balance, and of every key's daily credit
//! budget, in the background and spends on its hot path only from its own leases (in
//! memory, as before), so replicas together never spend more than the balance or the
//! budget.
//!
//! A grant, for one source, in one transaction under a row lock on the source:
//! `free = on-chain balance - unsettled charges in the ledger - live leases of the other
//! replicas`, and the replica takes `min(free, its fair share)` where the fair share is
//! `(on-chain - unsettled) / live replicas`. Before asking, the replica flushes its journal
//! into the ledger, so its own charges are in the unsettled sum; charges made while the
//! grant is computed, and holds in flight, are taken off the new lease locally. Another
//! replica's charges since its last renewal count twice (in the ledger and in its lease)
//! until it renews: conservative, never an overdraft. A lease lasts `ttl_ms`; the replica
//! stops spending from it a margin earlier unless renewed, so an expired lease is never
//! still being spent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::domain::ids::{KeyHash, Source};
use crate::domain::meter::Meter;
use crate::store::leases::{self, Leased};
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
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig { ttl_ms: default_ttl_ms(), every_ms: default_every_ms() }
    }
}

fn default_ttl_ms() -> u64 {
    10_000
}
fn default_every_ms() -> u64 {
    500
}

/// Renews this replica's lease on `source`; returns the grant.
pub async fn renew(
    ledger: &Ledger,
    meter: &Meter,
    replica: &str,
    source: Source,
    config: &LeaseConfig,
) -> Result<u64> {
    let charged_before = meter.charged_total(source);
    ledger.flush().await?;
    let (onchain, settled_seq) = meter.snapshot(source);
    let what = Leased::Balance { source, onchain, settled_seq };
    let grant = grant_until(ledger, &what, replica, config, meter.clock()).await?;
    meter.set_lease(source, grant, charged_before, stop_spending_at(config, meter.clock()));
    Ok(grant)
}

/// Renews this replica's lease on `key`'s daily credit budget of `per_day` for `day`
/// (days since the epoch, UTC); returns the grant. The same rule as balances: `free =
/// budget - what every replica charged the key today (the ledger) - the other replicas'
/// live leases`, and the replica takes `min(free, (budget - spent) / live replicas)`.
pub async fn renew_budget(
    ledger: &Ledger,
    meter: &Meter,
    replica: &str,
    key: &KeyHash,
    per_day: u64,
    day: i64,
    config: &LeaseConfig,
) -> Result<u64> {
    let spent_before = meter.spent_on(key, day);
    ledger.flush().await?;
    let civil_day = crate::store::db::day_of(day * 86_400_000);
    let what = Leased::Budget { key, per_day, day: &civil_day };
    let grant = grant_until(ledger, &what, replica, config, meter.clock()).await?;
    meter.set_budget_lease(key, day, grant, spent_before, stop_spending_at(config, meter.clock()));
    Ok(grant)
}

async fn grant_until(
    ledger: &Ledger,
    what: &Leased<'_>,
    replica: &str,
    config: &LeaseConfig,
    clock: &Clock,
) -> Result<u64> {
    let now_ms = clock.now_ms();
    leases::grant(ledger.pool(), what, replica, now_ms, now_ms + config.ttl_ms as i64).await
}

/// A replica stops spending from a lease a margin before the others may take it back.
fn stop_spending_at(config: &LeaseConfig, clock: &Clock) -> Instant {
    clock.instant() + Duration::from_millis(config.ttl_ms.saturating_sub(config.ttl_ms / 5 + config.every_ms))
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
            for source in meter.sources(account) {
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
