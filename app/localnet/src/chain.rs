//! The chain behind the RPC: a bank running `compux` (its SBF ELF in the metered VM, or
//! natively) with the real SPL programs, plus what a validator keeps that the bank does not
//! expose: an account index (for getProgramAccounts), transaction statuses and logs, and a
//! feed of committed transactions for PubSub.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use compux_native::Bank;
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::hash::Hash;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError, VersionedTransaction};
use solana_system_interface::instruction as system_instruction;
use tokio::sync::{broadcast, Mutex};

use crate::ledger::Ledger;

/// A transaction the chain has executed, successfully or not.
#[derive(Clone, Debug)]
pub struct TxRecord {
    pub signature: Signature,
    pub slot: u64,
    pub block_time: i64,
    pub tx: VersionedTransaction,
    pub err: Option<TransactionError>,
    pub logs: Vec<String>,
    pub units_consumed: u64,
    pub fee: u64,
    pub pre_balances: Vec<u64>,
    pub post_balances: Vec<u64>,
}

/// What PubSub subscribers hear about.
#[derive(Clone, Debug)]
pub enum ChainEvent {
    Committed { record: Arc<TxRecord>, changed: Arc<Vec<(Pubkey, Option<Account>)>> },
    Slot { slot: u64, parent: u64 },
}

/// Why a transaction was not executed: the error and the simulation's logs.
#[derive(Debug)]
pub struct Rejected {
    pub err: TransactionError,
    pub logs: Vec<String>,
    pub units_consumed: u64,
}

pub struct Simulated {
    pub err: Option<TransactionError>,
    pub logs: Vec<String>,
    pub units_consumed: u64,
    pub accounts: Vec<Option<Account>>,
}

struct Writer {
    ledger: Option<Ledger>,
    clock_offset: i64,
}

pub struct Chain {
    writer: Mutex<Writer>,
    bank: Bank,
    index: RwLock<HashMap<Pubkey, Account>>,
    txs: RwLock<HashMap<Signature, Arc<TxRecord>>>,
    events: broadcast::Sender<ChainEvent>,
}

