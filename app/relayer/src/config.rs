//! The relayer's configuration (TOML): where it listens, the providers it routes to with
//! their models and prices, and the API keys it accepts.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::domain::ids::Pubkey;

pub use crate::domain::catalog::{Model, Protocol, Provider};

#[serde_with::serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The market whose credit accounts wallet-issued keys spend from (keys are issued only
    /// when it is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde_as(as = "Option<serde_with::DisplayFromStr>")]
    pub market: Option<Pubkey>,
    /// Model requests this replica serves at once (streams count until they end); one
    /// more is a 503 `overloaded` with Retry-After, before its body is read.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Keys are issued only for a credit account open on chain (one read per key created).
    #[serde(default = "default_true")]
    pub require_credit_account: bool,
    /// The domain every key challenge names (e.g. `relay.example.com`), as a wallet shows
    /// the site asking; unset, the Host the challenge was asked at (fine on a trusted
    /// network, not behind a public endpoint another site can proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_domain: Option<String>,
    /// Active wallet-issued keys one wallet may hold (a key costs a row and memory on every
    /// replica).
    #[serde(default = "default_keys_per_wallet")]
    pub keys_per_wallet: usize,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Prompt tokens held for each image in a request, whatever its size or source: the most
    /// any configured model bills for one image after the provider resizes it (raise it for
    /// a model that bills more, e.g. OpenAI's gpt-4o-mini counts each image 33 times over).
    #[serde(default = "default_image_tokens")]
    pub image_tokens: u64,
    /// The longest an upstream may stay silent once it answers: between two reads of a
    /// reply or a stream (idle), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Connecting to a provider (TCP and TLS): past it the provider never got the request,
    /// so the next one is tried.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// From sending a request to the reply's first byte (a provider's `first_byte_timeout_ms`
    /// overrides it: reasoning models think before they answer).
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    /// The whole of one attempt, reply read in full (a provider's `total_timeout_ms`
    /// overrides it). A request's attempts together never run longer than the largest of
    /// these (`longest_request_ms`).
    #[serde(default = "default_total_timeout_ms")]
    pub total_timeout_ms: u64,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

fn default_max_concurrent_requests() -> usize {
    4_096
}

fn default_true() -> bool {
    true
}

fn default_keys_per_wallet() -> usize {
    20
}

