//! What survives a restart of the localnet: every account a transaction touched and the
//! clock offset, as an append-only log of bincode records in `<ledger>/accounts.log`.
//!
//! The bank itself cannot be snapshotted through solana-program-test's API, so a restart
//! builds a fresh bank whose genesis holds the last state of every logged account.
//! Transaction history (getTransaction, getSignatureStatuses) is not kept across restarts.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use solana_sdk::account::Account;
use solana_sdk::pubkey::Pubkey;

const LOG: &str = "accounts.log";

#[derive(Serialize, Deserialize)]
enum Record {
    /// The account's state after a transaction; `None` when it was closed.
    Account([u8; 32], Option<StoredAccount>),
    /// Seconds the chain clock runs ahead of the host clock (moved by `compux_setClock`).
    ClockOffset(i64),
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    lamports: u64,
    data: Vec<u8>,
    owner: [u8; 32],
    executable: bool,
    rent_epoch: u64,
}

impl From<&Account> for StoredAccount {
    fn from(a: &Account) -> Self {
        Self {
            lamports: a.lamports,
            data: a.data.clone(),
            owner: a.owner.to_bytes(),
            executable: a.executable,
            rent_epoch: a.rent_epoch,
        }
    }
}

impl From<StoredAccount> for Account {
    fn from(a: StoredAccount) -> Self {
        Account {
            lamports: a.lamports,
            data: a.data,
            owner: Pubkey::new_from_array(a.owner),
            executable: a.executable,
            rent_epoch: a.rent_epoch,
        }
    }
}

/// The state read back from a ledger directory.
#[derive(Default)]
pub struct Restored {
    pub accounts: HashMap<Pubkey, Account>,
    pub clock_offset: i64,
}

pub struct Ledger {
    out: BufWriter<File>,
}

impl Ledger {
    /// Opens (creating) the ledger in `dir`, wiping it first when `reset`, and returns what
    /// it holds. The log is compacted on open so it grows only with the latest session.
    pub fn open(dir: &Path, reset: bool) -> Result<(Ledger, Restored)> {
        if reset && dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("--reset: cannot remove {}", dir.display()))?;
        }
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create ledger directory {}", dir.display()))?;
        let restored = read(&dir.join(LOG))?;
        let compacted = dir.join(format!("{LOG}.tmp"));
        {
            let mut out = BufWriter::new(File::create(&compacted)?);
            write_record(&mut out, &Record::ClockOffset(restored.clock_offset))?;
            for (key, account) in &restored.accounts {
                write_record(&mut out, &Record::Account(key.to_bytes(), Some(account.into())))?;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        fs::rename(&compacted, dir.join(LOG))?;
        let file = OpenOptions::new().append(true).open(dir.join(LOG))?;
        Ok((Ledger { out: BufWriter::new(file) }, restored))
    }

    /// Appends the new state of the accounts one transaction touched, flushed to the OS so a
    /// killed process loses nothing it had confirmed.
    pub fn record_accounts(&mut self, changed: &[(Pubkey, Option<Account>)]) -> Result<()> {
        for (key, account) in changed {
            write_record(&mut self.out, &Record::Account(key.to_bytes(), account.as_ref().map(Into::into)))?;
        }
        self.out.flush()?;
        Ok(())
    }

    pub fn record_clock_offset(&mut self, offset: i64) -> Result<()> {
        write_record(&mut self.out, &Record::ClockOffset(offset))?;
        self.out.flush()?;
        Ok(())
    }
}

fn write_record(out: &mut impl Write, r: &Record) -> Result<()> {
    bincode::serialize_into(out, r).context("writing the ledger")
}

fn read(path: &Path) -> Result<Restored> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let len = file.metadata()?.len();
    let mut input = BufReader::new(file);
    let mut restored = Restored::default();
    loop {
        match bincode::deserialize_from::<_, Record>(&mut input) {
            Ok(Record::Account(key, Some(a))) => {
                restored.accounts.insert(Pubkey::new_from_array(key), a.into());
            }
            Ok(Record::Account(key, None)) => {
                restored.accounts.remove(&Pubkey::new_from_array(key));
            }
            Ok(Record::ClockOffset(o)) => restored.clock_offset = o,
            Err(e) => match *e {
                // The end of the log, or a record cut short by a crash mid-write: keep
                // everything before it.
                bincode::ErrorKind::Io(ref io) if io.kind() == ErrorKind::UnexpectedEof => break,
                _ => bail!(
                    "ledger {} is corrupt ({e}); start with --reset to begin a new chain (len {len})",
                    path.display()
                ),
            },
        }
    }
    Ok(restored)
}
