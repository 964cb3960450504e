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
use serde::Deserialize;
use sqlx::Row;

use crate::domain::meter::Meter;
use crate::store::db::Pool;
use crate::store::ledger::Ledger;

#[derive(Clone, Debug, Deserialize)]
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

/// What every replica charged from `source` and the chain has not burned yet (batches after
/// `settled_seq`, the last one a balance snapshot showed burned), from the shared ledger.
pub async fn unsettled<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    source: &str,
    settled_seq: u64,
) -> Result<u64> {
    let sum: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records \
         WHERE source = $1 AND (settled_seq IS NULL OR settled_seq > $2)",
    )
    .bind(source)
    .bind(i64::try_from(settled_seq).unwrap_or(i64::MAX))
    .fetch_one(db)
    .await?;
    Ok(sum.max(0) as u64)
}

/// Renews this replica's lease on `source`; returns the grant.
pub async fn renew(
    pool: &Pool,
    ledger: &Ledger,
    meter: &Meter,
    replica: &str,
    source: &str,
    config: &LeaseConfig,
) -> Result<u64> {
    let charged_before = meter.charged_total(source);
    ledger.flush().await?;
    let (onchain, settled_seq) = meter.snapshot(source);
    let now_ms = crate::clock::now_ms();
    let expires_at_ms = now_ms + config.ttl_ms as i64;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO lease_sources (source) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(source)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT source FROM lease_sources WHERE source = $1 FOR UPDATE")
        .bind(source)
        .execute(&mut *tx)
        .await?;
    let unsettled = unsettled(&mut *tx, source, settled_seq).await?;
    let others = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS leased, CAST(COUNT(*) AS BIGINT) AS n FROM balance_leases \
         WHERE source = $1 AND replica <> $2 AND expires_at_ms > $3",
    )
    .bind(source)
    .bind(replica)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    let (leased, n): (i64, i64) = (others.get("leased"), others.get("n"));
    let spendable = onchain.saturating_sub(unsettled);
    let free = spendable.saturating_sub(leased.max(0) as u64);
    let grant = free.min(spendable / (n.max(0) as u64 + 1));
    sqlx::query(
        "INSERT INTO balance_leases (source, replica, amount, expires_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (source, replica) DO UPDATE SET amount = EXCLUDED.amount, expires_at_ms = EXCLUDED.expires_at_ms",
    )
    .bind(source)
    .bind(replica)
    .bind(i64::try_from(grant).unwrap_or(i64::MAX))
    .bind(expires_at_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    meter.set_lease(source, grant, charged_before, stop_spending_at(config));
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
    key: &str,
    per_day: u64,
    day: i64,
    config: &LeaseConfig,
) -> Result<u64> {
    let spent_before = meter.spent_on(key, day);
    ledger.flush().await?;
    let now_ms = crate::clock::now_ms();
    let civil_day = crate::store::db::day_of(day * 86_400_000);
    let lock = format!("budget:{key}");
    let mut tx = ledger.pool().begin().await?;
    sqlx::query("INSERT INTO lease_sources (source) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(&lock)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT source FROM lease_sources WHERE source = $1 FOR UPDATE")
        .bind(&lock)
        .execute(&mut *tx)
        .await?;
    let spent: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records WHERE key_hash = $1 AND day = $2",
    )
    .bind(key)
    .bind(&civil_day)
    .fetch_one(&mut *tx)
    .await?;
    let others = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS leased, CAST(COUNT(*) AS BIGINT) AS n FROM budget_leases \
         WHERE key_hash = $1 AND day = $2 AND replica <> $3 AND expires_at_ms > $4",
    )
    .bind(key)
    .bind(&civil_day)
    .bind(replica)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    let (leased, n): (i64, i64) = (others.get("leased"), others.get("n"));
    let left = per_day.saturating_sub(spent.max(0) as u64);
    let grant = left.saturating_sub(leased.max(0) as u64).min(left / (n.max(0) as u64 + 1));
    sqlx::query(
        "INSERT INTO budget_leases (key_hash, replica, day, amount, expires_at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (key_hash, replica) DO UPDATE SET day = EXCLUDED.day, amount = EXCLUDED.amount, expires_at_ms = EXCLUDED.expires_at_ms",
    )
    .bind(key)
    .bind(replica)
    .bind(&civil_day)
    .bind(i64::try_from(grant).unwrap_or(i64::MAX))
    .bind(now_ms + config.ttl_ms as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    meter.set_budget_lease(key, day, grant, spent_before, stop_spending_at(config));
    Ok(grant)
}

/// A replica stops spending from a lease a margin before the others may take it back.
fn stop_spending_at(config: &LeaseConfig) -> Instant {
    Instant::now() + Duration::from_millis(config.ttl_ms.saturating_sub(config.ttl_ms / 5 + config.every_ms))
}

/// Gives every lease of `replica` back (at shutdown), so the others may grant it at once
/// rather than after the leases expire.
pub async fn release(pool: &Pool, replica: &str) -> Result<()> {
    for table in ["balance_leases", "budget_leases"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE replica = $1")).bind(replica).execute(pool).await?;
    }
    Ok(())
}

/// Keys with a daily credit budget: (key hash, credits per day).
pub type Budgets = Arc<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

/// Renews every source of `accounts()` and every key budget of `budgets()` every
/// `every_ms`, in the background.
pub fn spawn(
    ledger: Ledger,
    meter: Arc<Meter>,
    replica: String,
    accounts: crate::jobs::balances::Accounts,
    budgets: Budgets,
    config: LeaseConfig,
) {
    meter.require_leases();
    tokio::spawn(async move {
        loop {
            for account in accounts() {
                for source in meter.sources(&account) {
                    if let Err(e) = renew(ledger.pool(), &ledger, &meter, &replica, &source, &config).await {
                        tracing::warn!(source, error = %format!("{e:#}"), "balance lease not renewed");
                    }
                }
            }
            let day = crate::clock::today();
            for (key, per_day) in budgets() {
                if let Err(e) = renew_budget(&ledger, &meter, &replica, &key, per_day, day, &config).await {
                    tracing::warn!(error = %format!("{e:#}"), "daily budget lease not renewed");
                }
            }
            tokio::time::sleep(Duration::from_millis(config.every_ms)).await;
        }
    });
}
