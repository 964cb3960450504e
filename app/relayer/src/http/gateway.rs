//! The gateway's state (configuration, meter, ledger, keys, provider health, rate limits)
//! and what every handler asks of it: who the caller is, and a hold within its limits.
//! The routes are in `routes.rs`, the request path in `proxy.rs`, the account's own
//! endpoints in `account.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};

use crate::access::keys::{Caller, Keys};
use crate::access::limits::RateLimiter;
use crate::config::{Config, Provider};
use crate::domain::ids::KeyHash;
use crate::domain::meter::{Budget, Hold, Meter, Refused};
use crate::domain::pricing::Price;
use crate::domain::routing::Health;
use crate::error::ApiError;
use crate::http::metrics::Metrics;
use crate::jobs::leases::{LeaseConfig, Leaser};
use crate::jobs::tasks::Tasks;
use crate::store::ledger::Ledger;

/// One relayer's gateway: what its handlers share. Lower layers own the parts (the meter,
/// the ledger, the keys); this holds them together with the upstream HTTP client.
pub struct Gateway {
    pub(super) config: Config,
    pub meter: Arc<Meter>,
    pub ledger: Ledger,
    pub health: Health,
    pub(super) metrics: Metrics,
    pub(super) http: reqwest::Client,
    /// API keys (hashed) and the credit accounts they spend from.
    pub keys: Arc<Keys>,
    rate: RateLimiter,
    /// One permit per model request being served (`max_concurrent_requests`).
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// The background tasks, supervised (`/metrics` shows them).
    pub tasks: Tasks,
    /// With replicas sharing the ledger: this replica's lease renewals (`share`).
    leaser: std::sync::OnceLock<Arc<Leaser>>,
}

