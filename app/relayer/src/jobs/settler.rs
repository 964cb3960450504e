//! The settler: turns metered usage into on-chain burns, exactly once. For each credit
//! source with unbatched records it cuts a batch (at least `min_records`, or whatever
//! waited `flush_secs`), stores it with its `seq` and Merkle root before sending, sends
//! `settle` (vault) or `settle_facility` (escrow), and marks it settled once confirmed.
//!
//! Exactly once, whatever crashed where: before sending and after any failure the settler
//! reads the source's on-chain `settled_seq`; a batch at or below it landed already and is
//! marked settled, never resent; one above it is sent again with the same `seq` (the
//! program refuses any other). A frozen facility's records metered after `frozen_at`, and
//! all of its unsettled records once its settlement window has closed, move to the
//! borrower's credit vault, so nothing metered is lost to the race with a freeze.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::jobs::chain::{self, Chain};
use crate::store::db::Pool;
use anyhow::{Context, Result};
use compux_client::{fetch, Sender};
use compux_sdk::ix::SettleBatch;
use compux_sdk::state::{CreditAccount, Facility, FacilityStatus};
use compux_sdk::{CreditAccountKeys, FacilityKeys, MarketKeys};
use serde::{Deserialize, Serialize};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;

use crate::domain::ids::Source;
use crate::domain::meter::Meter;
use crate::store::batches::{self, Batch, Cut};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlerConfig {
    /// The market's relayer keypair (Solana CLI JSON), relative to the configuration file.
    pub keypair: PathBuf,
    /// A source's batch is cut once it has this many unbatched records...
    #[serde(default = "default_min_records")]
    pub min_records: usize,
    /// ...or once its oldest has waited this long.
    #[serde(default = "default_flush_secs")]
    pub flush_secs: u64,
    /// The most records in one batch.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// Time between rounds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Send the permissionless `auto_refill` for credit accounts below their on-chain
    /// threshold (checked every `refill_every_secs`).
    #[serde(default = "default_true")]
    pub auto_refill: bool,
    #[serde(default = "default_refill_every_secs")]
    pub refill_every_secs: u64,
}

