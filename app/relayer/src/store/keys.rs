//! API keys and sign-in challenges in the database. Every change to `api_keys` bumps
//! `shared_versions.api_keys` in its own transaction: the row lock orders the changes, so a
//! replica that reads version v has every change up to v committed.

use anyhow::Result;
use sqlx::Row;

use crate::domain::ids::{stored_address, KeyHash, Pubkey};
use crate::store::db::Pool;

/// A stored key (its hash, never the key).
#[derive(Clone, Debug)]
pub struct KeyRow {
    pub id: String,
    pub key_hash: KeyHash,
    /// The wallet that signed for it.
    pub owner: Pubkey,
    /// The credit account it spends from.
    pub account: Pubkey,
    pub created_at_ms: i64,
    pub revoked: bool,
    pub credits_per_day: Option<u64>,
    pub requests_per_minute: Option<u32>,
}

fn key_of(r: &crate::store::db::Row) -> Result<KeyRow> {
    Ok(KeyRow {
        id: r.get("id"),
        key_hash: KeyHash::stored(r.get("key_hash")),
        owner: stored_address(r.get("owner"))?,
        account: stored_address(r.get("account"))?,
        created_at_ms: r.get("created_at_ms"),
        revoked: r.get::<Option<i64>, _>("revoked_at_ms").is_some(),
        credits_per_day: r.get::<Option<i64>, _>("credits_per_day").map(|n| n.max(0) as u64),
        requests_per_minute: r
            .get::<Option<i64>, _>("requests_per_minute")
            .map(|n| n.clamp(0, u32::MAX as i64) as u32),
    })
}

const COLUMNS: &str =
    "id, key_hash, owner, account, created_at_ms, revoked_at_ms, credits_per_day, requests_per_minute";

/// The version of the keys (bumped by every change).
pub async fn version(pool: &Pool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT version FROM shared_versions WHERE name = 'api_keys'")
        .fetch_one(pool)
        .await?)
}

/// Every stored key.
pub async fn all(pool: &Pool) -> Result<Vec<KeyRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys")).fetch_all(pool).await?;
    rows.iter().map(key_of).collect()
}

/// Every credit account a live key spends from or that has usage (auto-refill's candidates).
pub async fn spending_accounts(pool: &Pool) -> Result<Vec<Pubkey>> {
    let accounts: Vec<String> = sqlx::query_scalar(
        "SELECT account FROM api_keys WHERE revoked_at_ms IS NULL UNION SELECT DISTINCT account FROM usage_records",
    )
    .fetch_all(pool)
    .await?;
    accounts.iter().map(|a| stored_address(a)).collect()
}

/// `owner`'s keys, oldest first.
pub async fn of_owner(pool: &Pool, owner: &Pubkey) -> Result<Vec<KeyRow>> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE owner = $1 ORDER BY created_at_ms"))
            .bind(owner.to_string())
            .fetch_all(pool)
            .await?;
    rows.iter().map(key_of).collect()
}

async fn bump_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE shared_versions SET version = version + 1 WHERE name = 'api_keys'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stores a new key.
pub async fn insert(pool: &Pool, k: &KeyRow) -> Result<()> {
    let mut tx = crate::store::db::begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, owner, account, created_at_ms, credits_per_day, requests_per_minute) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.id)
    .bind(k.key_hash.as_str())
    .bind(k.owner.to_string())
    .bind(k.account.to_string())
    .bind(k.created_at_ms)
    .bind(k.credits_per_day.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
    .bind(k.requests_per_minute.map(i64::from))
    .execute(&mut *tx)
    .await?;
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes `owner`'s live key `id`; false if it has none by that id.
pub async fn revoke(pool: &Pool, id: &str, owner: &Pubkey, now_ms: i64) -> Result<bool> {
    if !crate::store::db::storable(id) {
        return Ok(false);
    }
    let mut tx = crate::store::db::begin_write(pool).await?;
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND owner = $3 AND revoked_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(id)
    .bind(owner.to_string())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// Stores a challenge issued to `owner`, after dropping those issued before `expired_before`.
pub async fn add_challenge(
    pool: &Pool,
    challenge: &str,
    owner: &Pubkey,
    now_ms: i64,
    expired_before: i64,
) -> Result<()> {
    sqlx::query("DELETE FROM key_challenges WHERE issued_at_ms <= $1")
        .bind(expired_before)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO key_challenges (challenge, owner, issued_at_ms) VALUES ($1, $2, $3)")
        .bind(challenge)
        .bind(owner.to_string())
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// Consumes a challenge (on every replica at once): its owner and when it was issued.
pub async fn take_challenge(pool: &Pool, challenge: &str) -> Result<Option<(Pubkey, i64)>> {
    if !crate::store::db::storable(challenge) {
        return Ok(None);
    }
    let row = sqlx::query("DELETE FROM key_challenges WHERE challenge = $1 RETURNING owner, issued_at_ms")
        .bind(challenge)
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok((stored_address(r.get("owner"))?, r.get("issued_at_ms")))).transpose()
}
