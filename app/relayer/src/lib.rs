//! The CompuX relayer: an OpenAI-compatible gateway that meters every request against
//! on-chain credits (a hard cap: never below zero), routes it to the cheapest provider
//! serving the model with failover, and charges only what was served.
//!
//! Status: chat completions (plain and SSE streaming), completions, embeddings, models,
//! usage, routing with caller preferences, failover and a circuit breaker, the hard cap,
//! the SQLite usage ledger, on-chain balance refresh and OpenAI-shaped errors.
//! Wallet-issued API keys (challenge, signature, hashed storage, revocation) and metrics.

pub mod access;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod providers;
pub mod sim;
pub mod store;

pub use config::Config;
pub use domain::meter::Meter;
pub use http::gateway::Gateway;
pub use http::routes::serve;
pub use store::ledger::Ledger;

use jobs::{alerts, balances, leases, settler, watch};
use store::{batches, db, journal};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A running relayer.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: Arc<tokio::sync::Notify>,
    server: tokio::task::JoinHandle<()>,
    /// This replica's name in the lease tables (a Postgres ledger).
    replica: Option<String>,
}

/// How a shutdown went.
#[derive(Debug)]
pub struct Stopped {
    /// Every request in flight finished before the deadline.
    pub drained: bool,
}

impl Running {
    /// Stops accepting requests, lets those in flight (streams included) finish within
    /// `deadline`, writes every served request's record into the ledger, and gives this
    /// replica's leases back so the others may use them at once.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<Stopped> {
        self.stop.notify_one();
        let started = tokio::time::Instant::now();
        let mut drained = tokio::time::timeout(deadline, self.server).await.is_ok();
        // Upstream work outlives a caller that hung up: wait for every request's slot too.
        while drained && !self.gateway.idle() {
            if started.elapsed() >= deadline {
                drained = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // No more renewals or burns from a replica that is leaving.
        self.gateway.tasks.stop();
        self.gateway.ledger.flush().await?;
        // Requests still in flight keep their claims until the rows expire.
        if let (Some(replica), true) = (&self.replica, drained) {
            store::leases::release(self.gateway.ledger.pool(), replica).await?;
        }
        Ok(Stopped { drained })
    }
}

/// Starts the relayer described by the configuration file at `path`: opens its ledger,
/// reads on-chain balances (and keeps refreshing them), and serves the API.
pub async fn start(path: &Path) -> anyhow::Result<Running> {
    let config = Config::load(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let ledger = open_ledger(dir, &config).await?;
    let meter = Meter::new();
    restore(&ledger, &meter).await?;
    let (rpc_url, every) = (config.rpc_url.clone(), Duration::from_secs(config.balance_refresh_secs.max(1)));
    let (config_copy, ledger_copy, meter_copy) = (config.clone(), ledger.clone(), meter.clone());
    let gateway = Gateway::new(config, meter.clone(), ledger).await?;
    let tasks = &gateway.tasks;
    let accounts: balances::Accounts = {
        let g = Arc::downgrade(&gateway);
        Arc::new(move || g.upgrade().map(|g| g.keys.accounts()).unwrap_or_default())
    };
    let mut replica_name = None;
    if ledger_copy.backend() == db::Backend::Postgres {
        // Replicas may share this ledger: spend only under balance and budget leases.
        let replica = format!("{}-{}", config_copy.listen, uuid::Uuid::new_v4().simple());
        replica_name = Some(replica.clone());
        let budgets: leases::Budgets = {
            let g = Arc::downgrade(&gateway);
            Arc::new(move || g.upgrade().map(|g| g.keys.budgets()).unwrap_or_default())
        };
        let mut c = config_copy.leases.clone();
        c.in_flight_ms = config_copy.longest_request_ms();
        let leaser = gateway.share(replica, c);
        let a = accounts.clone();
        tasks.supervise("leases", move || Box::pin(leases::run(leaser.clone(), a.clone(), budgets.clone())));
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let ws_url = config_copy.ws_url.clone().unwrap_or_else(|| watch::pubsub_url(&rpc_url));
    let (m, w) = (meter.clone(), wake.clone());
    tasks.supervise("watch", move || Box::pin(watch::run(ws_url.clone(), m.clone(), w.clone())));
    let max_age = Duration::from_secs(config_copy.max_balance_age_secs.max(1));
    balances::first_refresh(&rpc_url, &meter, &accounts, max_age).await;
    let m = meter.clone();
    tasks.supervise("balances", move || {
        Box::pin(balances::run(rpc_url.clone(), m.clone(), accounts.clone(), every, wake.clone()))
    });
    let stop = Arc::new(tokio::sync::Notify::new());
    let signal = stop.clone();
    let (addr, server) =
        http::routes::serve_until(gateway.clone(), async move { signal.notified().await }).await?;
    let (l, m, c) = (ledger_copy.clone(), meter_copy.clone(), config_copy.alerts.clone());
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tasks
        .supervise("alerts", move || Box::pin(alerts::run(l.clone(), m.clone(), c.clone(), leading.clone())));
    let (l, m) = (ledger_copy.clone(), meter_copy.clone());
    tasks.supervise("batches", move || Box::pin(follow_batches(l.clone(), m.clone())));
    if let Some(settler) = settler(path, &config_copy, ledger_copy, meter_copy).await? {
        let settler = Arc::new(settler);
        tasks.supervise("settler", move || Box::pin(settler.clone().run()));
    }
    Ok(Running { addr, gateway, stop, server, replica: replica_name })
}

/// The configured ledger: SQLite next to the configuration, or Postgres.
pub async fn open_ledger(dir: &Path, config: &Config) -> anyhow::Result<Ledger> {
    let target = config.ledger.display().to_string();
    match db::Backend::of(&target) {
        db::Backend::Postgres => {
            Ledger::open_with(&target, &dir.join(&config.journal), journal::SEGMENT_BYTES).await
        }
        db::Backend::Sqlite => Ledger::open(&dir.join(&config.ledger)).await,
    }
}

/// Learns the settlement batches cut by a settler in another process (`compux settler`), so
/// that the balance snapshot that shows a burn also drops its batch from the unsettled
/// charges. Idempotent with the batches the in-process settler registers.
async fn follow_batches(ledger: Ledger, meter: Arc<Meter>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match batches::unconfirmed_for_meter(ledger.pool()).await {
            Ok(list) => {
                list.into_iter().for_each(|(source, seq, amount)| meter.add_batch(source, seq, amount))
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read settlement batches"),
        }
    }
}

/// The settler a configuration asks for, if any.
pub async fn settler(
    path: &Path,
    config: &Config,
    ledger: Ledger,
    meter: Arc<Meter>,
) -> anyhow::Result<Option<settler::Settler>> {
    let (Some(s), Some(market)) = (&config.settler, config.market) else { return Ok(None) };
    // Announced credits (and a lower burn ceiling) wait the market's notice; the usage
    // admitted before the relayer saw the announcement must burn within it.
    let (_, m) = compux_client::fetch::market(&jobs::balances::client(&config.rpc_url), &market).await?;
    let lag = config.settlement_lag_ms();
    anyhow::ensure!(
        u64::try_from(m.transfer_notice_secs).unwrap_or(0).saturating_mul(1_000) > lag,
        "the market's transfer notice ({} s) is not longer than this relayer's settlement lag ({} s: the longest \
         request, a balance read and the settler's flush): usage in flight could outlive a notice and never burn. \
         Lower total_timeout_ms or [settler] flush_secs",
        m.transfer_notice_secs,
        lag / 1_000
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    let keypair_path = dir.join(&s.keypair);
    let payer = solana_sdk::signature::read_keypair_file(&keypair_path)
        .map_err(|e| anyhow::anyhow!("cannot read the settler keypair {}: {e}", keypair_path.display()))?;
    let accounts = config.keys.iter().map(|k| k.account).collect();
    Ok(Some(
        settler::Settler::new(
            ledger,
            meter,
            settler::Burns { chain: Arc::new(jobs::chain::Rpc::new(&config.rpc_url)), market, payer },
            s.clone(),
            accounts,
        )
        .await?,
    ))
}

/// Runs only the settler of the configuration at `path` (`compux settler`), against the
/// ledger a relayer writes, until the returned tasks are stopped or dropped.
pub async fn start_settler(path: &Path) -> anyhow::Result<jobs::tasks::Tasks> {
    let config = Config::load(path)?;
    anyhow::ensure!(config.settler.is_some(), "{} has no [settler] section", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let ledger = open_ledger(dir, &config).await?;
    let meter = Meter::new();
    let settler = Arc::new(settler(path, &config, ledger, meter).await?.expect("checked above"));
    let tasks = jobs::tasks::Tasks::default();
    tasks.supervise("settler", move || Box::pin(settler.clone().run()));
    Ok(tasks)
}

/// Puts back what the ledger knows and memory forgot: charges not yet settled on chain
/// (they still count against each source), and what each key spent today (its budget).
pub async fn restore(ledger: &Ledger, meter: &Meter) -> anyhow::Result<()> {
    for (source, amount) in ledger.unsettled_by_source().await? {
        meter.add_unsettled(source, amount);
    }
    // Batches cut but not yet seen burned still count, until a balance snapshot shows them.
    for (source, seq, amount) in batches::unconfirmed_for_meter(ledger.pool()).await? {
        meter.add_unsettled(source, amount);
        meter.add_batch(source, seq, amount);
    }
    let today = meter.clock().today();
    for (key, amount) in ledger.spent_by_key_since(today * 86_400_000).await? {
        meter.add_spent(&key, today, amount);
    }
    Ok(())
}
