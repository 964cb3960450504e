//! One bank, two ways to run the program: natively in solana-program-test (fast, debuggable,
//! unmetered) or as the SBF ELF in LiteSVM's metered VM (`compux-svm`). The test harness and
//! the localnet both drive the chain through this type, so every test and `compux up` run
//! the same code whichever the runtime.

// solana-program-test 3.1 marks its API as the "Agave Unstable API".
#![allow(deprecated)]

use std::fmt;
use std::sync::Mutex as BlockingMutex;
use std::time::{SystemTime, UNIX_EPOCH};

use solana_commitment_config::CommitmentLevel;
use solana_program_test::{BanksClient, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::hash::Hash;
use solana_sdk::message::{Message, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{TransactionError, VersionedTransaction};
use tokio::sync::Mutex;

use crate::svm::{Executed, Svm};
use crate::Runtime;

/// The fee per signature on every bank here (a cluster's default).
const LAMPORTS_PER_SIGNATURE: u64 = 5_000;
/// How many slots a blockhash stays valid on a cluster.
const BLOCKHASH_SLOTS: u64 = 150;
/// What the payer of an SBF bank starts with (solana-program-test's mint holds as much).
const PAYER_LAMPORTS: u64 = 500_000_000_000_000;

/// A bank could not do what was asked: the transport or the VM process failed.
#[derive(Debug)]
pub struct BankError(String);

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BankError {}

impl From<String> for BankError {
    fn from(e: String) -> Self {
        BankError(e)
    }
}

impl From<solana_program_test::BanksClientError> for BankError {
    fn from(e: solana_program_test::BanksClientError) -> Self {
        BankError(format!("bank: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, BankError>;

enum Inner {
    Native { ctx: Box<Mutex<ProgramTestContext>>, banks: BanksClient },
    Elf(BlockingMutex<Svm>),
}

pub struct Bank {
    inner: Inner,
    payer: Keypair,
    genesis_hash: Hash,
    slots_per_epoch: u64,
    runtime: Runtime,
}

fn host_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Bank {
    /// A bank with the real SPL programs and `compux` run as `runtime` says, holding
    /// `accounts` from the start. Its payer is funded.
    pub async fn start(runtime: &Runtime, accounts: &[(Pubkey, Account)]) -> Result<Bank> {
        match runtime {
            Runtime::Native => {
                let mut pt = crate::program_test_native();
                for (key, account) in accounts {
                    pt.add_account(*key, account.clone());
                }
                let ctx = crate::start(pt).await;
                Ok(Bank {
                    payer: ctx.payer.insecure_clone(),
                    genesis_hash: ctx.genesis_config().hash(),
                    slots_per_epoch: ctx.genesis_config().epoch_schedule.slots_per_epoch,
                    inner: Inner::Native { banks: ctx.banks_client.clone(), ctx: Box::new(Mutex::new(ctx)) },
                    runtime: runtime.clone(),
                })
            }
            Runtime::Elf(path) => {
                crate::read_elf(path)?;
                let mut svm = Svm::start(&compux::ID, path)?;
                for (key, account) in accounts {
                    svm.set_account(key, account)?;
                }
                // A validator's clock starts at its host's time; so does this one.
                let mut clock = svm.clock()?;
                clock.unix_timestamp = clock.unix_timestamp.max(host_now());
                svm.set_clock(&clock)?;
                let payer = Keypair::new();
                svm.airdrop(&payer.pubkey(), PAYER_LAMPORTS)?;
                Ok(Bank {
                    payer,
                    genesis_hash: svm.latest_blockhash()?,
                    slots_per_epoch: solana_sdk::epoch_schedule::EpochSchedule::default().slots_per_epoch,
                    inner: Inner::Elf(BlockingMutex::new(svm)),
                    runtime: runtime.clone(),
                })
            }
        }
    }

    fn svm(m: &BlockingMutex<Svm>) -> std::sync::MutexGuard<'_, Svm> {
        // A panic while holding it leaves the process itself consistent.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A funded wallet that pays for the harness's own transactions.
    pub fn payer(&self) -> &Keypair {
        &self.payer
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub fn slots_per_epoch(&self) -> u64 {
        self.slots_per_epoch
    }

    /// Executes `tx`; its effects stay when it succeeds. Logs are as the SBF runtime writes
    /// them on either runtime.
    pub async fn process(&self, tx: VersionedTransaction) -> Result<Executed> {
        match &self.inner {
            Inner::Native { banks, .. } => {
                let fee = match &tx.message {
                    VersionedMessage::Legacy(m) => banks.get_fee_for_message(m.clone()).await?.unwrap_or(0),
                    VersionedMessage::V0(_) => LAMPORTS_PER_SIGNATURE * tx.signatures.len() as u64,
                };
                let out = banks.process_transaction_with_metadata(tx).await?;
                let (logs, compute_units) = out
                    .metadata
                    .map(|m| (crate::normalize_logs(m.log_messages), m.compute_units_consumed))
                    .unwrap_or_default();
                Ok(Executed { result: out.result, logs, compute_units, fee })
            }
            Inner::Elf(svm) => Ok(Self::svm(svm).process(&tx)?),
        }
    }

    /// Executes `tx` against the current state and keeps nothing.
    pub async fn simulate(&self, tx: VersionedTransaction) -> Result<Executed> {
        match &self.inner {
            Inner::Native { banks, .. } => {
                let out = banks.simulate_transaction_with_commitment(tx, CommitmentLevel::Processed).await?;
                let (logs, compute_units) = out
                    .simulation_details
                    .map(|d| (crate::normalize_logs(d.logs), d.units_consumed))
                    .unwrap_or_default();
                let result = out.result.unwrap_or(Err(TransactionError::SanitizeFailure));
                Ok(Executed { result, logs, compute_units, fee: 0 })
            }
            Inner::Elf(svm) => Ok(Self::svm(svm).simulate(&tx)?),
        }
    }

    pub async fn account(&self, address: &Pubkey) -> Result<Option<Account>> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_account(*address).await?),
            Inner::Elf(svm) => Ok(Self::svm(svm).account(address)?),
        }
    }

    pub async fn balance(&self, address: &Pubkey) -> Result<u64> {
        Ok(self.account(address).await?.map_or(0, |a| a.lamports))
    }

    /// Overwrites an account (development and tests only).
    pub async fn set_account(&self, address: &Pubkey, account: &Account) -> Result<()> {
        match &self.inner {
            Inner::Native { ctx, .. } => {
                ctx.lock().await.set_account(address, &account.clone().into());
                Ok(())
            }
            Inner::Elf(svm) => Ok(Self::svm(svm).set_account(address, account)?),
        }
    }

    pub async fn clock(&self) -> Result<Clock> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_sysvar().await?),
            Inner::Elf(svm) => Ok(Self::svm(svm).clock()?),
        }
    }

    pub async fn set_clock(&self, clock: &Clock) -> Result<()> {
        match &self.inner {
            Inner::Native { ctx, .. } => {
                ctx.lock().await.set_sysvar(clock);
                Ok(())
            }
            Inner::Elf(svm) => Ok(Self::svm(svm).set_clock(clock)?),
        }
    }

    pub async fn minimum_balance(&self, len: usize) -> Result<u64> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_rent().await?.minimum_balance(len)),
            Inner::Elf(svm) => Ok(Self::svm(svm).minimum_balance(len)?),
        }
    }

    /// The blockhash to sign with and the last block height it is valid at.
    pub async fn latest_blockhash(&self) -> Result<(Hash, u64)> {
        match &self.inner {
            Inner::Native { banks, .. } => banks
                .get_latest_blockhash_with_commitment(CommitmentLevel::Processed)
                .await?
                .ok_or_else(|| BankError("the bank has no blockhash".into())),
            Inner::Elf(svm) => {
                let mut svm = Self::svm(svm);
                let slot = svm.clock()?.slot;
                Ok((svm.latest_blockhash()?, slot + BLOCKHASH_SLOTS))
            }
        }
    }

    /// The fee `message` would pay, or `None` when its blockhash is not valid. On the SBF
    /// bank the blockhash stays the same for its whole life (LiteSVM accepts only its
    /// latest one), so only that one is valid.
    pub async fn fee_for_message(&self, message: Message) -> Result<Option<u64>> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_fee_for_message(message).await?),
            Inner::Elf(svm) => {
                let valid = Self::svm(svm).latest_blockhash()? == message.recent_blockhash;
                let signatures = u64::from(message.header.num_required_signatures);
                Ok(valid.then_some(LAMPORTS_PER_SIGNATURE * signatures))
            }
        }
    }

    pub async fn slot(&self) -> Result<u64> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_root_slot().await?),
            Inner::Elf(_) => Ok(self.clock().await?.slot),
        }
    }

    /// The block height; on the SBF bank every slot has its block.
    pub async fn block_height(&self) -> Result<u64> {
        match &self.inner {
            Inner::Native { banks, .. } => Ok(banks.get_root_block_height().await?),
            Inner::Elf(_) => self.slot().await,
        }
    }

    /// Moves the bank to `slot` (a new block).
    pub async fn warp_to_slot(&self, slot: u64) -> Result<()> {
        match &self.inner {
            Inner::Native { ctx, .. } => ctx
                .lock()
                .await
                .warp_to_slot(slot)
                .map_err(|e| BankError(format!("cannot advance the slot: {e:?}"))),
            Inner::Elf(svm) => {
                let mut svm = Self::svm(svm);
                let mut clock = svm.clock()?;
                clock.slot = slot;
                Ok(svm.set_clock(&clock)?)
            }
        }
    }
}
