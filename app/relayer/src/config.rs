//! The relayer's configuration (TOML): where it listens, the providers it routes to with
//! their models and prices, and the API keys it accepts.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub use crate::domain::catalog::{Model, Provider};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The market whose credit accounts wallet-issued keys spend from (keys are issued only
    /// when it is set).
    pub market: Option<String>,
    /// Solana RPC endpoint for on-chain balances.
    #[serde(default = "default_rpc_url")]
    pub rpc_url: String,
    /// The usage ledger: a SQLite file (relative to the configuration file), or a
    /// `postgres://` URL shared by relayer replicas.
    #[serde(default = "default_ledger")]
    pub ledger: std::path::PathBuf,
    /// With a Postgres ledger, this replica's journal (a local path prefix, relative to the
    /// configuration file); a SQLite ledger keeps its journal next to it.
    #[serde(default = "default_journal")]
    pub journal: std::path::PathBuf,
    /// Solana PubSub endpoint for chain events (freezes, purchases, burns); by default the
    /// RPC URL's next port (`ws://host:8900` for `http://host:8899`).
    pub ws_url: Option<String>,
    /// Seconds between on-chain balance refreshes (chain events also trigger one).
    #[serde(default = "default_refresh_secs")]
    pub balance_refresh_secs: u64,
    /// The oldest the on-chain balances may be for the hard cap to admit a request (and for
    /// `/health/ready` to pass); older, requests get 503 `balances_stale`.
    #[serde(default = "default_max_balance_age_secs")]
    pub max_balance_age_secs: u64,
    /// Completion tokens assumed for the hold when a request sets no `max_tokens`.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// Upstream timeout before failing over, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Consecutive failures that take a provider out of routing...
    #[serde(default = "default_breaker_threshold")]
    pub breaker_threshold: u32,
    /// ...for this long, after which one request probes it.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub keys: Vec<Key>,
    /// Burn metered usage on chain (needs `market` and the market's relayer keypair).
    pub settler: Option<crate::jobs::settler::SettlerConfig>,
    /// Balance leases between replicas (a Postgres ledger only).
    #[serde(default)]
    pub leases: crate::jobs::leases::LeaseConfig,
    /// How low-balance webhooks are checked and retried.
    #[serde(default)]
    pub alerts: crate::jobs::alerts::AlertsConfig,
}

fn default_breaker_threshold() -> u32 {
    3
}

fn default_breaker_cooldown_ms() -> u64 {
    30_000
}

fn default_rpc_url() -> String {
    "http://127.0.0.1:8899".into()
}

fn default_ledger() -> std::path::PathBuf {
    "relayer-ledger.sqlite".into()
}

fn default_journal() -> std::path::PathBuf {
    "relayer-journal".into()
}

fn default_max_balance_age_secs() -> u64 {
    30
}
fn default_refresh_secs() -> u64 {
    2
}

fn default_max_tokens() -> u64 {
    4_096
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// An API key, stored as the SHA-256 of the key, scoped to one credit account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub sha256: String,
    pub account: String,
    /// Optional limits, as for wallet-issued keys.
    pub credits_per_day: Option<u64>,
    pub requests_per_minute: Option<u32>,
}

impl Key {
    pub fn caller(&self) -> crate::access::keys::Caller {
        crate::access::keys::Caller {
            account: self.account.clone(),
            limits: crate::access::keys::Limits {
                credits_per_day: self.credits_per_day,
                requests_per_minute: self.requests_per_minute,
            },
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).context("invalid relayer configuration")?;
        if c.settler.is_some() && c.market.is_none() {
            bail!("[settler] needs `market`: the market whose relayer key signs the burns");
        }
        if c.providers.is_empty() {
            bail!("the configuration names no provider");
        }
        for p in &c.providers {
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                bail!("provider {}: base_url must be an http(s) URL, not {:?}", p.name, p.base_url);
            }
            for m in &p.models {
                if let Some(h) = &m.hour_multipliers_bps {
                    if h.len() != 24 || h.iter().any(|&x| x == 0 || x > 1_000_000) {
                        bail!(
                            "provider {}, model {}: hour_multipliers_bps needs 24 values from 1 to 1000000 (basis points), one per UTC hour",
                            p.name,
                            m.name
                        );
                    }
                }
            }
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }
}
