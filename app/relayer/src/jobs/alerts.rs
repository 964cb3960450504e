//! Low-balance alerts: webhooks a credit account registers (`POST /v1/alerts` with one of
//! its keys). Every few seconds the relayer compares each account's available credits (its
//! unfrozen sources) with the alert's threshold; on crossing below it POSTs a `balance.low`
//! event once, and re-arms when the balance is back above.
//!
//! With replicas this is a leader's job (`leader::Job::Alerts`): one replica checks, and it
//! counts every replica's charges from the shared ledger, not only its own. The crossing is
//! claimed in the database (`fired_at_ms`), so a new leader after a failover, or a restart,
//! neither fires a crossing again nor forgets to re-arm.
//!
//! Each delivery is signed: `x-compux-timestamp: <unix seconds>` and
//! `x-compux-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A delivery that
//! does not get a 2xx is retried with exponential backoff (`retry_base_ms`, doubling, up to
//! `max_attempts`). The verification recipe is in docs/alerts.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::store::alerts as store;
pub use crate::store::alerts::{list, remove, Alert};
use crate::store::db::{Backend, Pool};
use crate::store::leader::{try_lead, Job, Leader};
use crate::store::ledger::Ledger;

use crate::domain::ids::{Pubkey, Source};
use crate::domain::meter::Meter;
use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Deliver to loopback and private addresses too (a local demo, tests). Off: a webhook
    /// URL may not point the relayer at its own network (checked at registration for
    /// addresses, and at connect time for every name's resolved addresses).
    #[serde(default)]
    pub allow_private_urls: bool,
    /// The most alerts one credit account may register.
    #[serde(default = "default_max_per_account")]
    pub max_per_account: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            check_secs: default_check_secs(),
            retry_base_ms: default_retry_base_ms(),
            max_attempts: default_max_attempts(),
            allow_private_urls: false,
            max_per_account: default_max_per_account(),
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
fn default_max_per_account() -> usize {
    10
}

/// Whether a webhook may be delivered to `ip`: a public address, not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or documentation.
pub fn public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(a == 0
                || v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (b & 0xc0) == 64))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

/// Resolves webhook hosts to their public addresses only, at connect time (a name that
/// resolves to a private address, first or after a DNS change, is never connected to).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Vec<std::net::SocketAddr> = all.filter(|a| public(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `url` names a private or loopback address (or `localhost`) by itself.
fn names_private(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !public(ip),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// What a caller sends to register an alert.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    pub url: String,
    pub below: u64,
}

