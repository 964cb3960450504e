//! Requests-per-minute limits shared by replicas: the generic cell rate algorithm's
//! theoretical arrival time per key (`rate_limits`), advanced by one conditional UPDATE per
//! admitted request, so concurrent admissions of one key on any replica serialise on its
//! row: at most `burst / interval + 1` pass at once and one per interval after.

use anyhow::Result;

use crate::domain::ids::KeyHash;
use crate::store::db::Pool;

/// Admits one request of `key` at `now_ms` (each takes `interval_ms`, up to `burst_ms`
/// ahead), or returns how many ms until one would be admitted.
pub async fn admit(
    pool: &Pool,
    key: &KeyHash,
    now_ms: i64,
    interval_ms: i64,
    burst_ms: i64,
) -> Result<Result<(), i64>> {
    for _ in 0..2 {
        let admitted = sqlx::query(
            "UPDATE rate_limits SET tat_ms = (CASE WHEN tat_ms > $2 THEN tat_ms ELSE $2 END) + $3 \
             WHERE key_hash = $1 AND (CASE WHEN tat_ms > $2 THEN tat_ms ELSE $2 END) - $2 <= $4",
        )
        .bind(key.as_str())
        .bind(now_ms)
        .bind(interval_ms)
        .bind(burst_ms)
        .execute(pool)
        .await?;
        if admitted.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat_ms FROM rate_limits WHERE key_hash = $1")
            .bind(key.as_str())
            .fetch_optional(pool)
            .await?;
        match tat {
            Some(tat) => return Ok(Err(tat - now_ms - burst_ms)),
            // The key's first request: create its row, then admit as above.
            None => {
                sqlx::query(
                    "INSERT INTO rate_limits (key_hash, tat_ms) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                )
                .bind(key.as_str())
                .execute(pool)
                .await?;
            }
        }
    }
    anyhow::bail!("the rate limit row of a key could not be created")
}
