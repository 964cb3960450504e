//! The client of `compux-svm` (tools/svm): the program's SBF ELF in LiteSVM's metered VM, in
//! a child process because that VM (agave 4.3) cannot share this workspace's build. Requests
//! and replies are JSON lines; transactions, account data and errors cross as bytes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use base64::Engine;
use serde_json::{json, Value};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::transaction::{TransactionError, VersionedTransaction};

/// Names the `compux-svm` binary; by default it sits next to the ELF (`scripts/sbf.sh` puts
/// both in `target/deploy/`).
pub const SVM_BIN_ENV: &str = "COMPUX_SVM";

/// A transaction the VM executed (or refused before executing, with no units spent).
#[derive(Clone, Debug)]
pub struct Executed {
    pub result: Result<(), TransactionError>,
    pub logs: Vec<String>,
    pub compute_units: u64,
    pub fee: u64,
}

/// A running `compux-svm`, one bank. Dropping it ends the process.
pub struct Svm {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Where `compux-svm` is for the ELF at `elf`.
pub fn runner_for(elf: &Path) -> PathBuf {
    match std::env::var_os(SVM_BIN_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => elf.with_file_name("compux-svm"),
    }
}

impl Svm {
    /// Starts a bank running the ELF at `elf` as `program_id`.
    pub fn start(program_id: &Pubkey, elf: &Path) -> Result<Svm, String> {
        let runner = runner_for(elf);
        let mut child = Command::new(&runner)
            .arg(program_id.to_string())
            .arg(elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the SBF VM {}: {e} (build it with `bash scripts/sbf.sh`, or name it with {SVM_BIN_ENV})",
                    runner.display()
                )
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut svm = Svm { child, stdin, stdout };
        // The first reply proves the ELF loaded (the runner exits naming the cause if not).
        svm.clock()?;
        Ok(svm)
    }

    fn call(&mut self, request: Value) -> Result<Value, String> {
        let gone = |e: std::io::Error| format!("the SBF VM process ended ({e}); its stderr says why");
        writeln!(self.stdin, "{request}").and_then(|_| self.stdin.flush()).map_err(gone)?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).map_err(gone)? == 0 {
            return Err("the SBF VM process ended; its stderr says why".into());
        }
        let mut reply: Value =
            serde_json::from_str(&line).map_err(|e| format!("bad reply from the SBF VM: {e}"))?;
        match reply.get("error") {
            Some(e) => Err(format!("the SBF VM refused {}: {e}", request["op"])),
            None => Ok(reply["ok"].take()),
        }
    }

    fn executed(reply: Value) -> Result<Executed, String> {
        let bad = || format!("bad execution reply from the SBF VM: {reply}");
        let result = match reply["err"].as_str() {
            None => Ok(()),
            Some(e) => {
                let bytes = b64().decode(e).map_err(|_| bad())?;
                Err(bincode::deserialize(&bytes).map_err(|_| bad())?)
            }
        };
        let logs = serde_json::from_value(reply["logs"].clone()).map_err(|_| bad())?;
        Ok(Executed {
            result,
            logs,
            compute_units: reply["compute_units"].as_u64().ok_or_else(bad)?,
            fee: reply["fee"].as_u64().ok_or_else(bad)?,
        })
    }

    fn wire(tx: &VersionedTransaction) -> String {
        b64().encode(bincode::serialize(tx).expect("a transaction encodes"))
    }

    /// Executes `tx`, keeping its effects if it succeeds.
    pub fn process(&mut self, tx: &VersionedTransaction) -> Result<Executed, String> {
        let reply = self.call(json!({ "op": "process", "tx": Self::wire(tx) }))?;
        Self::executed(reply)
    }

    /// Executes `tx` and keeps nothing.
    pub fn simulate(&mut self, tx: &VersionedTransaction) -> Result<Executed, String> {
        let reply = self.call(json!({ "op": "simulate", "tx": Self::wire(tx) }))?;
        Self::executed(reply)
    }

    pub fn account(&mut self, address: &Pubkey) -> Result<Option<Account>, String> {
        let reply = self.call(json!({ "op": "account", "address": address.to_string() }))?;
        if reply.is_null() {
            return Ok(None);
        }
        let bad = || format!("bad account reply from the SBF VM: {reply}");
        Ok(Some(Account {
            lamports: reply["lamports"].as_u64().ok_or_else(bad)?,
            data: b64().decode(reply["data"].as_str().ok_or_else(bad)?).map_err(|_| bad())?,
            owner: reply["owner"].as_str().and_then(|o| o.parse().ok()).ok_or_else(bad)?,
            executable: reply["executable"].as_bool().ok_or_else(bad)?,
            rent_epoch: reply["rent_epoch"].as_u64().ok_or_else(bad)?,
        }))
    }

    pub fn set_account(&mut self, address: &Pubkey, account: &Account) -> Result<(), String> {
        self.call(json!({
            "op": "set_account",
            "address": address.to_string(),
            "lamports": account.lamports,
            "owner": account.owner.to_string(),
            "executable": account.executable,
            "rent_epoch": account.rent_epoch,
            "data": b64().encode(&account.data),
        }))
        .map(drop)
    }

    pub fn clock(&mut self) -> Result<Clock, String> {
        let reply = self.call(json!({ "op": "clock" }))?;
        let field =
            |k: &str| reply[k].as_i64().ok_or_else(|| format!("bad clock reply from the SBF VM: {reply}"));
        Ok(Clock {
            slot: field("slot")? as u64,
            epoch_start_timestamp: field("epoch_start_timestamp")?,
            epoch: field("epoch")? as u64,
            leader_schedule_epoch: field("leader_schedule_epoch")? as u64,
            unix_timestamp: field("unix_timestamp")?,
        })
    }

    pub fn set_clock(&mut self, clock: &Clock) -> Result<(), String> {
        self.call(json!({
            "op": "set_clock",
            "slot": clock.slot,
            "epoch_start_timestamp": clock.epoch_start_timestamp,
            "epoch": clock.epoch,
            "leader_schedule_epoch": clock.leader_schedule_epoch,
            "unix_timestamp": clock.unix_timestamp,
        }))
        .map(drop)
    }

    pub fn minimum_balance(&mut self, len: usize) -> Result<u64, String> {
        let reply = self.call(json!({ "op": "minimum_balance", "len": len }))?;
        reply.as_u64().ok_or_else(|| format!("bad rent reply from the SBF VM: {reply}"))
    }

    pub fn latest_blockhash(&mut self) -> Result<Hash, String> {
        let reply = self.call(json!({ "op": "latest_blockhash" }))?;
        reply.as_str().and_then(|h| h.parse().ok()).ok_or_else(|| format!("bad blockhash reply: {reply}"))
    }

    pub fn airdrop(&mut self, to: &Pubkey, lamports: u64) -> Result<(), String> {
        self.call(json!({ "op": "airdrop", "to": to.to_string(), "lamports": lamports })).map(drop)
    }
}

impl Drop for Svm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
