//! Low-balance alerts in the database: registered by accounts, read by the checker, and
//! each crossing claimed once (`fired_at_ms`) whichever replica checks.

use serde::Serialize;
use serde_with::{serde_as, DisplayFromStr};
use sqlx::Row;

use crate::domain::ids::{stored_address, Pubkey};
use crate::store::db::Pool;

/// An alert as listed to its account (never the secret).
#[serde_as]
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub id: String,
    #[serde_as(as = "DisplayFromStr")]
    pub account: Pubkey,
    pub url: String,
    /// Credit base units: the alert fires when the available balance falls below this.
    pub below: u64,
    #[serde(skip)]
    pub secret: String,
}

fn alert_of(r: &crate::store::db::Row) -> anyhow::Result<Alert> {
    Ok(Alert {
        id: r.get("id"),
        account: stored_address(r.get("account"))?,
        url: r.get("url"),
        below: r.get::<i64, _>("below").max(0) as u64,
        secret: r.get("secret"),
    })
}

pub async fn insert(pool: &Pool, alert: &Alert, now_ms: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO alerts (id, account, url, below, secret, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&alert.id)
    .bind(alert.account.to_string())
    .bind(&alert.url)
    .bind(i64::try_from(alert.below).unwrap_or(i64::MAX))
    .bind(&alert.secret)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// `account`'s alerts, oldest first; every alert when `None`.
pub async fn list(pool: &Pool, account: Option<&Pubkey>) -> anyhow::Result<Vec<Alert>> {
    let rows = match account {
        Some(a) => {
            sqlx::query("SELECT * FROM alerts WHERE account = $1 ORDER BY created_at_ms")
                .bind(a.to_string())
                .fetch_all(pool)
                .await?
        }
        None => sqlx::query("SELECT * FROM alerts").fetch_all(pool).await?,
    };
    rows.iter().map(alert_of).collect()
}

/// Removes one of `account`'s alerts; false if it has none by that id.
pub async fn remove(pool: &Pool, account: &Pubkey, id: &str) -> anyhow::Result<bool> {
    if !crate::store::db::storable(id) {
        return Ok(false);
    }
    let done = sqlx::query("DELETE FROM alerts WHERE id = $1 AND account = $2")
        .bind(id)
        .bind(account.to_string())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Claims a crossing below the threshold (true once per crossing, whichever replica asks),
/// or re-arms the alert when the balance is back above.
pub async fn cross(pool: &Pool, id: &str, below: bool, now_ms: i64) -> anyhow::Result<bool> {
    if !below {
        sqlx::query("UPDATE alerts SET fired_at_ms = NULL WHERE id = $1 AND fired_at_ms IS NOT NULL")
            .bind(id)
            .execute(pool)
            .await?;
        return Ok(false);
    }
    let claimed = sqlx::query("UPDATE alerts SET fired_at_ms = $2 WHERE id = $1 AND fired_at_ms IS NULL")
        .bind(id)
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(claimed.rows_affected() == 1)
}