impl SettlerConfig {
    /// Burns signed by the keypair at `keypair`, every other setting at its default.
    pub fn new(keypair: PathBuf) -> SettlerConfig {
        SettlerConfig {
            keypair,
            min_records: default_min_records(),
            flush_secs: default_flush_secs(),
            max_records: default_max_records(),
            interval_ms: default_interval_ms(),
            auto_refill: true,
            refill_every_secs: default_refill_every_secs(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_refill_every_secs() -> u64 {
    5
}

fn default_min_records() -> usize {
    1_000
}
fn default_flush_secs() -> u64 {
    10
}
fn default_max_records() -> usize {
    20_000
}
fn default_interval_ms() -> u64 {
    500
}

/// What a source is on chain, as far as settling goes.
enum OnChain {
    Account {
        keys: CreditAccountKeys,
        settled_seq: u64,
        last_window_end: i64,
        usage_chain: [u8; 32],
    },
    Facility {
        keys: FacilityKeys,
        facility: Box<Facility>,
    },
    /// A facility closed (its account gone, or its status Closed): nothing more can burn from it.
    Closed,
}

impl OnChain {
    fn settled_seq(&self) -> u64 {
        match self {
            OnChain::Account { settled_seq, .. } => *settled_seq,
            OnChain::Facility { facility, .. } => facility.settlement.settled_seq,
            OnChain::Closed => 0,
        }
    }

    fn usage_chain(&self) -> Option<[u8; 32]> {
        match self {
            OnChain::Account { usage_chain, .. } => Some(*usage_chain),
            OnChain::Facility { facility, .. } => Some(facility.settlement.usage_chain),
            OnChain::Closed => None,
        }
    }

    fn last_window_end(&self) -> i64 {
        match self {
            OnChain::Account { last_window_end, .. } => *last_window_end,
            OnChain::Facility { facility, .. } => facility.settlement.last_window_end,
            OnChain::Closed => 0,
        }
    }
}

/// Where the settler burns: a chain, the market on it, and the market's relayer key, which
/// signs and pays for the burns.
pub struct Burns {
    pub chain: Arc<dyn Chain>,
    pub market: Pubkey,
    pub payer: Keypair,
}

pub struct Settler {
    pool: Pool,
    ledger: crate::store::ledger::Ledger,
    meter: Arc<Meter>,
    chain: Arc<dyn Chain>,
    payer: Keypair,
    market: MarketKeys,
    config: SettlerConfig,
    /// Credit accounts of the configuration's keys (others come from the ledger).
    accounts: Vec<Pubkey>,
    /// When the last auto-refill check ran, and each account's last refill attempt.
    refills: std::sync::Mutex<(Option<Instant>, std::collections::HashMap<Pubkey, Instant>)>,
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub cut: usize,
    pub settled: usize,
    pub moved_credits: u64,
    pub refilled: usize,
}

impl Settler {
    /// A settler burning as `to` says, on the meter's clock. `accounts`: the credit
    /// accounts of the configuration's keys.
    pub async fn new(
        ledger: crate::store::ledger::Ledger,
        meter: Arc<Meter>,
        to: Burns,
        config: SettlerConfig,
        accounts: Vec<Pubkey>,
    ) -> Result<Settler> {
        let Burns { chain, market, payer } = to;
        let market = chain::market(chain.as_ref(), &market).await?;
        Ok(Settler {
            pool: ledger.pool().clone(),
            ledger,
            meter,
            chain,
            payer,
            market,
            config,
            accounts,
            refills: Default::default(),
        })
    }

    /// Runs rounds forever while this replica leads (one settler at a time on a shared
    /// Postgres ledger; see `leader.rs`); a failed round is logged and retried.
    pub async fn run(self: Arc<Self>) {
        let mut leader: Option<crate::store::leader::Leader> = None;
        loop {
            if let Some(l) = leader.as_mut() {
                if !l.alive().await {
                    tracing::warn!("settler leadership lost");
                    leader = None;
                }
            }
            if leader.is_none() {
                match crate::store::leader::try_lead(
                    &self.pool,
                    self.ledger.backend(),
                    crate::store::leader::Job::Settler,
                )
                .await
                {
                    Ok(Some(l)) => {
                        tracing::info!("this replica now leads settlement");
                        leader = Some(l);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot contend for settlement"),
                }
            }
            if leader.is_none() {
                tokio::time::sleep(Duration::from_millis(self.config.interval_ms.max(100) * 4)).await;
                continue;
            }
            match self.round().await {
                Ok(r) if r != Round::default() => tracing::info!(
                    cut = r.cut,
                    settled = r.settled,
                    moved_credits = r.moved_credits,
                    refilled = r.refilled,
                    "settlement round"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "settlement round failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(self.config.interval_ms)).await;
        }
    }

    async fn on_chain(&self, source: Source) -> Result<OnChain> {
        Ok(match source {
            Source::Vault(address) => {
                let ca: CreditAccount = chain::state(self.chain.as_ref(), &address)
                    .await?
                    .with_context(|| format!("credit account {source} not found"))?;
                OnChain::Account {
                    keys: CreditAccountKeys::derive(&self.market.market, &ca.owner),
                    settled_seq: ca.settlement.settled_seq,
                    last_window_end: ca.settlement.last_window_end,
                    usage_chain: ca.settlement.usage_chain,
                }
            }
            // A closed facility may stay on chain until its lender withdraws the vault.
            Source::Facility(address) => match chain::state::<Facility>(self.chain.as_ref(), &address).await?
            {
                Some(f) if f.status != FacilityStatus::Closed => OnChain::Facility {
                    keys: FacilityKeys::derive(&f.market, &f.lender, f.nonce),
                    facility: Box::new(f),
                },
                _ => OnChain::Closed,
            },
        })
    }

    /// Cuts what is due, then sends every pending batch in `seq` order.
    pub async fn round(&self) -> Result<Round> {
        self.ledger.flush().await?;
        let mut round = Round::default();
        let now_ms = self.clock().now_ms();
        for u in batches::unbatched(&self.pool).await? {
            let due = u.records as usize >= self.config.min_records
                || now_ms - u.oldest_ms >= (self.config.flush_secs * 1_000) as i64;
            // One source's trouble (an RPC error, a closed facility) never stalls the others.
            if due {
                if let Err(e) = self.cut_due(&u, &mut round).await {
                    tracing::warn!(source = %u.source, error = %format!("{e:#}"), "batch not cut yet");
                }
            }
        }
        let mut blocked: Option<Source> = None;
        for batch in batches::pending(&self.pool).await? {
            // A source's batches go in seq order: after one fails, its later ones wait.
            if blocked == Some(batch.source) {
                continue;
            }
            match self.burn(&batch).await {
                Ok(true) => {
                    round.settled += 1;
                    self.meter.settlement_landed(batch.source);
                }
                Ok(false) => blocked = Some(batch.source),
                Err(e) => {
                    let error = format!("{e:#}");
                    let t = self.meter.settlement_failed(batch.source, batch.seq, error.clone());
                    if t.attempts == crate::domain::meter::STUCK_AFTER {
                        // Once, when it becomes an incident: the charged credits are not
                        // burned, and the marketplace carries them until someone acts.
                        tracing::error!(source = %batch.source, seq = batch.seq, attempts = t.attempts, error,
                            credits = batch.amount,
                            "a settlement batch cannot land: its credits are charged and not burned (see /health/ready)");
                    } else {
                        tracing::warn!(source = %batch.source, seq = batch.seq, attempts = t.attempts, error, "batch not settled yet");
                    }
                    blocked = Some(batch.source);
                }
            }
        }
        if self.config.auto_refill {
            round.refilled = self.refill().await?;
        }
        Ok(round)
    }

    /// Sends `auto_refill` for every credit account (of a key, or with usage) whose vault
    /// is below its configured threshold, at most once a minute per account: the program
    /// checks the threshold, the delegation and the cap, so a refused attempt costs a fee.
    async fn refill(&self) -> Result<usize> {
        let every = Duration::from_secs(self.config.refill_every_secs.max(1));
        {
            let mut r = self.refills.lock().unwrap_or_else(|e| e.into_inner());
            if r.0.is_some_and(|t| self.clock().instant() < t + every) {
                return Ok(0);
            }
            r.0 = Some(self.clock().instant());
        }
        let mut keys = crate::store::keys::spending_accounts(&self.pool).await?;
        keys.extend(self.accounts.iter().copied());
        keys.sort();
        keys.dedup();
        let vaults = keys.iter().map(|k| compux_sdk::pda::credit_vault(k).0);
        let wanted: Vec<Pubkey> = keys.iter().copied().chain(vaults).collect();
        let fetched = self.chain.accounts(&wanted).await?;
        let (states, vaults) = fetched.split_at(keys.len());
        let mut sent = 0;
        for ((address, state), vault) in keys.iter().zip(states).zip(vaults) {
            let Some(ca) =
                state.as_ref().and_then(|a| compux_sdk::decode::account::<CreditAccount>(&a.data).ok())
            else {
                continue;
            };
            let balance = vault.as_ref().and_then(|v| fetch::token_amount_of(&v.data)).unwrap_or(0);
            let r = ca.auto_refill;
            if ca.market != self.market.market
                || !r.enabled()
                || balance >= r.threshold
                || r.spent_quote >= r.cap_quote
            {
                continue;
            }
            {
                let mut refills = self.refills.lock().unwrap_or_else(|e| e.into_inner());
                if refills
                    .1
                    .get(address)
                    .is_some_and(|t| self.clock().instant() < *t + Duration::from_secs(60))
                {
                    continue;
                }
                refills.1.insert(*address, self.clock().instant());
            }
            let ix = compux_sdk::ix::auto_refill(&self.market, &ca.owner, &r.source);
            let what = format!("auto-refill {address}");
            match self.send(&what, &[ix]).await {
                Ok(sig) => {
                    tracing::info!(account = %address, %sig, credits = r.refill_credits, "auto-refill sent");
                    sent += 1;
                }
                Err(e) => {
                    tracing::warn!(account = %address, error = %format!("{e:#}"), "auto-refill refused")
                }
            }
        }
        Ok(sent)
    }

    /// Cuts the next batch of a source whose records are due.
    async fn cut_due(&self, u: &batches::Unbatched, round: &mut Round) -> Result<()> {
        let chain = self.on_chain(u.source).await?;
        let mut until_ms = None;
        match &chain {
            OnChain::Facility { facility, .. } => {
                let now = chain::unix_timestamp(self.chain.as_ref()).await?;
                round.moved_credits += self.move_late_usage(u.source, u.account, facility, now).await?;
                until_ms =
                    facility.settles_until(now)?.filter(|t| *t < i64::MAX).map(|t| t.saturating_mul(1_000));
            }
            OnChain::Closed => {
                round.moved_credits += self.move_all(u.source, u.account).await?;
                return Ok(());
            }
            OnChain::Account { .. } => {}
        }
        let last = batches::last(&self.pool, u.source).await?;
        // The chain value the new batch extends: the last stored batch's, while that one is
        // not on chain yet; the chain's own otherwise.
        let prev_chain = match &last {
            Some(b) if b.seq > chain.settled_seq() => b.usage_chain,
            _ => chain.usage_chain(),
        };
        let seq = last.as_ref().map_or(chain.settled_seq(), |b| b.seq.max(chain.settled_seq())) + 1;
        let min_window_end = last.map_or(0, |b| b.window_end).max(chain.last_window_end());
        let max_records = self.config.max_records;
        let cut = Cut {
            source: u.source,
            account: u.account,
            seq,
            min_window_end,
            max_records,
            prev_chain,
            until_ms,
        };
        if let Some(b) = batches::cut(&self.pool, cut).await? {
            self.meter.add_batch(b.source, b.seq, b.amount);
            round.cut += 1;
        }
        Ok(())
    }

    /// A closed facility burns nothing more: its unbatched records and the batches that
    /// never landed are the borrower's vault's. (A batch that landed but was not yet marked
    /// when the facility closed would be charged twice; batches are marked as they land and
    /// a facility closes only after repayment, so this is logged, not expected.)
    async fn move_all(&self, facility: Source, account: Pubkey) -> Result<u64> {
        let pending = batches::pending(&self.pool).await?;
        let first_pending = pending.iter().find(|b| b.source == facility).map_or(u64::MAX, |b| b.seq);
        self.move_to_vault(facility, account, None, Some(first_pending), "usage of a closed facility").await
    }

    /// A frozen or matured facility settles only what was metered before the freeze or
    /// maturity, and only until the settlement window after it closes
    /// (`Facility::settles_until`); the rest is the borrower's to pay from the vault.
    async fn move_late_usage(
        &self,
        facility: Source,
        account: Pubkey,
        f: &Facility,
        now: i64,
    ) -> Result<u64> {
        let (after_ms, from_seq) = match f.settles_until(now)? {
            Some(i64::MAX) => return Ok(0),
            Some(until) => (Some(until.saturating_mul(1_000)), None),
            None => (None, Some(f.settlement.settled_seq + 1)),
        };
        self.move_to_vault(
            facility,
            account,
            after_ms,
            from_seq,
            "late usage of a frozen or matured facility",
        )
        .await
    }

    /// Moves a facility's records (unbatched after `after_ms`, and its batches from
    /// `from_seq` on) to the borrower's vault, in the ledger and in the hard cap alike.
    async fn move_to_vault(
        &self,
        facility: Source,
        account: Pubkey,
        after_ms: Option<i64>,
        from_seq: Option<u64>,
        what: &str,
    ) -> Result<u64> {
        let vault = Source::Vault(account);
        let moved = batches::move_records(&self.pool, facility, vault, after_ms, from_seq).await?;
        if moved > 0 {
            self.meter.move_unsettled(facility, vault, moved, from_seq);
            tracing::warn!(%facility, %account, credits = moved, "{what} moved to the borrower's vault");
        }
        Ok(moved)
    }

    /// When the chain's last batch is this one, its `usage_chain` must be the one computed
    /// when the batch was cut: otherwise the burn on chain is not this batch (its records
    /// were not burned), which only a misused relayer key or a lost ledger explains.
    fn check_chain(&self, b: &Batch, chain: &OnChain) {
        if chain.settled_seq() == b.seq && b.usage_chain.is_some() && b.usage_chain != chain.usage_chain() {
            tracing::error!(
                source = %b.source,
                seq = b.seq,
                "the batch on chain with this seq is not the ledger's: its usage_chain differs; investigate the relayer key"
            );
        }
    }

    fn clock(&self) -> &crate::clock::Clock {
        self.meter.clock()
    }

    /// A transaction of `ixs` paid and signed by the relayer key.
    async fn sign(
        &self,
        ixs: &[solana_sdk::instruction::Instruction],
    ) -> Result<solana_sdk::transaction::Transaction> {
        let blockhash = self.chain.latest_blockhash().await?;
        Ok(compux_client::send::sign_with(blockhash, Sender::SILENT, &self.payer, ixs, &[]))
    }

    async fn send(
        &self,
        what: &str,
        ixs: &[solana_sdk::instruction::Instruction],
    ) -> Result<solana_sdk::signature::Signature> {
        let tx = self.sign(ixs).await?;
        self.chain.submit(what, &tx).await
    }

    /// Brings one batch on chain; true once it is there.
    async fn burn(&self, b: &Batch) -> Result<bool> {
        let chain = self.on_chain(b.source).await?;
        if let OnChain::Closed = chain {
            self.move_all(b.source, b.account).await?;
            return Ok(false);
        }
        if chain.settled_seq() >= b.seq {
            // It landed before (the process died before marking it, or the confirmation
            // was lost): never send it again.
            self.check_chain(b, &chain);
            batches::mark_settled(&self.pool, b.source, b.seq, None).await?;
            return Ok(true);
        }
        if chain.settled_seq() + 1 != b.seq {
            anyhow::bail!("batch {} of {} waits for seq {}", b.seq, b.source, chain.settled_seq() + 1);
        }
        let batch =
            SettleBatch { seq: b.seq, amount: b.amount, batch_root: b.batch_root, window_end: b.window_end };
        let ix = match &chain {
            OnChain::Account { keys, .. } => {
                compux_sdk::ix::settle(&self.market, &self.payer.pubkey(), keys, batch)
            }
            OnChain::Facility { keys, .. } => {
                compux_sdk::ix::settle_facility(&self.market, &self.payer.pubkey(), keys, batch)
            }
            OnChain::Closed => anyhow::bail!("facility {} is closed", b.source),
        };
        let what = format!("settle {} #{}", b.source, b.seq);
        // The signature is stored before sending, so the batch can be found on chain
        // whatever happens next.
        let tx = self.sign(&[ix]).await?;
        batches::mark_sent(&self.pool, b.source, b.seq, &tx.signatures[0].to_string()).await?;
        match self.chain.submit(&what, &tx).await {
            Ok(sig) => {
                batches::mark_settled(&self.pool, b.source, b.seq, Some(&sig.to_string())).await?;
                Ok(true)
            }
            Err(e) => {
                // Landed despite the error (a lost confirmation)? The chain decides.
                if self.on_chain(b.source).await?.settled_seq() >= b.seq {
                    batches::mark_settled(&self.pool, b.source, b.seq, None).await?;
                    return Ok(true);
                }
                Err(e)
            }
        }
    }
}
