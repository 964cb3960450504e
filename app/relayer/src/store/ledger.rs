//! The usage ledger: every served request's record, appended to the journal before the
//! response goes out (so it survives a kill -9 of the relayer; `journal.rs`), then committed
//! to SQLite (WAL, synchronous FULL) by one ingesting task in batches (group commit). Reads
//! first wait until everything recorded so far is committed, so a caller always reads its
//! own writes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::store::db::{Pool, Sql};
use tokio::sync::{mpsc, oneshot};

use crate::domain::ids::{stored_address, KeyHash, Pubkey, Source};
use crate::domain::usage::UsageRecord;
use crate::store::journal::Journal;

/// Records committed together at most.
const BATCH: usize = 4_096;

/// The longest a record waits in memory for others to be committed with it.
const COMMIT_EVERY: Duration = Duration::from_millis(20);

/// A dimension usage can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dim {
    /// The UTC day, YYYY-MM-DD.
    Day,
    /// The key's id (`config` for keys listed in the configuration).
    Key,
    Model,
    Provider,
}

impl Dim {
    pub const ALL: [Dim; 4] = [Dim::Day, Dim::Key, Dim::Model, Dim::Provider];

    fn column(self) -> &'static str {
        match self {
            Dim::Day => "u.day",
            Dim::Key => "COALESCE(k.id, 'config')",
            Dim::Model => "u.model",
            Dim::Provider => "u.provider",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dim::Day => "day",
            Dim::Key => "key",
            Dim::Model => "model",
            Dim::Provider => "provider",
        }
    }
}

/// Which spend to report: grouped by these dimensions (none: one total), between two UTC
/// days inclusive (YYYY-MM-DD; open when absent).
#[derive(Clone, Debug, Default)]
pub struct UsageQuery {
    pub group_by: Vec<Dim>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Only records burned on chain (in a settled batch): provider spend that reconciles
    /// with the chain.
    pub settled: bool,
}

/// Spend of one group: the dimensions grouped by are set, the others absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Credit base units charged to the caller.
    pub credits: u64,
    /// What the providers charge for the same requests, in credit base units.
    pub provider_credits: u64,
    /// The marketplace's margin: credits - provider_credits (negative when a provider
    /// charged more than the caller paid, e.g. a reply without usage).
    pub margin: i64,
    /// Of `credits`, those burned on chain so far.
    pub settled_credits: u64,
}

/// One credit source's charges (`GET /v1/settlement/accounts`).
#[serde_with::serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceCharges {
    /// Answered as `source` (its address) and `kind`.
    #[serde(flatten)]
    pub source: Source,
    /// The credit account whose requests were charged to it.
    #[serde_as(as = "serde_with::DisplayFromStr")]
    pub account: Pubkey,
    pub records: u64,
    /// Credits charged by every recorded request.
    pub charged: u64,
    /// Of `charged`, those in no settlement batch yet.
    pub unbatched: u64,
}

/// What the ingesting task is sent, in journal order.
// Nearly every message is a record: boxing it would add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Ingest {
    Record(UsageRecord),
    /// A closed journal segment: delete it once everything before it is committed.
    Closed(std::path::PathBuf),
    /// Answer once everything before it is committed.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    backend: crate::store::db::Backend,
    /// Appends and sends happen under this one lock, so the ingester sees journal order.
    journal: Arc<Mutex<Journal>>,
    ingest: mpsc::UnboundedSender<Ingest>,
}

impl Ledger {
    /// Opens (creating) the SQLite ledger at `path`, applies the checked-in migrations and
    /// replays what the journal (next to it) holds.
    pub async fn open(path: &Path) -> Result<Ledger> {
        Self::open_with(&path.display().to_string(), path, crate::store::journal::SEGMENT_BYTES).await
    }

