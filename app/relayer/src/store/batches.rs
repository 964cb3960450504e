//! Settlement batches in the ledger database: cutting a batch out of a source's unbatched
//! records (with its Merkle root and `seq`), finding what is pending, marking what landed,
//! moving records to another source, and the proof of one record (a receipt).

use anyhow::Result;
use compux_sdk::receipt::{self, hex32, Leaf, Step};
use serde::Serialize;
use serde_with::{serde_as, DisplayFromStr};
use sqlx::Row;

use crate::domain::ids::{stored_address, Pubkey, Source};
use crate::store::db::{Pool, Row as DbRow, Sql};

#[serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// Answered as `source` (its address) and `kind`.
    #[serde(flatten)]
    pub source: Source,
    /// The credit account whose requests it settles.
    #[serde_as(as = "DisplayFromStr")]
    pub account: Pubkey,
    pub seq: u64,
    pub amount: u64,
    #[serde(with = "hex32")]
    pub batch_root: [u8; 32],
    pub window_end: i64,
    pub records: u64,
    pub signature: Option<String>,
    pub settled_at_ms: Option<i64>,
    /// The source's `usage_chain` once this batch is on chain (unknown for a batch cut when
    /// the previous chain value was not known).
    #[serde(serialize_with = "hex32_opt")]
    pub usage_chain: Option<[u8; 32]>,
}

fn hex32_opt<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_str(&hex32::encode(h)),
        None => s.serialize_none(),
    }
}

/// A source with records not yet in a batch.
#[derive(Clone, Debug)]
pub struct Unbatched {
    pub source: Source,
    pub account: Pubkey,
    pub records: u64,
    pub oldest_ms: i64,
}

pub async fn unbatched(pool: &Pool) -> Result<Vec<Unbatched>> {
    let rows = sqlx::query(
        "SELECT source, account, CAST(COUNT(*) AS BIGINT) AS n, MIN(created_at_ms) AS oldest FROM usage_records \
         WHERE settled_seq IS NULL GROUP BY source, account ORDER BY oldest",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let account = stored_address(r.get("account"))?;
            Ok(Unbatched {
                source: Source::of(stored_address(r.get("source"))?, account),
                account,
                records: r.get::<i64, _>("n") as u64,
                oldest_ms: r.get("oldest"),
            })
        })
        .collect()
}

fn batch_of(r: &DbRow) -> Result<Batch> {
    Ok(Batch {
        source: Source::stored(r.get("kind"), r.get("source"))?,
        account: stored_address(r.get("account"))?,
        seq: r.get::<i64, _>("seq") as u64,
        amount: r.get::<i64, _>("amount") as u64,
        batch_root: hex32::decode(r.get("batch_root")).unwrap_or_default(),
        window_end: r.get("window_end"),
        records: r.get::<i64, _>("records") as u64,
        signature: r.get("signature"),
        settled_at_ms: r.get("settled_at_ms"),
        usage_chain: r.get::<Option<String>, _>("usage_chain").as_deref().and_then(hex32::decode),
    })
}

const BATCH_COLUMNS: &str =
    "source, kind, account, seq, amount, batch_root, window_end, records, signature, settled_at_ms, usage_chain";

/// The newest batch of `source`, if any.
pub async fn last(pool: &Pool, source: Source) -> Result<Option<Batch>> {
    let row = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM settle_batches WHERE source = $1 ORDER BY seq DESC LIMIT 1"
    ))
    .bind(source.to_string())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(batch_of).transpose()
}

/// Batches not known to be on chain, oldest first (per source, in `seq` order).
pub async fn pending(pool: &Pool) -> Result<Vec<Batch>> {
    let rows = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM settle_batches WHERE settled_at_ms IS NULL ORDER BY source, seq"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(batch_of).collect()
}