/// Registers an alert for `account`; returns it and its signing secret (shown once).
pub async fn add(
    pool: &Pool,
    account: Pubkey,
    new: NewAlert,
    config: &AlertsConfig,
) -> Result<(Alert, String), ApiError> {
    let url =
        reqwest::Url::parse(&new.url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(
            || ApiError::bad_request("invalid_value", Some("url"), "`url` must be an http(s) URL."),
        )?;
    if !config.allow_private_urls && names_private(&url) {
        return Err(ApiError::bad_request(
            "invalid_value",
            Some("url"),
            "`url` must be a public address: loopback, private and link-local addresses are refused.",
        ));
    }
    let existing = list(pool, Some(&account)).await.map_err(ApiError::internal)?.len();
    if existing >= config.max_per_account {
        return Err(ApiError::bad_request(
            "too_many_alerts",
            Some("url"),
            format!(
                "This account has {existing} alerts, the most allowed: remove one (`compux alerts remove`) first."
            ),
        ));
    }
    if new.below == 0 {
        return Err(ApiError::bad_request(
            "invalid_value",
            Some("below"),
            "`below` must be positive (credit base units).",
        ));
    }
    let id = format!("alert_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    let alert = Alert { id, account, url: url.to_string(), below: new.below, secret };
    store::insert(pool, &alert, crate::clock::now_ms()).await.map_err(ApiError::internal)?;
    let secret = alert.secret.clone();
    Ok((alert, secret))
}

/// The signature header value for `body` sent at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// An account's available credits over its unfrozen sources: with a shared ledger, the
/// on-chain balance less every replica's unsettled charges; alone, as the hard cap sees it.
async fn available(ledger: &Ledger, meter: &Meter, account: Pubkey) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for source in meter.sources(account) {
        let b = meter.balance(source);
        if b.frozen {
            continue;
        }
        let here = match ledger.backend() {
            Backend::Sqlite => b.available(),
            Backend::Postgres => {
                let (onchain, seq) = meter.snapshot(source);
                onchain.saturating_sub(crate::store::leases::unsettled(ledger.pool(), source, seq).await?)
            }
        };
        total = total.saturating_add(here);
    }
    Ok(total)
}

/// One check of every alert (the leader's).
async fn check(
    ledger: &Ledger,
    meter: &Meter,
    http: &reqwest::Client,
    config: &AlertsConfig,
) -> anyhow::Result<()> {
    // Until the chain has been read, a balance of zero means nothing.
    for alert in
        list(ledger.pool(), None).await?.into_iter().filter(|a| meter.known(Source::Vault(a.account)))
    {
        let available = available(ledger, meter, alert.account).await?;
        if store::cross(ledger.pool(), &alert.id, available < alert.below, crate::clock::now_ms()).await? {
            tokio::spawn(deliver(http.clone(), alert, available, config.clone()));
        }
    }
    Ok(())
}

/// The running alert checker of one replica.
pub struct AlertsTask {
    handle: tokio::task::JoinHandle<()>,
    leading: Arc<AtomicBool>,
}

impl AlertsTask {
    /// Whether this replica leads the alerts now.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Stops checking and gives leadership up (as the replica's death would).
    pub fn abort(&self) {
        self.handle.abort();
    }
}

/// Checks balances every `check_secs` while this replica leads the alerts, and delivers
/// alerts that crossed their threshold, on a task of its own (tests; the relayer
/// supervises `run`).
pub fn spawn(ledger: Ledger, meter: Arc<Meter>, config: AlertsConfig) -> AlertsTask {
    let leading = Arc::new(AtomicBool::new(false));
    let handle = tokio::spawn(run(ledger, meter, config, leading.clone()));
    AlertsTask { handle, leading }
}

/// The checker's loop: tries to lead, and while leading checks every alert; `leading` says
/// whether this replica leads.
pub async fn run(ledger: Ledger, meter: Arc<Meter>, config: AlertsConfig, leading: Arc<AtomicBool>) {
    // No redirects (a public URL answering 302 to an internal one), and only public
    // addresses unless told otherwise.
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    let builder =
        if config.allow_private_urls { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
    let http = builder.build().expect("an HTTP client");
    let mut leader: Option<Leader> = None;
    loop {
        leading.store(leader.is_some(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(config.check_secs.max(1) * 1_000)).await;
        if leader.is_none() {
            leader = match try_lead(ledger.pool(), ledger.backend(), Job::Alerts).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the ledger to lead the alerts");
                    None
                }
            };
        }
        let Some(l) = leader.as_mut() else { continue };
        if !l.alive().await {
            leader = None;
            continue;
        }
        leading.store(true, Ordering::Relaxed);
        if let Err(e) = check(&ledger, &meter, &http, &config).await {
            tracing::warn!(error = %format!("{e:#}"), "low-balance check failed");
        }
    }
}

async fn deliver(http: reqwest::Client, alert: Alert, available: u64, config: AlertsConfig) {
    let body = json!({
        "type": "balance.low",
        "id": uuid::Uuid::new_v4().to_string(),
        "alert": alert.id,
        "account": alert.account.to_string(),
        "available": available,
        "below": alert.below,
        "created_at_ms": crate::clock::now_ms(),
    })
    .to_string();
    let private = reqwest::Url::parse(&alert.url).map_or(true, |u| names_private(&u));
    if private && !config.allow_private_urls {
        tracing::error!(alert = %alert.id, "alert not delivered: its URL names a private address");
        return;
    }
    let mut wait = Duration::from_millis(config.retry_base_ms);
    for attempt in 1..=config.max_attempts.max(1) {
        // Signed at each attempt: the timestamp lets the receiver refuse stale replays.
        let timestamp = crate::clock::now_ms() / 1_000;
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