    /// Opens the ledger at `target` (a SQLite path or a Postgres URL) with its journal
    /// segments at `journal` (a local path prefix) of `segment_bytes`.
    pub async fn open_with(target: &str, journal: &Path, segment_bytes: u64) -> Result<Ledger> {
        let (pool, backend) = crate::store::db::connect(target).await?;
        let path = journal;
        // Records a previous run answered but had not committed yet.
        let mut last_seq = 0;
        for (seq, segment) in Journal::segments(path)? {
            let records = Journal::read(&segment)?;
            for chunk in records.chunks(BATCH) {
                insert(&pool, backend, chunk).await.context("replaying the ledger journal")?;
            }
            if !records.is_empty() {
                tracing::info!(segment = %segment.display(), records = records.len(), "ledger journal replayed");
            }
            std::fs::remove_file(&segment).with_context(|| format!("cannot remove {}", segment.display()))?;
            last_seq = seq;
        }
        let journal = Journal::create(path, last_seq, segment_bytes)?;
        let (ingest, jobs) = mpsc::unbounded_channel();
        tokio::spawn(ingest_batches(pool.clone(), backend, jobs));
        let journal = Arc::new(Mutex::new(journal));
        tokio::spawn(sync_journal(Arc::downgrade(&journal)));
        Ok(Ledger { pool, backend, journal, ingest })
    }

    /// Waits until every record so far is committed to SQLite.
    pub async fn flush(&self) -> Result<()> {
        let (done, flushed) = oneshot::channel();
        self.ingest.send(Ingest::Flush(done)).map_err(|_| anyhow::anyhow!("the ledger has stopped"))?;
        flushed.await.map_err(|_| anyhow::anyhow!("the ledger has stopped"))
    }

    /// SQLite or Postgres.
    pub fn backend(&self) -> crate::store::db::Backend {
        self.backend
    }