/// Every batch of `source`, in `seq` order (what an auditor replays into `usage_chain`).
pub async fn of_source(pool: &Pool, source: &str) -> Result<Vec<Batch>> {
    if !crate::store::db::storable(source) {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM settle_batches WHERE source = $1 ORDER BY seq"))
            .bind(source)
            .fetch_all(pool)
            .await?;
    rows.iter().map(batch_of).collect()
}

/// Per source: the credits of its batches known to be on chain, and the newest one's seq.
pub async fn settled_by_source(pool: &Pool) -> Result<Vec<(Source, u64, u64)>> {
    let rows = sqlx::query(
        "SELECT source, kind, CAST(SUM(amount) AS BIGINT) AS amount, CAST(MAX(seq) AS BIGINT) AS seq \
         FROM settle_batches WHERE settled_at_ms IS NOT NULL GROUP BY source, kind",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let source = Source::stored(r.get("kind"), r.get("source"))?;
            Ok((source, r.get::<i64, _>("amount").max(0) as u64, r.get::<i64, _>("seq").max(0) as u64))
        })
        .collect()
}

/// Batches the hard cap must still count until a balance snapshot shows them burned: the
/// pending ones and the last few settled per source (a lagging RPC node may not show them
/// yet), as (source, seq, amount).
pub async fn unconfirmed_for_meter(pool: &Pool) -> Result<Vec<(Source, u64, u64)>> {
    let rows = sqlx::query(
        "SELECT b.source, b.kind, b.seq, b.amount FROM settle_batches b \
         WHERE b.settled_at_ms IS NULL OR b.seq > (SELECT MAX(seq) - 16 FROM settle_batches c WHERE c.source = b.source)",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let source = Source::stored(r.get(1), r.get(0))?;
            Ok((source, r.get::<i64, _>(2) as u64, r.get::<i64, _>(3) as u64))
        })
        .collect()
}

fn leaf_of(r: &DbRow) -> Leaf {
    Leaf {
        request_id: r.get("request_id"),
        source: r.get("source"),
        created_at_ms: r.get("created_at_ms"),
        model: r.get("model"),
        provider: r.get("provider"),
        input_tokens: r.get::<i64, _>("input_tokens") as u64,
        output_tokens: r.get::<i64, _>("output_tokens") as u64,
        credits: r.get::<i64, _>("credits_charged") as u64,
    }
}

const LEAF_COLUMNS: &str =
    "request_id, source, created_at_ms, model, provider, input_tokens, output_tokens, credits_charged";

/// A new batch for `source`.
pub struct Cut {
    pub source: Source,
    pub account: Pubkey,
    pub seq: u64,
    /// The batch's window end may not be earlier than this (the previous batch's).
    pub min_window_end: i64,
    pub max_records: usize,
    /// The source's `usage_chain` after the previous batch, if known.
    pub prev_chain: Option<[u8; 32]>,
    /// Only records metered up to this time (a frozen or matured facility settles none
    /// after its cutoff: a batch straddling it could never land).
    pub until_ms: Option<i64>,
}