fn default_image_tokens() -> u64 {
    crate::domain::bound::DEFAULT_IMAGE_TOKENS
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

fn default_first_byte_timeout_ms() -> u64 {
    120_000
}

fn default_total_timeout_ms() -> u64 {
    600_000
}

/// An API key, stored as the SHA-256 of the key, scoped to one credit account.
#[serde_with::serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub sha256: String,
    /// The credit account's address (base58).
    #[serde_as(as = "serde_with::DisplayFromStr")]
    pub account: Pubkey,
    /// Optional limits, as for wallet-issued keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

impl Key {
    /// The key whose SHA-256 is `sha256` (hex), spending from `account`, without limits.
    pub fn new(sha256: impl Into<String>, account: Pubkey) -> Key {
        Key { sha256: sha256.into(), account, credits_per_day: None, requests_per_minute: None }
    }

    pub fn caller(&self) -> crate::access::keys::Caller {
        crate::access::keys::Caller {
            account: self.account,
            limits: crate::access::keys::Limits {
                credits_per_day: self.credits_per_day,
                requests_per_minute: self.requests_per_minute,
            },
        }
    }
}

/// The most `max_concurrent_requests` may be.
const MAX_SLOTS: usize = 1_000_000;

/// Time allowed, after a request's last attempt ends, for its charge to be recorded: a
/// slow reader may keep a stream's relay waiting up to `sse::STALL` (10 s) per send.
const RECORD_MARGIN_MS: u64 = 15_000;

impl Config {
    /// Prompt tokens held per image for a request to `model`: the most any provider serving
    /// it bills for one (its `image_tokens`, else the relayer's), since routing picks the
    /// provider after the hold.
    pub fn image_tokens_for(&self, model: &str) -> u64 {
        let serving = self.providers.iter().flat_map(|p| &p.models).filter(|m| m.name == model);
        serving.map(|m| m.image_tokens.unwrap_or(self.image_tokens)).max().unwrap_or(self.image_tokens)
    }

    /// Model requests served at once: `max_concurrent_requests`, bounded as `check` requires
    /// (so a configuration built in code cannot ask for more than a semaphore holds).
    pub fn slots(&self) -> usize {
        self.max_concurrent_requests.clamp(1, MAX_SLOTS)
    }

    /// The longest one request's attempts may run together: the largest total deadline
    /// here or on any provider.
    pub fn request_deadline(&self) -> std::time::Duration {
        let providers = self.providers.iter().filter_map(|p| p.total_timeout_ms);
        std::time::Duration::from_millis(providers.fold(self.total_timeout_ms, u64::max))
    }

    /// The longest a request may run and still charge: its deadline plus a margin to record
    /// the charge. A replica's lease stands this long after it stops admitting
    /// (`jobs::leases`).
    pub fn longest_request_ms(&self) -> u64 {
        (self.request_deadline().as_millis() as u64).saturating_add(RECORD_MARGIN_MS)
    }

    /// The longest from the moment an owner announces a transfer (or a lower burn ceiling)
    /// to the moment the usage this relayer admitted before seeing it is burned: the next
    /// balance read, the longest request, and the settler's flush timer. The market's
    /// notice must be longer, or that usage could find its credits gone.
    pub fn settlement_lag_ms(&self) -> u64 {
        let flush = self.settler.as_ref().map_or(0, |s| s.flush_secs);
        self.longest_request_ms()
            .saturating_add(self.balance_refresh_secs.saturating_mul(1_000))
            .saturating_add(flush.saturating_mul(1_000))
    }

    /// A relayer listening on `listen` in front of `providers`, every other setting at its
    /// default (as a file with only those would be); set fields, then `check`.
    pub fn new(listen: SocketAddr, providers: Vec<Provider>) -> Config {
        Config {
            listen,
            market: None,
            keys_per_wallet: default_keys_per_wallet(),
            key_domain: None,
            require_credit_account: true,
            max_concurrent_requests: default_max_concurrent_requests(),
            rpc_url: default_rpc_url(),
            ledger: default_ledger(),
            journal: default_journal(),
            ws_url: None,
            balance_refresh_secs: default_refresh_secs(),
            max_balance_age_secs: default_max_balance_age_secs(),
            default_max_tokens: default_max_tokens(),
            image_tokens: default_image_tokens(),
            upstream_timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            first_byte_timeout_ms: default_first_byte_timeout_ms(),
            total_timeout_ms: default_total_timeout_ms(),
            breaker_threshold: default_breaker_threshold(),
            breaker_cooldown_ms: default_breaker_cooldown_ms(),
            providers,
            keys: Vec::new(),
            settler: None,
            leases: Default::default(),
            alerts: Default::default(),
        }
    }

    /// Parsed, then checked.
    pub fn from_toml(text: &str) -> Result<Config> {
        toml::from_str::<Config>(text).context("invalid relayer configuration")?.check()
    }

    /// The configuration as a `relayer.toml` (what `from_toml` reads back, equal).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("the configuration cannot be written as TOML")
    }

    /// What the types cannot say: the settler needs a market, at least one provider, URLs,
    /// 24 hourly multipliers.
    pub fn check(self) -> Result<Config> {
        let c = self;
        if c.settler.is_some() && c.market.is_none() {
            bail!("[settler] needs `market`: the market whose relayer key signs the burns");
        }
        if c.providers.is_empty() {
            bail!("the configuration names no provider");
        }
        if !(1..=MAX_SLOTS).contains(&c.max_concurrent_requests) {
            bail!("max_concurrent_requests must be from 1 to {MAX_SLOTS}, not {}", c.max_concurrent_requests);
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
        for (i, k) in c.keys.iter().enumerate() {
            crate::domain::ids::KeyHash::parse(&k.sha256).map_err(|e| {
                anyhow::anyhow!("keys[{i}].sha256: {e}; write the SHA-256 of the API key, e.g. `printf %s \"$KEY\" | sha256sum`")
            })?;
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pricing::Price;

    fn model(name: &str) -> Model {
        Model {
            name: name.into(),
            upstream_model: Some(format!("{name}-2025")),
            price: Price::flat(1_000_000, 2_000_000),
            hour_multipliers_bps: Some(vec![10_000; 24]),
            provider_price: Some(Price::flat(600_000, 800_000)),
            image_tokens: Some(5_000),
        }
    }

    #[test]
    fn a_models_image_tokens_are_the_most_any_provider_serving_it_bills() {
        let mut c = Config::new("127.0.0.1:0".parse().unwrap(), Vec::new());
        c.providers.push(Provider::new("a", "http://a", vec![model("m"), Model::priced("plain", 1, 1)]));
        c.providers.push(Provider::new(
            "b",
            "http://b",
            vec![Model { image_tokens: Some(60_000), ..model("m") }],
        ));
        assert_eq!(c.image_tokens_for("m"), 60_000, "routing may pick either: the larger is held");
        assert_eq!(c.image_tokens_for("plain"), c.image_tokens, "the relayer's default");
        assert_eq!(c.image_tokens_for("unserved"), c.image_tokens);
    }

    #[test]
    fn a_key_that_is_not_a_sha256_is_refused_naming_it() {
        let mut c =
            Config::new("127.0.0.1:8080".parse().unwrap(), vec![Provider::new("p", "http://x/v1", vec![])]);
        c.keys.push(Key::new("sk-compux-the-key-itself", Pubkey::new_unique()));
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("keys[0].sha256") && e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn a_configuration_built_in_code_is_written_and_read_back_equal() {
        let provider = Provider {
            name: "sim (SIMULATED)".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            kind: Protocol::Azure,
            api_key_env: Some("SIM_KEY".into()),
            api_version: Some("2024-10-21".into()),
            region: Some("eu-west-3".into()),
            max_tokens_field: Some("max_completion_tokens".into()),
            first_byte_timeout_ms: Some(300_000),
            total_timeout_ms: None,
            models: vec![
                model("a"),
                Model { hour_multipliers_bps: None, provider_price: None, ..model("b") },
            ],
        };
        let mut c = Config::new("127.0.0.1:8080".parse().unwrap(), vec![provider]);
        c.market = Some(Pubkey::new_unique());
        c.keys.push(Key {
            sha256: "ab".repeat(32),
            account: Pubkey::new_unique(),
            credits_per_day: Some(5),
            requests_per_minute: None,
        });
        c.settler = Some(crate::jobs::settler::SettlerConfig::new("relayer.json".into()));
        let text = c.to_toml().unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
        // A file with only the required fields means the defaults `new` sets.
        let minimal = "listen = \"127.0.0.1:8080\"\n[[providers]]\nname = \"p\"\nbase_url = \"http://x\"\nmodels = []\n";
        let p = Provider::new("p", "http://x", vec![]);
        assert_eq!(
            Config::from_toml(minimal).unwrap(),
            Config::new("127.0.0.1:8080".parse().unwrap(), vec![p])
        );
    }

    #[test]
    fn what_the_types_cannot_say_is_checked() {
        let mut c = Config::new("127.0.0.1:0".parse().unwrap(), vec![]);
        assert!(c.clone().check().unwrap_err().to_string().contains("no provider"));
        c.providers.push(Provider::new("p", "ftp://x", vec![]));
        assert!(c.clone().check().unwrap_err().to_string().contains("http(s)"));
        c.providers[0].base_url = "http://x".into();
        c.settler = Some(crate::jobs::settler::SettlerConfig::new("k.json".into()));
        assert!(c.clone().check().unwrap_err().to_string().contains("needs `market`"));
        c.settler = None;
        c.providers[0].models.push(Model { hour_multipliers_bps: Some(vec![1; 23]), ..model("m") });
        assert!(c.check().unwrap_err().to_string().contains("24 values"));
    }
}