    /// Whether the database takes a write now (a no-op update in a transaction of its own).
    pub async fn probe_write(&self) -> Result<()> {
        sqlx::query("UPDATE shared_versions SET version = version WHERE name = 'api_keys'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The database, shared with the API keys.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stores a record: returns once it is in the journal (it survives the relayer being
    /// killed); SQLite has it moments later.
    pub async fn record(&self, record: UsageRecord) -> Result<()> {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let appended = journal.append(&record)?;
        let sent = self.ingest.send(Ingest::Record(record)).is_ok()
            && appended.closed.is_none_or(|c| self.ingest.send(Ingest::Closed(c)).is_ok());
        anyhow::ensure!(sent, "the ledger has stopped");
        Ok(())
    }

    /// Every recorded request id, in the order recorded.
    pub async fn request_ids(&self) -> Result<Vec<String>> {
        self.flush().await?;
        Ok(sqlx::query_scalar("SELECT request_id FROM usage_records ORDER BY created_at_ms, request_id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Credits charged in total (every record, settled or not).
    pub async fn total_charged(&self) -> Result<u64> {
        self.flush().await?;
        let n: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records")
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
    }

    pub async fn count(&self) -> Result<u64> {
        self.flush().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records").fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// Credits charged to `source` and not yet settled on chain.
    pub async fn unsettled(&self, source: Source) -> Result<u64> {
        self.flush().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records WHERE source = $1 AND settled_seq IS NULL",
        )
        .bind(source.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Every source's unsettled charges, to restore the hard cap after a restart.
    pub async fn unsettled_by_source(&self) -> Result<Vec<(Source, u64)>> {
        self.flush().await?;
        let rows = sqlx::query(
            "SELECT source, account, CAST(SUM(credits_charged) AS BIGINT) AS credits FROM usage_records \
             WHERE settled_seq IS NULL GROUP BY source, account",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (source, account) = (stored_address(r.get("source"))?, stored_address(r.get("account"))?);
                Ok((Source::of(source, account), r.get::<i64, _>("credits").max(0) as u64))
            })
            .collect()
    }

    /// Every source's charges, all records and those not in a batch yet (what an auditor
    /// checks against the chain's burns).
    pub async fn charged_by_source(&self) -> Result<Vec<SourceCharges>> {
        self.flush().await?;
        let rows = sqlx::query(
            "SELECT source, account, CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM(credits_charged) AS BIGINT) AS charged, \
             CAST(SUM(CASE WHEN settled_seq IS NULL THEN credits_charged ELSE 0 END) AS BIGINT) AS unbatched \
             FROM usage_records GROUP BY source, account ORDER BY source",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (source, account) = (stored_address(r.get("source"))?, stored_address(r.get("account"))?);
                Ok(SourceCharges {
                    source: Source::of(source, account),
                    account,
                    records: r.get::<i64, _>("n").max(0) as u64,
                    charged: r.get::<i64, _>("charged").max(0) as u64,
                    unbatched: r.get::<i64, _>("unbatched").max(0) as u64,
                })
            })
            .collect()
    }

    /// Credits each key spent since `since_ms`, to restore daily budgets after a restart.
    pub async fn spent_by_key_since(&self, since_ms: i64) -> Result<Vec<(KeyHash, u64)>> {
        self.flush().await?;
        let rows = sqlx::query(
            "SELECT key_hash, CAST(SUM(credits_charged) AS BIGINT) FROM usage_records WHERE created_at_ms >= $1 GROUP BY key_hash",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (KeyHash::stored(r.get(0)), r.get::<i64, _>(1).max(0) as u64)).collect())
    }

    /// Spend of `account` as `q` asks, newest day first.
    pub async fn usage(&self, account: &Pubkey, q: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.flush().await?;
        let mut sql = Sql::new("SELECT ");
        for d in &q.group_by {
            sql.push(&format!("{} AS {}, ", d.column(), d.name()));
        }
        sql.push(
            "CAST(COUNT(*) AS BIGINT) AS requests, CAST(SUM(u.input_tokens) AS BIGINT) AS input, \
             CAST(SUM(u.output_tokens) AS BIGINT) AS output, CAST(SUM(u.credits_charged) AS BIGINT) AS credits, \
             CAST(SUM(COALESCE(u.provider_cost, u.credits_charged)) AS BIGINT) AS provider_credits, \
             CAST(SUM(CASE WHEN b.settled_at_ms IS NOT NULL THEN u.credits_charged ELSE 0 END) AS BIGINT) AS settled_credits \
             FROM usage_records u LEFT JOIN api_keys k ON k.key_hash = u.key_hash \
             LEFT JOIN settle_batches b ON b.source = u.source AND b.seq = u.settled_seq WHERE u.account = ",
        );
        sql.text(&account.to_string());
        if q.settled {
            sql.push(" AND b.settled_at_ms IS NOT NULL");
        }
        if let Some(from) = &q.from {
            sql.push(" AND u.day >= ").text(from);
        }
        if let Some(to) = &q.to {
            sql.push(" AND u.day <= ").text(to);
        }
        if !q.group_by.is_empty() {
            let names: Vec<&str> = q.group_by.iter().map(|d| d.name()).collect();
            sql.push(&format!(" GROUP BY {}", names.join(", ")));
            let order: Vec<String> =
                names.iter().map(|n| if *n == "day" { "day DESC".into() } else { n.to_string() }).collect();
            sql.push(&format!(" ORDER BY {}", order.join(", ")));
        }
        let rows = sql.query().fetch_all(&self.pool).await?;
        let text =
            |r: &crate::store::db::Row, d: Dim| q.group_by.contains(&d).then(|| r.get::<String, _>(d.name()));
        let count =
            |r: &crate::store::db::Row, c: &str| r.get::<Option<i64>, _>(c).unwrap_or(0).max(0) as u64;
        Ok(rows
            .iter()
            .filter(|r| count(r, "requests") > 0)
            .map(|r| UsageRow {
                day: text(r, Dim::Day),
                key: text(r, Dim::Key),
                model: text(r, Dim::Model),
                provider: text(r, Dim::Provider),
                requests: count(r, "requests"),
                input_tokens: count(r, "input"),
                output_tokens: count(r, "output"),
                credits: count(r, "credits"),
                provider_credits: count(r, "provider_credits"),
                margin: count(r, "credits") as i64 - count(r, "provider_credits") as i64,
                settled_credits: count(r, "settled_credits"),
            })
            .collect())
    }
}

fn int(n: u64) -> i64 {
    // SQLite integers are i64; every amount here is bounded by a u64 balance far below 2^63
    // in practice, and saturating keeps a corrupt value from wrapping negative.
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Syncs the journal to disk every 200 ms (group commit against power loss; a kill -9 needs
/// no sync), with a duplicate handle so appends never wait for the disk. Stops with the
/// ledger.
async fn sync_journal(journal: std::sync::Weak<Mutex<Journal>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(journal) = journal.upgrade() else { return };
        let handle = journal.lock().unwrap_or_else(|e| e.into_inner()).sync_handle();
        drop(journal);
        let synced = match handle {
            Ok(f) => tokio::task::spawn_blocking(move || f.sync_data()).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = synced.and_then(|r| Ok(r?)) {
            tracing::warn!(error = %format!("{e:#}"), "ledger journal sync failed");
        }
    }
}

/// Commits records in journal order, in batches of whatever has arrived (group commit). A
/// failed commit is retried (the records stay in the journal meanwhile); a closed segment is
/// deleted only after everything in it is committed.
async fn ingest_batches(
    pool: Pool,
    backend: crate::store::db::Backend,
    mut jobs: mpsc::UnboundedReceiver<Ingest>,
) {
    let mut next = jobs.recv().await;
    while let Some(first) = next.take() {
        let mut batch = Vec::new();
        let mut after = Some(first);
        // Records wait up to COMMIT_EVERY to be committed together: they are durable in the
        // journal already, and one commit (an fsync, WAL pages) per few records was most of
        // the ingester's work under load. A flush or a closed segment ends the wait at once.
        let until = tokio::time::Instant::now() + COMMIT_EVERY;
        while let Some(Ingest::Record(r)) = after {
            batch.push(r);
            after = if batch.len() >= BATCH {
                None
            } else {
                // A record already queued is taken without arming a timer (the common case
                // under load); only an empty queue waits, until the deadline.
                match jobs.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout_at(until, jobs.recv()).await.ok().flatten()
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
        }
        let mut backoff = Duration::from_millis(50);
        while !batch.is_empty() {
            match insert(&pool, backend, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), records = batch.len(), "ledger commit failed; retrying (the records are safe in the journal)");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        match after {
            Some(Ingest::Closed(segment)) => {
                if let Err(e) = std::fs::remove_file(&segment) {
                    tracing::warn!(error = %e, segment = %segment.display(), "cannot remove an ingested journal segment");
                }
            }
            Some(Ingest::Flush(done)) => {
                let _ = done.send(());
            }
            // The batch was full: the message after it is still in the channel.
            Some(Ingest::Record(_)) | None => {}
        }
        next = jobs.recv().await;
    }
}

/// Rows per INSERT statement (18 parameters each: well under SQLite's 32,766 and Postgres's
/// 65,535).
const ROWS_PER_STATEMENT: usize = 500;

async fn insert(pool: &Pool, backend: crate::store::db::Backend, batch: &[UsageRecord]) -> Result<()> {
    let mut tx = crate::store::db::begin_write(pool).await?;
    for rows in batch.chunks(ROWS_PER_STATEMENT) {
        let mut q = Sql::for_backend(backend,
            "INSERT INTO usage_records (request_id, created_at_ms, day, key_hash, account, source, provider, model, \
             input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, credits_charged, input_per_1m, \
             output_per_1m, provider_input_per_1m, provider_output_per_1m, provider_cost, shortfall_credits) VALUES ",
        );
        for (i, r) in rows.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.text(&r.request_id)
                .push(", ")
                .int(r.created_at_ms)
                .push(", ")
                .text(&crate::store::db::day_of(r.created_at_ms));
            let (account, source) = (r.account.to_string(), r.source.to_string());
            for t in [r.key_hash.as_str(), &account, &source, &r.provider, &r.model] {
                q.push(", ").text(t);
            }
            for n in [
                r.input_tokens,
                r.output_tokens,
                r.cached_input_tokens,
                r.cache_write_tokens,
                r.credits_charged,
                r.input_per_1m,
                r.output_per_1m,
                r.provider_input_per_1m,
                r.provider_output_per_1m,
                r.provider_cost,
                r.shortfall,
            ] {
                q.push(", ").int(int(n));
            }
            q.push(")");
        }
        // A journal replayed after a crash may hold records already committed.
        q.push(" ON CONFLICT DO NOTHING");
        q.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ACCOUNT: Pubkey = Pubkey::new_from_array([7; 32]);

    fn record(i: usize) -> UsageRecord {
        crate::domain::usage::fixtures::record(i as i64, ACCOUNT, Source::Vault(ACCOUNT), 7)
    }

    /// The settler cuts batches (a transaction that reads, then writes) while requests keep
    /// committing records: every cut must succeed. On SQLite a deferred transaction failed at
    /// once with "database is locked" whenever a commit landed between its read and its
    /// write, and under sustained load no batch was ever cut.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_cut_while_records_keep_committing() {
        use crate::store::batches::{cut, Cut};
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (ledger, cuts) = (ledger.clone(), cuts.clone());
            tokio::spawn(async move {
                let mut extra = 100_000;
                for i in 0..4_000 {
                    ledger.record(record(i)).await.unwrap();
                    if i % 50 == 0 {
                        ledger.flush().await.unwrap();
                    }
                    // Half-way, the writer keeps writing until two batches were cut beside it,
                    // however the two tasks are scheduled.
                    let waited = std::time::Instant::now();
                    while i >= 2_000 && i % 50 == 0 && cuts.load(std::sync::atomic::Ordering::Relaxed) < 2 {
                        assert!(waited.elapsed().as_secs() < 60, "no batch cut beside the writer");
                        extra += 1;
                        ledger.record(record(extra)).await.unwrap();
                        ledger.flush().await.unwrap();
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
            })
        };
        let mut seq = 0;
        let mut cut_records = 0;
        while !writer.is_finished() {
            let c = Cut {
                source: Source::Vault(ACCOUNT),
                account: ACCOUNT,
                seq: seq + 1,
                min_window_end: 0,
                max_records: 100,
                prev_chain: None,
                until_ms: None,
            };
            if let Some(b) = cut(ledger.pool(), c).await.expect("a cut under load succeeds") {
                seq = b.seq;
                cut_records += b.records;
                cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        writer.await.unwrap();
        assert!(seq > 1 && cut_records > 0, "batches were cut while the writer ran ({seq})");
    }

    #[tokio::test]
    async fn closed_segments_go_once_committed_and_a_reopened_ledger_replays_the_rest_once() {
        let dir = tempfile::tempdir().unwrap();
        let (target, path) =
            (crate::store::db::test_target(dir.path()).await.unwrap(), dir.path().join("journal"));
        let ledger = Ledger::open_with(&target, &path, 1_000).await.unwrap();
        for i in 0..100 {
            ledger.record(record(i)).await.unwrap();
        }
        assert_eq!(ledger.count().await.unwrap(), 100);
        assert_eq!(Journal::segments(&path).unwrap().len(), 1, "closed segments are deleted once ingested");
        drop(ledger);
        // The open segment is replayed at start; records already committed are not doubled.
        let ledger = Ledger::open_with(&target, &path, 1_000).await.unwrap();
        assert_eq!(ledger.count().await.unwrap(), 100);
        assert_eq!(ledger.total_charged().await.unwrap(), 700);
    }

    #[tokio::test]
    async fn records_only_in_the_journal_are_replayed_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (target, path) =
            (crate::store::db::test_target(dir.path()).await.unwrap(), dir.path().join("journal"));
        // What a relayer killed after answering, before committing, leaves behind.
        let mut journal = Journal::create(&path, 6, 1 << 20).unwrap();
        for i in 0..3 {
            journal.append(&record(i)).unwrap();
        }
        drop(journal);
        let segment = Journal::segments(&path).unwrap().remove(0);
        assert_eq!(segment.0, 7);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&segment.1)
            .unwrap()
            .write_all(b"{\"request_id\":\"torn")
            .unwrap();

        let ledger = Ledger::open_with(&target, &path, 1 << 20).await.unwrap();
        assert_eq!(ledger.request_ids().await.unwrap(), vec!["req-000", "req-001", "req-002"]);
        let segments = Journal::segments(&path).unwrap();
        assert_eq!(
            segments.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![8],
            "replayed, removed, the next one opened"
        );
    }
}