/// Cuts the next batch of `c.source` out of its oldest unbatched records, in one
/// transaction: the records get the batch's `seq` and the batch row is stored. Records that
/// cost nothing are marked `settled_seq = 0` instead. Returns the batch, if one was cut.
pub async fn cut(pool: &Pool, c: Cut) -> Result<Option<Batch>> {
    let mut tx = crate::store::db::begin_write(pool).await?;
    let rows = sqlx::query(&format!(
        "SELECT {LEAF_COLUMNS} FROM usage_records WHERE source = $1 AND settled_seq IS NULL \
         AND created_at_ms <= $3 ORDER BY created_at_ms, request_id LIMIT $2"
    ))
    .bind(c.source.to_string())
    .bind(c.max_records as i64)
    .bind(c.until_ms.unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let leaves: Vec<Leaf> = rows.iter().map(leaf_of).collect();
    let amount = leaves.iter().try_fold(0u64, |a, l| a.checked_add(l.credits));
    let amount = amount.ok_or_else(|| anyhow::anyhow!("batch amount overflows"))?;
    let seq = if amount == 0 { 0 } else { c.seq };
    for chunk in leaves.chunks(500) {
        let mut q = Sql::new("UPDATE usage_records SET settled_seq = ");
        q.int(seq as i64)
            .push(" WHERE request_id IN (")
            .texts(chunk.iter().map(|l| l.request_id.as_str()))
            .push(")");
        q.query().execute(&mut *tx).await?;
    }
    if amount == 0 {
        tx.commit().await?;
        return Ok(None);
    }
    let hashes: Vec<[u8; 32]> = leaves.iter().map(Leaf::hash).collect();
    let last_ms = leaves.iter().map(|l| l.created_at_ms).max().unwrap_or(0);
    let (batch_root, window_end) = (receipt::root(&hashes), last_ms.div_euclid(1_000).max(c.min_window_end));
    let usage_chain = c.prev_chain.map(|prev| {
        compux_sdk::math::usage_chain::next_usage_chain(&prev, seq, amount, &batch_root, window_end)
    });
    let batch = Batch {
        source: c.source,
        account: c.account,
        seq,
        amount,
        batch_root,
        window_end,
        records: leaves.len() as u64,
        signature: None,
        settled_at_ms: None,
        usage_chain,
    };
    sqlx::query(
        "INSERT INTO settle_batches (source, kind, account, seq, amount, batch_root, window_end, records, created_at_ms, \
         usage_chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(batch.source.to_string())
    .bind(batch.source.kind().as_str())
    .bind(batch.account.to_string())
    .bind(seq as i64)
    .bind(amount as i64)
    .bind(hex32::encode(&batch.batch_root))
    .bind(batch.window_end)
    .bind(batch.records as i64)
    .bind(crate::clock::now_ms())
    .bind(usage_chain.map(|c| hex32::encode(&c)))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(batch))
}

/// Marks a batch as on chain.
pub async fn mark_settled(pool: &Pool, source: Source, seq: u64, signature: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE settle_batches SET settled_at_ms = $1, signature = COALESCE($2, signature) WHERE source = $3 AND seq = $4",
    )
    .bind(crate::clock::now_ms())
    .bind(signature)
    .bind(source.to_string())
    .bind(seq as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the signature a batch was sent with (before confirmation).
pub async fn mark_sent(pool: &Pool, source: Source, seq: u64, signature: &str) -> Result<()> {
    sqlx::query("UPDATE settle_batches SET signature = $1 WHERE source = $2 AND seq = $3")
        .bind(signature)
        .bind(source.to_string())
        .bind(seq as i64)
        .execute(pool)
        .await?;
    Ok(())
}

/// Moves `from`'s records to the source `to`: those not in a batch and created after
/// `after_ms` (all when `None`), and those of its batches from `from_seq` on, which are
/// deleted (they never reached the chain). Returns the credits moved.
pub async fn move_records(
    pool: &Pool,
    from: Source,
    to: Source,
    after_ms: Option<i64>,
    from_seq: Option<u64>,
) -> Result<u64> {
    let mut tx = crate::store::db::begin_write(pool).await?;
    let voided = i64::try_from(from_seq.unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
    let (from, to) = (from.to_string(), to.to_string());
    let cond = "source = $1 AND ((settled_seq IS NULL AND created_at_ms > $2) OR settled_seq >= $3)";
    let moved: i64 = sqlx::query_scalar(&format!(
        "SELECT CAST(COALESCE(SUM(credits_charged), 0) AS BIGINT) FROM usage_records WHERE {cond}"
    ))
    .bind(&from)
    .bind(after_ms.unwrap_or(i64::MIN))
    .bind(voided)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&format!("UPDATE usage_records SET source = $4, settled_seq = NULL WHERE {cond}"))
        .bind(&from)
        .bind(after_ms.unwrap_or(i64::MIN))
        .bind(voided)
        .bind(&to)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM settle_batches WHERE source = $1 AND seq >= $2 AND settled_at_ms IS NULL")
        .bind(&from)
        .bind(voided)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(moved.max(0) as u64)
}

/// One line of a receipt export.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSummary {
    pub receipt: String,
    pub created_at_ms: i64,
    pub source: String,
    pub model: String,
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub credits: u64,
    /// The settlement batch, once cut (0: nothing to burn).
    pub batch: Option<u64>,
    pub settled: bool,
}

/// `account`'s receipts between two UTC days (inclusive, YYYY-MM-DD), oldest first, after
/// the cursor `(created_at_ms, request_id)`, at most `limit`.
pub async fn list(
    pool: &Pool,
    account: &Pubkey,
    from: Option<&str>,
    to: Option<&str>,
    after: Option<(i64, &str)>,
    limit: u32,
) -> Result<Vec<BatchSummary>> {
    let mut q = Sql::new(
        "SELECT u.request_id, u.created_at_ms, u.source, u.model, u.provider, u.input_tokens, u.output_tokens, \
         u.credits_charged, u.settled_seq, b.settled_at_ms FROM usage_records u \
         LEFT JOIN settle_batches b ON b.source = u.source AND b.seq = u.settled_seq WHERE u.account = ",
    );
    q.text(&account.to_string());
    if let Some(from) = from {
        q.push(" AND u.day >= ").text(from);
    }
    if let Some(to) = to {
        q.push(" AND u.day <= ").text(to);
    }
    if let Some((ms, id)) = after {
        q.push(" AND (u.created_at_ms, u.request_id) > (").int(ms).push(", ").text(id).push(")");
    }
    q.push(" ORDER BY u.created_at_ms, u.request_id LIMIT ").int(i64::from(limit));
    let rows = q.query().fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| BatchSummary {
            receipt: r.get(0),
            created_at_ms: r.get(1),
            source: r.get(2),
            model: r.get(3),
            provider: r.get(4),
            input_tokens: r.get::<i64, _>(5) as u64,
            output_tokens: r.get::<i64, _>(6) as u64,
            credits: r.get::<i64, _>(7) as u64,
            batch: r.get::<Option<i64>, _>(8).map(|s| s as u64),
            settled: r.get::<Option<i64>, _>(9).is_some(),
        })
        .collect())
}

