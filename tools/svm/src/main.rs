//! `compux-svm <program-id> <elf>`: one LiteSVM bank running the program's SBF ELF in the
//! metered virtual machine, with the real SPL programs, driven over stdin/stdout.
//!
//! Protocol: one JSON request per line in, one JSON reply per line out, in order. Bytes
//! (transactions, account data, errors) are base64; transactions are their wire (bincode)
//! encoding and errors `TransactionError` in bincode, both identical across the agave
//! versions on either side. A reply is `{"error": "..."}` when a request cannot be served;
//! the process exits when stdin closes. The client is `compux_native::svm`.

use std::io::{BufRead, Write};

use base64::Engine;
use litesvm::types::TransactionMetadata;
use litesvm::LiteSVM;
use serde::Deserialize;
use serde_json::{json, Value};
use solana_account::Account;
use solana_address::Address;
use solana_clock::Clock;
use solana_transaction::versioned::VersionedTransaction;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    /// Executes a signed transaction and keeps its effects when it succeeds.
    Process {
        tx: String,
    },
    /// Executes a transaction without keeping anything.
    Simulate {
        tx: String,
    },
    Account {
        address: String,
    },
    SetAccount {
        address: String,
        lamports: u64,
        owner: String,
        executable: bool,
        rent_epoch: u64,
        data: String,
    },
    Clock,
    SetClock {
        slot: u64,
        epoch_start_timestamp: i64,
        epoch: u64,
        leader_schedule_epoch: u64,
        unix_timestamp: i64,
    },
    MinimumBalance {
        len: usize,
    },
    LatestBlockhash,
    /// A new blockhash, as a new slot brings.
    ExpireBlockhash,
    Airdrop {
        to: String,
        lamports: u64,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn address(s: &str) -> Result<Address, String> {
    s.parse().map_err(|e| format!("bad address {s}: {e:?}"))
}

fn transaction(tx: &str) -> Result<VersionedTransaction, String> {
    let bytes = b64().decode(tx).map_err(|e| format!("transaction is not base64: {e}"))?;
    bincode::deserialize(&bytes).map_err(|e| format!("transaction does not decode: {e}"))
}

fn executed(result: Result<&TransactionMetadata, (&TransactionMetadata, Vec<u8>)>) -> Value {
    let (meta, err) = match result {
        Ok(meta) => (meta, None),
        Err((meta, err)) => (meta, Some(b64().encode(err))),
    };
    json!({
        "err": err,
        "logs": meta.logs,
        "compute_units": meta.compute_units_consumed,
        "fee": meta.fee,
        "signature": meta.signature.to_string(),
    })
}

fn serve(svm: &mut LiteSVM, request: Request) -> Result<Value, String> {
    Ok(match request {
        Request::Process { tx } => match svm.send_transaction(transaction(&tx)?) {
            Ok(meta) => executed(Ok(&meta)),
            Err(failed) => {
                executed(Err((&failed.meta, bincode::serialize(&failed.err).map_err(|e| e.to_string())?)))
            }
        },
        Request::Simulate { tx } => match svm.simulate_transaction(transaction(&tx)?) {
            Ok(info) => executed(Ok(&info.meta)),
            Err(failed) => {
                executed(Err((&failed.meta, bincode::serialize(&failed.err).map_err(|e| e.to_string())?)))
            }
        },
        Request::Account { address: a } => match svm.get_account(&address(&a)?) {
            Some(acc) => json!({
                "lamports": acc.lamports,
                "owner": acc.owner.to_string(),
                "executable": acc.executable,
                "rent_epoch": acc.rent_epoch,
                "data": b64().encode(&acc.data),
            }),
            None => Value::Null,
        },
        Request::SetAccount { address: a, lamports, owner, executable, rent_epoch, data } => {
            let data = b64().decode(data).map_err(|e| format!("account data is not base64: {e}"))?;
            let account = Account { lamports, data, owner: address(&owner)?, executable, rent_epoch };
            svm.set_account(address(&a)?, account).map_err(|e| format!("set_account: {e:?}"))?;
            Value::Null
        }
        Request::Clock => {
            let c: Clock = svm.get_sysvar();
            json!({
                "slot": c.slot,
                "epoch_start_timestamp": c.epoch_start_timestamp,
                "epoch": c.epoch,
                "leader_schedule_epoch": c.leader_schedule_epoch,
                "unix_timestamp": c.unix_timestamp,
            })
        }
        Request::SetClock { slot, epoch_start_timestamp, epoch, leader_schedule_epoch, unix_timestamp } => {
            svm.set_sysvar(&Clock {
                slot,
                epoch_start_timestamp,
                epoch,
                leader_schedule_epoch,
                unix_timestamp,
            });
            Value::Null
        }
        Request::MinimumBalance { len } => json!(svm.minimum_balance_for_rent_exemption(len)),
        Request::LatestBlockhash => json!(svm.latest_blockhash().to_string()),
        Request::ExpireBlockhash => {
            svm.expire_blockhash();
            json!(svm.latest_blockhash().to_string())
        }
        Request::Airdrop { to, lamports } => match svm.airdrop(&address(&to)?, lamports) {
            Ok(_) => Value::Null,
            Err(failed) => return Err(format!("airdrop failed: {:?}", failed.err)),
        },
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [program_id, elf] = args.as_slice() else {
        eprintln!("usage: compux-svm <program-id> <program.so>   (requests on stdin: see the source)");
        std::process::exit(2);
    };
    let program_id = address(program_id).unwrap_or_else(|e| {
        eprintln!("compux-svm: {e}");
        std::process::exit(2)
    });
    // Identical transactions are deduplicated by signature, as a cluster does.
    let mut svm = LiteSVM::new();
    if let Err(e) = svm.add_program_from_file(program_id, elf) {
        eprintln!(
            "compux-svm: cannot load the program ELF {elf}: {e:?} (build it with `bash scripts/sbf.sh`)"
        );
        std::process::exit(1);
    }
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                serve(&mut svm, request).map_or_else(|e| json!({ "error": e }), |v| json!({ "ok": v }))
            }
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        };
        if writeln!(stdout, "{reply}").and_then(|_| stdout.flush()).is_err() {
            break;
        }
    }
}
