//! Leases between replicas sharing a Postgres ledger: each replica holds a slice of every
//! credit source's spendable balance, and of every key's daily budget, granted in one
//! transaction under a row lock (`lease_sources`) so two grants of one pool never
//! interleave. The rule is `domain::lease::grant`; a lease row stores the replica's whole
//! claim (in flight and unspent), and its expiry is set and compared by the database's
//! clock, never a replica's own.

use anyhow::Result;
use sqlx::Row;

use crate::domain::ids::{KeyHash, Source};
use crate::domain::lease::{self, Exposure, Grant, Want};
use crate::store::db::Pool;

/// What a lease is a slice of.
pub enum Leased<'a> {
    /// A credit source's balance: on chain, less every replica's unsettled charges (batches
    /// after `settled_seq`, the last the chain showed burned).
    Balance { source: Source, onchain: u64, settled_seq: u64 },
    /// A key's credit budget for one UTC day (`YYYY-MM-DD`), less what it spent that day.
    Budget { key: &'a KeyHash, per_day: u64, day: &'a str },
}

/// What every replica charged from `source` and the chain has not burned yet.
pub async fn unsettled<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    source: Source,
    settled_seq: u64,
) -> Result<u64> {
    let sum: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records \
         WHERE source = $1 AND (settled_seq IS NULL OR settled_seq > $2)",
    )
    .bind(source.to_string())
    .bind(i64::try_from(settled_seq).unwrap_or(i64::MAX))
    .fetch_one(db)
    .await?;
    Ok(sum.max(0) as u64)
}

/// The database's clock in milliseconds since the epoch: every replica's leases are timed
/// by this one clock.
async fn db_now_ms<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, postgres: bool) -> Result<i64> {
    let sql = if postgres {
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    } else {
        "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    };
    Ok(sqlx::query_scalar(sql).fetch_one(db).await?)
}

/// How long a grant stands for the others.
#[derive(Clone, Copy, Debug)]
pub struct Term {
    /// Added to the database's clock (an adjustable test clock's lead; 0 in production).
    pub ahead_ms: i64,
    /// From the grant to the row's expiry: the lease's life, plus the longest a request it
    /// admitted may still run and charge.
    pub for_ms: i64,
}

/// Grants `replica` its lease on `what`, asking for `want`: `exposure` is read under the pool's lock (what the
/// replica has out that the ledger does not show), and the row records the grant's claim
/// until the database's clock passes `term`.
pub async fn grant(
    pool: &Pool,
    what: &Leased<'_>,
    replica: &str,
    term: Term,
    want: Want,
    exposure: impl FnOnce() -> Exposure,
) -> Result<Grant> {
    let lock = match what {
        Leased::Balance { source, .. } => source.to_string(),
        Leased::Budget { key, .. } => format!("budget:{key}"),
    };
    let mut tx = crate::store::db::begin_write(pool).await?;
    sqlx::query("INSERT INTO lease_sources (source) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(&lock)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT source FROM lease_sources WHERE source = $1 FOR UPDATE")
        .bind(&lock)
        .execute(&mut *tx)
        .await?;
    let postgres = pool.connect_options().database_url.scheme() != "sqlite";
    let now_ms = db_now_ms(&mut *tx, postgres).await? + term.ahead_ms;
    let expires_at_ms = now_ms + term.for_ms;
    let (left, others) = match what {
        Leased::Balance { source, onchain, settled_seq } => {
            let left = onchain.saturating_sub(unsettled(&mut *tx, *source, *settled_seq).await?);
            let others = sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS leased, CAST(COUNT(*) AS BIGINT) AS n \
                 FROM balance_leases WHERE source = $1 AND replica <> $2 AND expires_at_ms > $3",
            )
            .bind(source.to_string())
            .bind(replica)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            (left, others)
        }
        Leased::Budget { key, per_day, day } => {
            let spent: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records \
                 WHERE key_hash = $1 AND day = $2",
            )
            .bind(key.as_str())
            .bind(*day)
            .fetch_one(&mut *tx)
            .await?;
            // Every live claim counts, yesterday's too: holds taken before midnight are
            // charged to the day they end in.
            let others = sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS leased, CAST(COUNT(*) AS BIGINT) AS n \
                 FROM budget_leases WHERE key_hash = $1 AND replica <> $2 AND expires_at_ms > $3",
            )
            .bind(key.as_str())
            .bind(replica)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            (per_day.saturating_sub(spent.max(0) as u64), others)
        }
    };
    let (claimed, n): (i64, i64) = (others.get("leased"), others.get("n"));
    let grant = lease::grant(left, claimed.max(0) as u64, n.max(0) as u64, exposure(), want);
    let stored = i64::try_from(grant.claim).unwrap_or(i64::MAX);
    match what {
        Leased::Balance { source, .. } => {
            sqlx::query(
                "INSERT INTO balance_leases (source, replica, amount, expires_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (source, replica) DO UPDATE SET amount = EXCLUDED.amount, expires_at_ms = EXCLUDED.expires_at_ms",
            )
            .bind(source.to_string())
            .bind(replica)
            .bind(stored)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        Leased::Budget { key, day, .. } => {
            sqlx::query(
                "INSERT INTO budget_leases (key_hash, replica, day, amount, expires_at_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key_hash, replica) DO UPDATE SET day = EXCLUDED.day, amount = EXCLUDED.amount, \
                 expires_at_ms = EXCLUDED.expires_at_ms",
            )
            .bind(key.as_str())
            .bind(replica)
            .bind(*day)
            .bind(stored)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(grant)
}

/// Gives every lease of `replica` back (at shutdown), so the others may grant it at once
/// rather than after the leases expire.
pub async fn release(pool: &Pool, replica: &str) -> Result<()> {
    for table in ["balance_leases", "budget_leases"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE replica = $1")).bind(replica).execute(pool).await?;
    }
    Ok(())
}