/// Everything needed to check one request's burn: its leaf, its batch, and the Merkle proof.
#[derive(Clone, Debug, Serialize)]
pub struct Receipt {
    pub leaf: Leaf,
    #[serde(with = "hex32")]
    pub leaf_hash: [u8; 32],
    pub batch: Option<Batch>,
    pub index: Option<u64>,
    pub proof: Vec<Step>,
}

/// The receipt of `request_id`, if the ledger has it (its batch, once it is in one).
pub async fn receipt(pool: &Pool, request_id: &str) -> Result<Option<Receipt>> {
    if !crate::store::db::storable(request_id) {
        return Ok(None);
    }
    let row =
        sqlx::query(&format!("SELECT {LEAF_COLUMNS}, settled_seq FROM usage_records WHERE request_id = $1"))
            .bind(request_id)
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let leaf = leaf_of(&row);
    let leaf_hash = leaf.hash();
    let seq: Option<i64> = row.get("settled_seq");
    let batch = match seq {
        Some(seq) if seq > 0 => {
            sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM settle_batches WHERE source = $1 AND seq = $2"))
                .bind(&leaf.source)
                .bind(seq)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(batch_of)
                .transpose()?
        }
        _ => None,
    };
    let Some(batch) = batch else {
        return Ok(Some(Receipt { leaf, leaf_hash, batch: None, index: None, proof: vec![] }));
    };
    let members = sqlx::query(&format!(
        "SELECT {LEAF_COLUMNS} FROM usage_records WHERE source = $1 AND settled_seq = $2 ORDER BY created_at_ms, request_id"
    ))
    .bind(batch.source.to_string())
    .bind(batch.seq as i64)
    .fetch_all(pool)
    .await?;
    let hashes: Vec<[u8; 32]> = members.iter().map(|r| leaf_of(r).hash()).collect();
    let index = hashes.iter().position(|h| *h == leaf_hash);
    let proof = index.map(|i| receipt::proof(&hashes, i)).unwrap_or_default();
    Ok(Some(Receipt { leaf, leaf_hash, batch: Some(batch), index: index.map(|i| i as u64), proof }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::UsageRecord;
    use crate::store::ledger::Ledger;

    const ACCOUNT: Pubkey = Pubkey::new_from_array([1; 32]);
    const VAULT: Source = Source::Vault(ACCOUNT);
    const FACILITY: Source = Source::Facility(Pubkey::new_from_array([2; 32]));

    fn record(i: i64, source: Source, credits: u64) -> UsageRecord {
        crate::domain::usage::fixtures::record(i, ACCOUNT, source, credits)
    }

    fn cut_of(source: Source, seq: u64, max_records: usize) -> Cut {
        Cut {
            source,
            account: ACCOUNT,
            seq,
            min_window_end: 0,
            max_records,
            prev_chain: None,
            until_ms: None,
        }
    }

    #[tokio::test]
    async fn a_facility_batch_takes_nothing_metered_after_its_cutoff() {
        // A frozen or matured facility settles nothing metered after its cutoff: a batch
        // straddling it could never land, and would hold back the records before it.
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
        for i in 0..5 {
            ledger.record(record(i, FACILITY, 10)).await.unwrap();
        }
        ledger.flush().await.unwrap();
        let pool = ledger.pool();
        let until = Some(1_764_000_002_000);
        let b = cut(pool, Cut { until_ms: until, ..cut_of(FACILITY, 1, 10) }).await.unwrap().unwrap();
        assert_eq!((b.records, b.amount, b.window_end), (3, 30, 1_764_000_002), "up to the cutoff only");
        assert!(cut(pool, Cut { until_ms: until, ..cut_of(FACILITY, 2, 10) }).await.unwrap().is_none());
        let rest = cut(pool, cut_of(FACILITY, 2, 10)).await.unwrap().unwrap();
        assert_eq!(rest.records, 2, "the rest waits for the move to the vault");
    }

    #[tokio::test]
    async fn batches_take_the_oldest_records_and_receipts_prove_each_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
        for i in [4, 0, 3, 1, 2] {
            ledger.record(record(i, VAULT, 10 + i as u64)).await.unwrap();
        }
        ledger.record(record(9, VAULT, 0)).await.unwrap();
        ledger.flush().await.unwrap();
        let pool = ledger.pool();

        let first = cut(pool, cut_of(VAULT, 7, 3)).await.unwrap().unwrap();
        assert_eq!((first.seq, first.records, first.amount), (7, 3, 10 + 11 + 12), "the three oldest");
        assert_eq!(first.window_end, 1_764_000_002, "the last record's second");
        let second = cut(pool, cut_of(VAULT, 8, 3)).await.unwrap().unwrap();
        assert_eq!((second.records, second.amount), (3, 13 + 14), "a free record rides along");
        assert!(cut(pool, cut_of(VAULT, 9, 3)).await.unwrap().is_none(), "nothing left");
        // A batch of free records burns nothing: marked, never sent.
        ledger.record(record(10, VAULT, 0)).await.unwrap();
        ledger.flush().await.unwrap();
        assert!(cut(pool, cut_of(VAULT, 9, 3)).await.unwrap().is_none());
        assert!(unbatched(pool).await.unwrap().is_empty());
        assert!(receipt(pool, "req-010").await.unwrap().unwrap().batch.is_none());
        assert_eq!(pending(pool).await.unwrap().len(), 2);

        for (id, batch) in [("req-001", &first), ("req-004", &second)] {
            let r = receipt(pool, id).await.unwrap().unwrap();
            assert_eq!(r.batch.as_ref().map(|b| b.seq), Some(batch.seq));
            assert_eq!(compux_sdk::receipt::fold(r.leaf.hash(), &r.proof), batch.batch_root, "{id}");
        }
        assert!(receipt(pool, "req-404").await.unwrap().is_none());

        mark_settled(pool, VAULT, 7, Some("sig")).await.unwrap();
        assert_eq!(pending(pool).await.unwrap().iter().map(|b| b.seq).collect::<Vec<_>>(), vec![8]);
        assert_eq!(last(pool, VAULT).await.unwrap().unwrap().seq, 8);
    }

    #[tokio::test]
    async fn a_frozen_facilitys_late_and_void_records_move_to_the_vault() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
        for i in 0..6 {
            ledger.record(record(i, FACILITY, 5)).await.unwrap();
        }
        ledger.flush().await.unwrap();
        let pool = ledger.pool();
        let b = cut(pool, cut_of(FACILITY, 1, 2)).await.unwrap().unwrap();
        assert_eq!(b.records, 2);
        // Frozen at the third record's time: the three after it are the vault's to pay.
        let moved = move_records(pool, FACILITY, VAULT, Some(1_764_000_002_000), None).await.unwrap();
        assert_eq!(moved, 15);
        assert_eq!(
            unbatched(pool).await.unwrap().iter().map(|u| (u.source, u.records)).collect::<Vec<_>>(),
            vec![(FACILITY, 1), (VAULT, 3)]
        );
        // The window closed before batch 1 landed: it is void, and all of it moves too.
        let moved = move_records(pool, FACILITY, VAULT, None, Some(1)).await.unwrap();
        assert_eq!(moved, 15);
        assert!(pending(pool).await.unwrap().is_empty());
        assert_eq!(ledger.unsettled(VAULT).await.unwrap(), 30);
        assert_eq!(ledger.unsettled(FACILITY).await.unwrap(), 0);
    }
}
