//! The usage ledger: every served request's record, durable in SQLite (WAL) before the
//! response goes out, so it survives a kill -9 of the relayer. One writer task takes
//! records from every request and commits them in batches (group commit); a request waits
//! for its batch to commit.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

/// Records committed together at most.
const BATCH: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

/// Spend grouped by day (UTC), key, model and provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub day: String,
    /// The key's id (`config` for keys listed in the configuration).
    pub key: String,
    pub model: String,
    pub provider: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub credits: u64,
}

type Job = (UsageRecord, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Ledger {
    pool: SqlitePool,
    writer: mpsc::Sender<Job>,
}

impl Ledger {
    /// Opens (creating) the SQLite ledger at `path` and applies the checked-in migrations.
    pub async fn open(path: &Path) -> Result<Ledger> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A committed transaction is in the WAL before the response is sent: it survives
            // the process being killed. NORMAL syncs the WAL at checkpoints (group commit
            // against power loss), as the issue allows.
            .synchronous(SqliteSynchronous::Normal)
            // Checkpoints (which sync to disk) run in the background below, not inside a
            // request's commit: they were the commit latency's p99.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        sqlx::migrate!("./migrations").run(&pool).await.context("migrating the ledger")?;
        let (writer, jobs) = mpsc::channel(8_192);
        tokio::spawn(write_batches(pool.clone(), jobs));
        tokio::spawn(checkpoint(pool.clone()));
        Ok(Ledger { pool, writer })
    }

    /// The database, shared with the API keys.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Stores a record; returns once it is committed.
    pub async fn record(&self, record: UsageRecord) -> Result<()> {
        let (done, committed) = oneshot::channel();
        self.writer
            .send((record, done))
            .await
            .map_err(|_| anyhow::anyhow!("the ledger writer has stopped"))?;
        committed
            .await
            .map_err(|_| anyhow::anyhow!("the ledger writer has stopped"))?
            .map_err(anyhow::Error::msg)
    }

    /// Every recorded request id, in the order recorded.
    pub async fn request_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT request_id FROM usage_records ORDER BY rowid")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Credits charged in total (every record, settled or not).
    pub async fn total_charged(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(credits_charged), 0) FROM usage_records")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    pub async fn count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records").fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// Credits charged to `source` and not yet settled on chain.
    pub async fn unsettled(&self, source: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(credits_charged), 0) FROM usage_records WHERE source = ? AND settled_seq IS NULL",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Every source's unsettled charges, to restore the hard cap after a restart.
    pub async fn unsettled_by_source(&self) -> Result<Vec<(String, u64)>> {
        sums(&self.pool, "SELECT source, SUM(credits_charged) FROM usage_records WHERE settled_seq IS NULL GROUP BY source", None).await
    }

    /// Credits each key spent since `since_ms`, to restore daily budgets after a restart.
    pub async fn spent_by_key_since(&self, since_ms: i64) -> Result<Vec<(String, u64)>> {
        sums(&self.pool, "SELECT key_hash, SUM(credits_charged) FROM usage_records WHERE created_at_ms >= ? GROUP BY key_hash", Some(since_ms)).await
    }

    /// Spend of `account` by day, model and provider, newest day first.
    pub async fn usage(&self, account: &str) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT date(u.created_at_ms / 1000, 'unixepoch') AS day, COALESCE(k.id, 'config') AS key, u.model, u.provider, \
                    COUNT(*) AS requests, SUM(u.input_tokens) AS input, SUM(u.output_tokens) AS output, \
                    SUM(u.credits_charged) AS credits \
             FROM usage_records u LEFT JOIN api_keys k ON k.key_hash = u.key_hash \
             WHERE u.account = ? GROUP BY day, key, u.model, u.provider ORDER BY day DESC, key, u.model, u.provider",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                day: r.get("day"),
                key: r.get("key"),
                model: r.get("model"),
                provider: r.get("provider"),
                requests: r.get::<i64, _>("requests") as u64,
                input_tokens: r.get::<i64, _>("input") as u64,
                output_tokens: r.get::<i64, _>("output") as u64,
                credits: r.get::<i64, _>("credits") as u64,
            })
            .collect())
    }
}

/// Rows of (text, sum) from a grouped query with at most one integer parameter.
async fn sums(pool: &SqlitePool, sql: &str, param: Option<i64>) -> Result<Vec<(String, u64)>> {
    let query = sqlx::query(sql);
    let query = match param {
        Some(p) => query.bind(p),
        None => query,
    };
    let rows = query.fetch_all(pool).await?;
    Ok(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64)).collect())
}

fn int(n: u64) -> i64 {
    // SQLite integers are i64; every amount here is bounded by a u64 balance far below 2^63
    // in practice, and saturating keeps a corrupt value from wrapping negative.
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Copies the WAL into the database every half second without blocking writers (PASSIVE),
/// so the WAL stays small and the disk is synced at least that often (the group commit
/// against power loss).
async fn checkpoint(pool: SqlitePool) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(error = %e, "ledger checkpoint failed");
        }
    }
}

async fn write_batches(pool: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = insert(&pool, &batch).await.map_err(|e| format!("ledger write failed: {e:#}"));
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

async fn insert(pool: &SqlitePool, batch: &[Job]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for (r, _) in batch {
        sqlx::query(
            "INSERT INTO usage_records (request_id, created_at_ms, key_hash, account, source, provider, model, input_tokens, \
             output_tokens, credits_charged, input_per_1m, output_per_1m, provider_input_per_1m, provider_output_per_1m, \
             provider_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.request_id)
        .bind(r.created_at_ms)
        .bind(&r.key_hash)
        .bind(&r.account)
        .bind(&r.source)
        .bind(&r.provider)
        .bind(&r.model)
        .bind(int(r.input_tokens))
        .bind(int(r.output_tokens))
        .bind(int(r.credits_charged))
        .bind(int(r.input_per_1m))
        .bind(int(r.output_per_1m))
        .bind(int(r.provider_input_per_1m))
        .bind(int(r.provider_output_per_1m))
        .bind(int(r.provider_cost))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
