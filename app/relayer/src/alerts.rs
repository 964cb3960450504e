//! Low-balance alerts: webhooks a credit account registers (`POST /v1/alerts` with one of
//! its keys). Every few seconds the relayer compares each account's available credits (its
//! unfrozen sources, as the hard cap sees them) with the alert's threshold; on crossing
//! below it POSTs a `balance.low` event once, and re-arms when the balance is back above.
//!
//! Each delivery is signed: `x-compux-timestamp: <unix seconds>` and
//! `x-compux-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A delivery that
//! does not get a 2xx is retried with exponential backoff (`retry_base_ms`, doubling, up to
//! `max_attempts`). The verification recipe is in docs/alerts.md.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use sqlx::Row;

use crate::db::Pool;

use crate::error::ApiError;
use crate::meter::Meter;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Seconds between balance checks.
    #[serde(default = "default_check_secs")]
    pub check_secs: u64,
    /// First retry after this long; each next one waits twice as long.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            check_secs: default_check_secs(),
            retry_base_ms: default_retry_base_ms(),
            max_attempts: default_max_attempts(),
        }
    }
}

fn default_check_secs() -> u64 {
    5
}
fn default_retry_base_ms() -> u64 {
    1_000
}
fn default_max_attempts() -> u32 {
    6
}

/// An alert as listed to its account (never the secret).
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub id: String,
    pub account: String,
    pub url: String,
    /// Credit base units: the alert fires when the available balance falls below this.
    pub below: u64,
    #[serde(skip)]
    secret: String,
}

/// What a caller sends to register an alert.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    pub url: String,
    pub below: u64,
}

fn alert_of(r: &crate::db::Row) -> Alert {
    Alert {
        id: r.get("id"),
        account: r.get("account"),
        url: r.get("url"),
        below: r.get::<i64, _>("below").max(0) as u64,
        secret: r.get("secret"),
    }
}

/// Registers an alert for `account`; returns it and its signing secret (shown once).
pub async fn add(pool: &Pool, account: &str, new: NewAlert) -> Result<(Alert, String), ApiError> {
    let url =
        reqwest::Url::parse(&new.url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(
            || ApiError::bad_request("invalid_value", Some("url"), "`url` must be an http(s) URL."),
        )?;
    if new.below == 0 {
        return Err(ApiError::bad_request(
            "invalid_value",
            Some("below"),
            "`below` must be positive (credit base units).",
        ));
    }
    let id = format!("alert_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO alerts (id, account, url, below, secret, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(account)
    .bind(url.as_str())
    .bind(i64::try_from(new.below).unwrap_or(i64::MAX))
    .bind(&secret)
    .bind(crate::gateway::now_ms())
    .execute(pool)
    .await
    .map_err(ApiError::internal)?;
    let alert =
        Alert { id, account: account.into(), url: url.to_string(), below: new.below, secret: secret.clone() };
    Ok((alert, secret))
}

pub async fn list(pool: &Pool, account: Option<&str>) -> anyhow::Result<Vec<Alert>> {
    let rows = match account {
        Some(a) => {
            sqlx::query("SELECT * FROM alerts WHERE account = $1 ORDER BY created_at_ms")
                .bind(a)
                .fetch_all(pool)
                .await?
        }
        None => sqlx::query("SELECT * FROM alerts").fetch_all(pool).await?,
    };
    Ok(rows.iter().map(alert_of).collect())
}

/// Removes one of `account`'s alerts; false if it has none by that id.
pub async fn remove(pool: &Pool, account: &str, id: &str) -> anyhow::Result<bool> {
    let done = sqlx::query("DELETE FROM alerts WHERE id = $1 AND account = $2")
        .bind(id)
        .bind(account)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The signature header value for `body` sent at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks balances every `check_secs` and delivers alerts that crossed their threshold.
pub fn spawn(pool: Pool, meter: Arc<Meter>, config: AlertsConfig) {
    let fired: Arc<Mutex<HashSet<String>>> = Arc::default();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(config.check_secs.max(1))).await;
            let alerts = match list(&pool, None).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read alerts");
                    continue;
                }
            };
            // Until the chain has been read, a balance of zero means nothing.
            for alert in alerts.into_iter().filter(|a| meter.known(&a.account)) {
                let available: u64 = meter
                    .sources(&alert.account)
                    .iter()
                    .map(|s| meter.balance(s))
                    .filter(|b| !b.frozen)
                    .map(|b| b.available())
                    .fold(0, u64::saturating_add);
                let below = available < alert.below;
                let newly = {
                    let mut f = fired.lock().unwrap_or_else(|e| e.into_inner());
                    if below {
                        f.insert(alert.id.clone())
                    } else {
                        f.remove(&alert.id);
                        false
                    }
                };
                if newly {
                    tokio::spawn(deliver(http.clone(), alert, available, config.clone()));
                }
            }
        }
    });
}

async fn deliver(http: reqwest::Client, alert: Alert, available: u64, config: AlertsConfig) {
    let body = json!({
        "type": "balance.low",
        "id": uuid::Uuid::new_v4().to_string(),
        "alert": alert.id,
        "account": alert.account,
        "available": available,
        "below": alert.below,
        "created_at_ms": crate::gateway::now_ms(),
    })
    .to_string();
    let mut wait = Duration::from_millis(config.retry_base_ms);
    for attempt in 1..=config.max_attempts.max(1) {
        // Signed at each attempt: the timestamp lets the receiver refuse stale replays.
        let timestamp = crate::gateway::now_ms() / 1_000;
        let sent = http
            .post(&alert.url)
            .header("content-type", "application/json")
            .header("x-compux-event", "balance.low")
            .header("x-compux-timestamp", timestamp)
            .header("x-compux-signature", sign(&alert.secret, timestamp, &body))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(alert = %alert.id, attempt, "low-balance alert delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(alert = %alert.id, attempt, status = r.status().as_u16(), "alert delivery refused")
            }
            Err(e) => tracing::warn!(alert = %alert.id, attempt, error = %e, "alert delivery failed"),
        }
        if attempt < config.max_attempts {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(alert = %alert.id, "low-balance alert not delivered after every retry");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let s = sign("whsec_test", 1_764_000_000, r#"{"a":1}"#);
        assert!(s.starts_with("v1=") && s.len() == 3 + 64);
        assert_ne!(s, sign("whsec_test", 1_764_000_001, r#"{"a":1}"#));
        assert_ne!(s, sign("whsec_test", 1_764_000_000, r#"{"a":2}"#));
        assert_ne!(s, sign("whsec_other", 1_764_000_000, r#"{"a":1}"#));
        // RFC 4231 test case 2, through the same construction.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
