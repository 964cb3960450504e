//! The hard cap across relayer replicas that share a Postgres ledger. Each replica leases a
//! slice of every credit source's available balance, and of every key's daily credit
//! budget, in the background and spends on its hot path only from its own leases (in
//! memory, as before), so replicas together never spend more than the balance or the
//! budget.
//!
//! A grant, for one source, in one transaction under a row lock on the source
//! (`domain::lease` has the rule): the replica's claim, recorded in its lease row, is what
//! it has in flight (held, and charged since its journal was flushed) plus what it may
//! still hold; it gets what is left of `on-chain - the ledger's unsettled charges - the
//! other replicas' claims`, at most an equal share. Before asking it flushes its journal,
//! so its own charges are in the ledger; another replica's charges since its last renewal
//! count twice (ledger and claim) until it renews: conservative, never an overdraft.
//!
//! Fencing by time, on the database's clock: a row stands for `ttl_ms` plus the longest a
//! request may run (`Config::longest_request_ms`); the replica stops admitting a margin
//! before `ttl_ms` has passed since it asked, by its own monotonic clock (which started
//! earlier than the database's grant). So a replica cut off from the database stops
//! admitting, and the requests it admitted finish, before another replica may be granted
//! its claim. A replica that crashes leaves its claim standing for that long (at most
//! `ttl_ms` + the longest request, 10 minutes by default); one that stops cleanly gives it
//! back at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{KeyHash, Pubkey, Source};
use crate::domain::lease::Want;
use crate::domain::meter::{Budget, Meter};
use crate::store::leases::{self, Leased, Term};
use crate::store::ledger::Ledger;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// How long a grant lasts for the other replicas.
    #[serde(default = "default_ttl_ms")]
    pub ttl_ms: u64,
    /// How often a replica renews its leases.
    #[serde(default = "default_every_ms")]
    pub every_ms: u64,
    /// A replica that has held nothing from a pool for this long stops claiming a share of
    /// it, so the replicas that serve may spend it; its next request there asks at once.
    #[serde(default = "default_idle_after_ms")]
    pub idle_after_ms: u64,
    /// The longest a request admitted under a lease may still run and charge after the
    /// replica stops admitting: set from the upstream deadlines at start
    /// (`Config::longest_request_ms`), not configured.
    #[serde(skip)]
    pub in_flight_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl_ms: default_ttl_ms(),
            every_ms: default_every_ms(),
            idle_after_ms: default_idle_after_ms(),
            in_flight_ms: 0,
        }
    }
}

fn default_ttl_ms() -> u64 {
    10_000
}
fn default_every_ms() -> u64 {
    500
}
fn default_idle_after_ms() -> u64 {
    10_000
}

/// A row stands for the lease's life plus the longest a request it admitted may run.
fn term(config: &LeaseConfig, meter: &Meter) -> Term {
    let for_ms = config.ttl_ms.saturating_add(config.in_flight_ms);
    Term { ahead_ms: meter.clock().ahead_ms(), for_ms: i64::try_from(for_ms).unwrap_or(i64::MAX) }
}

/// A replica stops admitting under a lease a margin before `ttl_ms` has passed since it
/// `asked` for it (before the database granted it, so never later than the grant's own
/// time plus that).
fn fence(config: &LeaseConfig, asked: Instant) -> Instant {
    asked + Duration::from_millis(config.ttl_ms.saturating_sub(config.ttl_ms / 5 + config.every_ms))
}

/// Keys with a daily credit budget: (key hash, credits per day).
pub type Budgets = Arc<dyn Fn() -> Vec<(KeyHash, u64)> + Send + Sync>;

/// This replica's lease renewals, one at a time per pool: the background loop renews every
/// pool every `every_ms`, and a request that only its lease refused (`Meter::short_leases`)
/// renews that pool at once rather than failing while the others hold little. One at a
/// time per pool because a grant's exposure is read before the meter takes the new lease:
/// two renewals of one pool racing could leave the meter spending from the grant the
/// ledger no longer records. Per pool, so one account's requests never hold up another's
/// renewals.
pub struct Leaser {
    ledger: Ledger,
    meter: Arc<Meter>,
    replica: String,
    config: LeaseConfig,
    turns: std::sync::Mutex<HashMap<Pool, Arc<tokio::sync::Mutex<()>>>>,
    /// Per pool, the meter's count of credits ever held from it at the last renewal, and
    /// when that count last moved: how the loop tells an idle pool (`Want::Nothing`).
    activity: std::sync::Mutex<HashMap<Pool, (u64, Instant)>>,
}

/// A pool a replica leases.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pool {
    Balance(Source),
    Budget(KeyHash),
}

impl Leaser {
    /// The meter spends only under leases from now on.
    pub fn new(ledger: Ledger, meter: Arc<Meter>, replica: String, config: LeaseConfig) -> Arc<Leaser> {
        meter.require_leases();
        Arc::new(Leaser {
            ledger,
            meter,
            replica,
            config,
            turns: Default::default(),
            activity: Default::default(),
        })
    }

    /// `Share` while the pool was held from within `idle_after_ms`, `Nothing` after.
    fn want(&self, pool: Pool, held_ever: u64) -> Want {
        let now = self.meter.clock().instant();
        let mut activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let (mark, since) = activity.entry(pool).or_insert((held_ever, now));
        if *mark != held_ever {
            (*mark, *since) = (held_ever, now);
        }
        if now.duration_since(*since) >= Duration::from_millis(self.config.idle_after_ms) {
            Want::Nothing
        } else {
            Want::Share
        }
    }