fn host_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Chain {
    /// Starts a bank; with a ledger directory, restores it and records every change there.
    pub async fn start(
        ledger_dir: Option<&Path>,
        reset: bool,
        program: &compux_native::Runtime,
    ) -> Result<Arc<Chain>> {
        let (ledger, restored) = match ledger_dir {
            Some(dir) => {
                let (l, r) = Ledger::open(dir, reset)?;
                (Some(l), r)
            }
            None => (None, Default::default()),
        };
        let accounts: Vec<_> = restored.accounts.iter().map(|(k, a)| (*k, a.clone())).collect();
        let bank = Bank::start(program, &accounts).await?;
        let (events, _) = broadcast::channel(4_096);
        let chain = Chain {
            writer: Mutex::new(Writer { ledger, clock_offset: restored.clock_offset }),
            bank,
            index: RwLock::new(restored.accounts),
            txs: RwLock::new(HashMap::new()),
            events,
        };
        {
            let mut w = chain.writer.lock().await;
            chain.sync_clock(&mut w).await?;
        }
        Ok(Arc::new(chain))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    pub fn genesis_hash(&self) -> Hash {
        self.bank.genesis_hash()
    }

    pub fn slots_per_epoch(&self) -> u64 {
        self.bank.slots_per_epoch()
    }

    pub fn faucet(&self) -> Pubkey {
        self.bank.payer().pubkey()
    }

    pub fn bank(&self) -> &Bank {
        &self.bank
    }

    /// The chain clock follows the host clock plus an offset, so hour-of-day pricing and
    /// schedules behave as on a real cluster, and never runs backwards.
    async fn sync_clock(&self, w: &mut Writer) -> Result<Clock> {
        self.advance_clock(w, host_now() + w.clock_offset).await
    }

    async fn advance_clock(&self, _: &mut Writer, target: i64) -> Result<Clock> {
        let mut clock: Clock = self.bank.clock().await?;
        if target > clock.unix_timestamp {
            clock.unix_timestamp = target;
            self.bank.set_clock(&clock).await?;
        }
        Ok(clock)
    }

    pub async fn clock(&self) -> Result<Clock> {
        let mut w = self.writer.lock().await;
        self.sync_clock(&mut w).await
    }

    /// Development only: moves the chain clock forward to `unix_timestamp`. Refuses to go
    /// back, as a real chain never does.
    pub async fn set_clock(&self, unix_timestamp: i64) -> Result<Clock> {
        let mut w = self.writer.lock().await;
        let now = self.sync_clock(&mut w).await?;
        if unix_timestamp < now.unix_timestamp {
            return Err(anyhow!(
                "the clock only moves forward: it reads {} and {unix_timestamp} is earlier",
                now.unix_timestamp
            ));
        }
        w.clock_offset = unix_timestamp - host_now();
        let offset = w.clock_offset;
        if let Some(l) = w.ledger.as_mut() {
            l.record_clock_offset(offset)?;
        }
        // Exactly the time asked for, even if the host clock ticked meanwhile.
        self.advance_clock(&mut w, unix_timestamp).await
    }

    /// Development only: overwrites an account, as an auditor's test injects a violation.
    pub async fn set_account(&self, key: Pubkey, account: Account) -> Result<()> {
        let mut w = self.writer.lock().await;
        self.bank.set_account(&key, &account).await?;
        self.index.write().expect("account index poisoned").insert(key, account.clone());
        if let Some(l) = w.ledger.as_mut() {
            l.record_accounts(&[(key, Some(account))])?;
        }
        Ok(())
    }

    pub async fn slot(&self) -> Result<u64> {
        Ok(self.bank.slot().await?)
    }

    pub async fn block_height(&self) -> Result<u64> {
        Ok(self.bank.block_height().await?)
    }

    pub async fn latest_blockhash(&self) -> Result<(Hash, u64)> {
        Ok(self.bank.latest_blockhash().await?)
    }

    pub async fn is_blockhash_valid(&self, blockhash: Hash) -> Result<bool> {
        let probe = Message::new_with_blockhash(&[], Some(&self.faucet()), &blockhash);
        Ok(self.bank.fee_for_message(probe).await?.is_some())
    }

    pub async fn fee_for_message(&self, message: Message) -> Result<Option<u64>> {
        Ok(self.bank.fee_for_message(message).await?)
    }

    pub async fn account(&self, key: &Pubkey) -> Result<Option<Account>> {
        Ok(self.bank.account(key).await?)
    }

    /// Accounts of `owner` in the index (the bank has no scan of its own).
    pub fn accounts_owned_by(&self, owner: &Pubkey) -> Vec<(Pubkey, Account)> {
        let index = self.index.read().expect("account index poisoned");
        let mut out: Vec<_> =
            index.iter().filter(|(_, a)| a.owner == *owner).map(|(k, a)| (*k, a.clone())).collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }

    pub fn transaction(&self, signature: &Signature) -> Option<Arc<TxRecord>> {
        self.txs.read().expect("transaction store poisoned").get(signature).cloned()
    }

    pub async fn simulate(&self, tx: VersionedTransaction, with_accounts: &[Pubkey]) -> Result<Simulated> {
        let out = self.bank.simulate(tx).await?;
        let (logs, units_consumed, err) = (out.logs, out.compute_units, out.result.err());
        // The bank does not return post-simulation accounts; report the current state.
        let mut accounts = Vec::with_capacity(with_accounts.len());
        for key in with_accounts {
            accounts.push(self.account(key).await?);
        }
        Ok(Simulated { err, logs, units_consumed, accounts })
    }

    /// Executes a transaction (after a simulation unless `skip_preflight`), indexes what it
    /// touched, records it in the ledger and tells subscribers. A transaction that fails in
    /// execution is still recorded (its fee is charged), as on a validator.
    pub async fn send(
        &self,
        tx: VersionedTransaction,
        skip_preflight: bool,
    ) -> Result<Result<Signature, Rejected>> {
        let signature = tx.signatures.first().copied().unwrap_or_default();
        if tx.verify_with_results().iter().any(|ok| !ok) {
            return Ok(Err(Rejected {
                err: TransactionError::SignatureFailure,
                logs: vec![],
                units_consumed: 0,
            }));
        }
        if self.transaction(&signature).is_some() {
            return Ok(Err(Rejected {
                err: TransactionError::AlreadyProcessed,
                logs: vec![],
                units_consumed: 0,
            }));
        }
        let mut w = self.writer.lock().await;
        let clock = self.sync_clock(&mut w).await?;
        if !skip_preflight {
            let sim = self.simulate(tx.clone(), &[]).await?;
            if let Some(err) = sim.err {
                return Ok(Err(Rejected { err, logs: sim.logs, units_consumed: sim.units_consumed }));
            }
        }
        let keys: Vec<Pubkey> = tx.message.static_account_keys().to_vec();
        let mut pre_balances = Vec::with_capacity(keys.len());
        for k in &keys {
            pre_balances.push(self.bank.balance(k).await?);
        }
        let out = self.bank.process(tx.clone()).await?;
        let (logs, units_consumed, fee, err) = (out.logs, out.compute_units, out.fee, out.result.err());
        if let Some(e) = &err {
            if !fee_was_charged(e) {
                return Ok(Err(Rejected { err: e.clone(), logs, units_consumed }));
            }
        }
        let mut changed = Vec::with_capacity(keys.len());
        let mut post_balances = Vec::with_capacity(keys.len());
        for k in &keys {
            let account = self.bank.account(k).await?;
            post_balances.push(account.as_ref().map_or(0, |a| a.lamports));
            changed.push((*k, account));
        }
        {
            let mut index = self.index.write().expect("account index poisoned");
            for (k, a) in &changed {
                match a {
                    Some(a) if !a.executable && *k != solana_sdk::sysvar::clock::ID => {
                        index.insert(*k, a.clone());
                    }
                    Some(_) => {}
                    None => {
                        index.remove(k);
                    }
                }
            }
        }
        if let Some(l) = w.ledger.as_mut() {
            let persistent: Vec<_> = changed
                .iter()
                .filter(|(_, a)| {
                    a.as_ref().is_none_or(|a| !a.executable && a.owner != solana_sdk::sysvar::ID)
                })
                .cloned()
                .collect();
            l.record_accounts(&persistent)?;
        }
        // Each transaction gets its own block, so slots, block heights and slotSubscribe move
        // as on a validator.
        let slot = self.slot().await?;
        self.bank.warp_to_slot(slot + 1).await?;
        self.sync_clock(&mut w).await?;
        let record = Arc::new(TxRecord {
            signature,
            slot,
            block_time: clock.unix_timestamp,
            tx,
            err,
            logs,
            units_consumed,
            fee,
            pre_balances,
            post_balances,
        });
        self.txs.write().expect("transaction store poisoned").insert(signature, record.clone());
        // Nobody listening is fine.
        let _ = self.events.send(ChainEvent::Committed { record, changed: Arc::new(changed) });
        let _ = self.events.send(ChainEvent::Slot { slot: slot + 1, parent: slot });
        drop(w);
        Ok(Ok(signature))
    }

    /// Sends `lamports` from the faucet (the bank's genesis mint) to `to`.
    pub async fn airdrop(&self, to: &Pubkey, lamports: u64) -> Result<Signature> {
        let (blockhash, _) = self.latest_blockhash().await?;
        let tx = Transaction::new_signed_with_payer(
            &[system_instruction::transfer(&self.faucet(), to, lamports)],
            Some(&self.faucet()),
            &[self.bank.payer()],
            blockhash,
        );
        match self.send(tx.into(), false).await? {
            Ok(sig) => Ok(sig),
            Err(r) => Err(anyhow!("airdrop failed: {}", r.err)),
        }
    }
}

/// Errors raised before execution leave no trace on a validator; the others charge the fee.
fn fee_was_charged(e: &TransactionError) -> bool {
    matches!(e, TransactionError::InstructionError(..) | TransactionError::InsufficientFundsForRent { .. })
}