impl Gateway {
    pub async fn new(config: Config, meter: Arc<Meter>, ledger: Ledger) -> anyhow::Result<Arc<Gateway>> {
        let http =
            // Per read, not per request: a long stream is fine as long as it keeps flowing.
            reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
                .read_timeout(Duration::from_millis(config.upstream_timeout_ms))
                // A provider API answers where it is asked; following a redirect would resend
                // (or, on 301/302, drop) a paid request's body somewhere else. The policy
                // hook also cost about 1.5 % of the relayer's CPU per request.
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
        let market = config.market;
        let configured = config
            .keys
            .iter()
            .map(|k| Ok((KeyHash::parse(&k.sha256).map_err(anyhow::Error::msg)?, k.caller())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let clock = meter.clock().clone();
        let keys = Arc::new(
            Keys::load(configured, ledger.pool(), market, config.keys_per_wallet, clock.clone()).await?,
        );
        let tasks = Tasks::default();
        let (k, pool) = (keys.clone(), ledger.pool().clone());
        tasks.supervise("keys", move || Box::pin(k.clone().sync_forever(pool.clone())));
        let cooldown = Duration::from_millis(config.breaker_cooldown_ms);
        let health = Health::new(clock.clone(), config.breaker_threshold, cooldown);
        // Replicas share a Postgres ledger; a SQLite ledger belongs to one process.
        let rate = match ledger.backend() {
            crate::store::db::Backend::Postgres => RateLimiter::shared(clock, ledger.pool().clone()),
            crate::store::db::Backend::Sqlite => RateLimiter::local(clock),
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(config.slots()));
        Ok(Arc::new(Gateway {
            slots,
            config,
            meter,
            ledger,
            health,
            metrics: Metrics::new(),
            http,
            keys,
            rate,
            tasks,
            leaser: std::sync::OnceLock::new(),
        }))
    }

    /// Makes this gateway one of the replicas sharing its (Postgres) ledger, named
    /// `replica` in the lease tables: from now on it spends only under leases, which the
    /// returned leaser renews (run `jobs::leases::run` with it) and, when a lease alone
    /// refuses a request, renews at once.
    pub fn share(&self, replica: String, config: LeaseConfig) -> Arc<Leaser> {
        let leaser = Leaser::new(self.ledger.clone(), self.meter.clone(), replica, config);
        self.leaser.get_or_init(|| leaser).clone()
    }

    /// No model request is being served (every concurrency slot is free).
    pub fn idle(&self) -> bool {
        self.slots.available_permits() == self.config.slots()
    }

    /// The caller's key hash, the credit account it spends from and its limits.
    pub(super) fn caller(&self, headers: &HeaderMap) -> Result<(KeyHash, Caller), ApiError> {
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110).
            .and_then(|v| v.split_once(' '))
            .and_then(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer").then_some(key))
            .ok_or_else(ApiError::invalid_key)?;
        let hash = KeyHash::of(key.trim());
        let caller = self.keys.caller(&hash).ok_or_else(ApiError::invalid_key)?;
        Ok((hash, caller))
    }

    /// The caller, if its key may manage the account (its alerts): a key without limits.
    /// A limited key is what a startup hands to a service or a developer; it spends within
    /// its limits and manages nothing.
    pub(super) fn manager(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let (_, caller) = self.caller(headers)?;
        if caller.limits.credits_per_day.is_some() || caller.limits.requests_per_minute.is_some() {
            return Err(ApiError::forbidden(
                "limited_key",
                "This key has limits and cannot manage the account's alerts: use a key without limits \
                 (`compux keys create` with none).",
            ));
        }
        Ok(caller)
    }

    /// Holds `worst` for the caller: its requests-per-minute limit, its daily budget, and
    /// the first of its account's credit sources that can cover it.
    pub(super) async fn admit(
        self: &Arc<Self>,
        key_hash: &KeyHash,
        caller: &Caller,
        worst: u64,
    ) -> Result<Hold, ApiError> {
        if let Some(age) = self.meter.stale() {
            return Err(ApiError::balances_stale(age));
        }
        if let Some(n) = caller.limits.requests_per_minute {
            self.rate
                .admit(key_hash, n)
                .await
                .map_err(ApiError::internal)?
                .map_err(|wait| ApiError::rate_limited(n, wait.0.as_millis() as u64))?;
        }
        let budget = caller.limits.credits_per_day.map(|per_day| Budget {
            key: key_hash,
            per_day,
            day: self.meter.clock().today(),
        });
        match self.meter.hold(caller.account, worst, budget) {
            Err(refusal) => match self.leaser.get() {
                // Another replica's idle claim is no reason to refuse: ask for a fresh share.
                Some(leaser) if leaser.top_up(caller.account, worst, budget).await => {
                    self.meter.hold(caller.account, worst, budget).map_err(refused)
                }
                _ => Err(refused(refusal)),
            },
            hold => hold.map_err(refused),
        }
    }

    /// Providers serving `model`, with the caller's and the provider's own price at each for
    /// the current UTC hour.
    pub(super) fn candidates(&self, model: &str) -> Vec<(&Provider, Price, Price)> {
        let hour = (self.meter.clock().now_ms().div_euclid(3_600_000) % 24) as usize;
        self.config
            .providers
            .iter()
            .filter_map(|p| {
                let m = p.models.iter().find(|m| m.name == model)?;
                Some((p, m.price_at(hour), m.provider_price_at(hour)))
            })
            .collect()
    }
}

/// A header value from anything printable (`-` if it cannot be one).
pub(super) fn header(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A hold refused, as the caller sees it.
pub(super) fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Insufficient { available, needed } => ApiError::insufficient_credits(available, needed),
        Refused::BurnCeiling { available, needed } => ApiError::burn_ceiling(available, needed),
        Refused::Frozen { facility, needed, .. } => ApiError::credits_frozen(&facility, needed),
        Refused::DailyLimit { limit, used, needed } => ApiError::daily_limit(limit, used, needed),
        Refused::Unleased { .. } => ApiError::lease_unavailable(),
    }
}