    /// Waits for `pool`'s turn: no other renewal of it runs until the guard drops.
    async fn turn(&self, pool: Pool) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            turns.entry(pool).or_default().clone()
        };
        lock.lock_owned().await
    }

    async fn renew(&self, source: Source) -> Result<u64> {
        let want = self.want(Pool::Balance(source), self.meter.exposure(source, 0).reserved_mark);
        let _turn = self.turn(Pool::Balance(source)).await;
        self.grant(source, want).await
    }

    async fn renew_budget(&self, key: &KeyHash, per_day: u64, day: i64) -> Result<u64> {
        let held_ever = self.meter.budget_exposure(key, day, 0).reserved_mark;
        let want = self.want(Pool::Budget(key.clone()), held_ever);
        let _turn = self.turn(Pool::Budget(key.clone())).await;
        self.grant_budget(Budget { key, per_day, day }, want).await
    }

    /// This replica's lease on `source`, asking for `want`; returns what it may spend.
    /// The caller holds the pool's turn.
    async fn grant(&self, source: Source, want: Want) -> Result<u64> {
        let (meter, config) = (&*self.meter, &self.config);
        let asked = meter.clock().instant();
        let charged_before = meter.charged_total(source);
        self.ledger.flush().await?;
        let (onchain, settled_seq) = meter.snapshot(source);
        let what = Leased::Balance { source, onchain, settled_seq };
        let exposure = || meter.exposure(source, charged_before);
        let term = term(config, meter);
        let grant = leases::grant(self.ledger.pool(), &what, &self.replica, term, want, exposure).await?;
        meter.set_lease(source, &grant, fence(config, asked));
        Ok(grant.spend)
    }

    /// This replica's lease on a key's daily budget: the same rule as balances, the pool
    /// being the budget less what every replica charged the key that day (the ledger).
    /// The caller holds the pool's turn.
    async fn grant_budget(&self, b: Budget<'_>, want: Want) -> Result<u64> {
        let (meter, config) = (&*self.meter, &self.config);
        let asked = meter.clock().instant();
        let spent_before = meter.spent_on(b.key, b.day);
        self.ledger.flush().await?;
        let civil_day = crate::store::db::day_of(b.day * 86_400_000);
        let what = Leased::Budget { key: b.key, per_day: b.per_day, day: &civil_day };
        let exposure = || meter.budget_exposure(b.key, b.day, spent_before);
        let term = term(config, meter);
        let grant = leases::grant(self.ledger.pool(), &what, &self.replica, term, want, exposure).await?;
        meter.set_budget_lease(b.key, b.day, &grant, fence(config, asked));
        Ok(grant.spend)
    }

    /// Renews the leases that alone refuse a hold of `amount` for `account` (with
    /// `budget`), asking for room for it; true if the hold may now pass and is worth trying
    /// again. A request that waited for another's renewal checks again before asking the
    /// database itself.
    pub async fn top_up(&self, account: Pubkey, amount: u64, budget: Option<Budget<'_>>) -> bool {
        let (sources, budget_short) = self.meter.short_leases(account, amount, budget);
        if sources.is_empty() && !budget_short {
            return false;
        }
        let want = Want::AtLeast(amount);
        let mut renewed = Ok(());
        if let (true, Some(b)) = (budget_short, budget) {
            let _turn = self.turn(Pool::Budget(b.key.clone())).await;
            if self.meter.short_leases(account, amount, budget).1 {
                renewed = self.grant_budget(b, want).await.map(drop);
            }
        }
        // The first source whose new lease covers the request is the one the hold takes.
        for source in sources {
            if renewed.is_err() {
                break;
            }
            let _turn = self.turn(Pool::Balance(source)).await;
            if !self.meter.short_leases(account, amount, budget).0.contains(&source) {
                break; // another request's renewal covered it meanwhile
            }
            match self.grant(source, want).await {
                Ok(spend) if spend >= amount => break,
                r => renewed = r.map(drop),
            }
        }
        if let Err(e) = renewed {
            tracing::warn!(error = %format!("{e:#}"), "lease not renewed for a request");
            return false;
        }
        true
    }
}

/// Renews every source of `accounts()` and every key budget of `budgets()` every
/// `every_ms`, forever.
pub async fn run(leaser: Arc<Leaser>, accounts: crate::jobs::balances::Accounts, budgets: Budgets) {
    loop {
        for account in accounts() {
            // A source with nothing on chain has nothing to lease (and keys for empty
            // accounts cost no database work).
            let meter = &leaser.meter;
            for source in meter.sources(account).into_iter().filter(|s| meter.snapshot(*s).0 > 0) {
                if let Err(e) = leaser.renew(source).await {
                    tracing::warn!(%source, error = %format!("{e:#}"), "balance lease not renewed");
                }
            }
        }
        let day = leaser.meter.clock().today();
        for (key, per_day) in budgets() {
            if let Err(e) = leaser.renew_budget(&key, per_day, day).await {
                tracing::warn!(error = %format!("{e:#}"), "daily budget lease not renewed");
            }
        }
        tokio::time::sleep(Duration::from_millis(leaser.config.every_ms)).await;
    }
}
