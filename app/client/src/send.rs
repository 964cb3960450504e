//! Sending transactions with progress on stderr, and failures that name the program error.

use anyhow::{anyhow, Result};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::ErrorKind;
use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData};
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

/// The program's errors, by code, from the checked-in IDL (kept fresh by the test command).
fn program_error(code: u32) -> Option<(String, String)> {
    let idl: serde_json::Value = serde_json::from_str(include_str!("../../../idl/compux.json")).ok()?;
    let e = idl["errors"].as_array()?.iter().find(|e| e["code"].as_u64() == Some(code as u64))?;
    Some((e["name"].as_str()?.to_string(), e["msg"].as_str()?.to_string()))
}

/// What a user can do about the errors people meet in normal use.
fn hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "SlippageExceeded" => "the price moved (a new UTC hour?) since it was quoted: run the command again, or allow more with --max-quote",
        "PriceAboveMax" => "the locked price is above --max-price: check `compux status` and raise it if intended",
        "MarketPaused" => "the operator paused the market; try again after `compux admin resume`",
        "InsufficientCredits" => "buy more with `compux buy`, or wait for a facility top-up",
        "PeriodNotStarted" => "the next period's claim window is not open yet: see `compux status` for when it opens",
        "ReservationLapsed" => "a period went unclaimed; the reservation has ended (anyone may `lapse` it)",
        "NotFreezable" => "only a defaulted facility, or one matured with a balance, can be frozen: see `compux status`",
        "SettlementWindowOpen" => "usage metered before the freeze may still settle; recover after the window closes (`compux dev warp` on the localnet)",
        "FacilityNotCurrent" => "the facility is past due: the borrower must repay (`compux borrower repay <facility> all`)",
        "TrancheNotDue" => "the next top-up is not due yet: see the schedule in `compux status`",
        "NotBorrower" => "use the borrower's wallet (--keypair)",
        "NotLender" => "use the lender's wallet (--keypair)",
        "NotAdmin" => "use the market admin's wallet (--keypair)",
        "NotAccountOwner" => "use the credit account owner's wallet (--keypair)",
        _ => return None,
    })
}

fn explain(err: &TransactionError) -> String {
    match err {
        TransactionError::InstructionError(i, InstructionError::Custom(code)) => match program_error(*code) {
            Some((name, msg)) => {
                let what = format!("instruction {i} failed with compux error {name} ({code}): {msg}");
                match hint(&name) {
                    Some(h) => format!("{what}\n  what to do: {h}"),
                    None => what,
                }
            }
            // SPL Token's own errors (CPIs from the program, or token instructions).
            None if *code == 1 => {
                format!("instruction {i} failed: insufficient token balance (SPL Token error 1): fund the account with quote tokens first")
            }
            None => format!("instruction {i} failed with custom error {code}"),
        },
        TransactionError::InstructionError(i, e) => format!("instruction {i} failed: {e}"),
        TransactionError::AccountNotFound => {
            "the fee payer has no SOL: fund it (`compux airdrop 1` on the localnet)".to_string()
        }
        e => e.to_string(),
    }
}

/// Whether to report each step on stderr (the CLI) or stay silent (services, tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Stderr,
    Silent,
}

impl Progress {
    fn say(self, line: impl FnOnce() -> String) {
        if self == Progress::Stderr {
            eprintln!("{}", line());
        }
    }
}

/// Signs with `payer` and `signers`, sends, waits for confirmation; `what` names the step.
pub async fn send(
    rpc: &RpcClient,
    progress: Progress,
    what: &str,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Signature> {
    progress.say(|| format!("{what}: sending..."));
    let tx = sign(rpc, payer, ixs, signers).await?;
    submit(rpc, progress, what, &tx).await
}

/// A transaction of `ixs` paid by `payer`, signed with a fresh blockhash (its signature is
/// known before it is sent, e.g. to be stored first).
pub async fn sign(
    rpc: &RpcClient,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Transaction> {
    let blockhash =
        rpc.get_latest_blockhash().await.map_err(|e| anyhow!("cannot reach {}: {e}", rpc.url()))?;
    let mut all = vec![payer];
    all.extend(signers.iter().copied().filter(|k| k.pubkey() != payer.pubkey()));
    Ok(Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &all, blockhash))
}

/// Sends a signed transaction and waits for confirmation; a failure names the program
/// error and what to do.
pub async fn submit(rpc: &RpcClient, progress: Progress, what: &str, tx: &Transaction) -> Result<Signature> {
    match rpc.send_and_confirm_transaction(tx).await {
        Ok(sig) => {
            progress.say(|| format!("{what}: confirmed {sig}"));
            Ok(sig)
        }
        Err(e) => {
            let reason = match e.kind() {
                ErrorKind::RpcError(RpcError::RpcResponseError {
                    data: RpcResponseErrorData::SendTransactionPreflightFailure(sim),
                    ..
                }) => sim.err.clone().map(|e| explain(&e.into())),
                ErrorKind::TransactionError(te) => Some(explain(te)),
                _ => None,
            };
            Err(anyhow!("{what} failed: {}", reason.unwrap_or_else(|| e.to_string())))
        }
    }
}
