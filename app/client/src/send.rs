//! Sending transactions with progress on stderr, and failures that name the program error.

use anyhow::{anyhow, Result};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::ErrorKind;
use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

use anchor_spl::token::spl_token;

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
        "CommitmentTooShort" => "reserve two periods or more (`--periods 2`), or buy standard credits with `compux buy`",
        "NotFreezable" => "only a defaulted facility, or one matured with a balance past its grace period, can be frozen: see `compux status`",
        "SettlementWindowOpen" => "usage metered before the freeze or maturity may still settle: recover or close after the window (a day) closes (`compux dev warp` on the localnet)",
        "PurchaseBelowMinimum" => "the market's bulk tiers or prices changed since the quote: run the command again to see the new quote, or accept fewer with --min-credits",
        "DepositAboveMax" => "the market's fee or discounts changed since the quote: run the command again to see the new deposit, or allow it with --max-deposit",
        "FeeAboveMax" => "the market's early-termination fee changed since the quote: run the command again, or allow it with --max-fee",
        "RecoveryRateBelowTerms" => "the market's recovery rate is below the lender's minimum: the lender offers again (`compux lender offer --min-recovery-rate-bps`), or the market restores it",
        "CreditsMatured" => "the facility has matured: usage after maturity is paid from the credit vault",
        "FacilityNotCurrent" => "the facility is past due: the borrower must repay (`compux borrower repay <facility> all`)",
        "TrancheNotDue" => "the next top-up is not due yet: see the schedule in `compux status`",
        "NotMatured" => "unused credits convert only at the end of the financing period: close after the maturity date `compux status` shows",
        "MultiplierAboveCap" => "the market caps the credit multiplier by principal: lower --multiplier-bps (`compux audit --json` prints the caps)",
        "TermOutsideMarketBounds" => "installments x period, --grace and --default-after must be within the market's bounds (`compux audit --json` prints them)",
        "TermsMismatch" => "the offer's terms changed since you read them: read them again (`compux status`) before accepting",
        "CreditsBelowMinimum" => "the market's price moved since the terms were read: accept again, or lower --min-credits",
        "ReserveInsufficient" => "the recovery reserve cannot earmark this facility's worst case: the operator must fund it (`compux admin fund-reserve`)",
        "WithdrawalExceedsFree" => "ask for less: only the vault's balance (the reserve: above the live facilities' earmarks) can be withdrawn",
        "WrongReservationNonce" => "another reservation of this account landed first: send the reservation again",
        "NotBorrower" => "use the borrower's wallet (--keypair)",
        "NotLender" => "use the lender's wallet (--keypair)",
        "NotAdmin" => "use the market admin's wallet (--keypair)",
        "NotAccountOwner" => "use the credit account owner's wallet (--keypair)",
        // Anchor's own account checks.
        "ConstraintDuplicateMutableAccount" => "the same account was given twice where two different ones are needed (paying from the account being paid, say): pass your own token account",
        "ConstraintSeeds" => "an account is not the one this market derives for that wallet: check --keypair and the market (-m)",
        "AccountNotInitialized" => "an account does not exist yet: open a credit account first (`compux buy` does), or check the address",
        "AccountNotSigner" => "a required signer did not sign: pass its keypair (--keypair)",
        // SPL Token's.
        "InsufficientFunds" => "the token account holds too little: fund it with quote tokens first",
        "OwnerMismatch" => "the token account belongs to another wallet: use an account of the signing wallet",
        "MintMismatch" => "the token account holds another token: use an account of the market's quote mint",
        "AccountFrozen" => "the token account is frozen (a defaulted facility's escrow): see `compux status`",
        _ => return None,
    })
}

/// An error's name and message, and the account it concerns when the program said so.
struct Named {
    source: &'static str,
    name: String,
    message: String,
    account: Option<String>,
}

/// Anchor logs `AnchorError caused by account: A. Error Code: N. Error Number: C. Error
/// Message: M.` (the account part only for account checks) before failing.
fn from_logs(code: u32, logs: &[String]) -> Option<Named> {
    let line =
        logs.iter().find(|l| l.contains("AnchorError") && l.contains(&format!("Error Number: {code}.")))?;
    let field = |key: &str| {
        let rest = &line[line.find(key)? + key.len()..];
        Some(rest.split(". ").next()?.trim_end_matches('.').to_string())
    };
    Some(Named {
        source: if code >= 6000 { "compux" } else { "Anchor" },
        name: field("Error Code: ")?,
        message: field("Error Message: ").unwrap_or_default(),
        account: field("caused by account: "),
    })
}

fn named(code: u32, logs: &[String]) -> Option<Named> {
    if let Some(n) = from_logs(code, logs) {
        return Some(n);
    }
    if code >= 6000 {
        let (name, message) = program_error(code)?;
        return Some(Named { source: "compux", name, message, account: None });
    }
    // Below Anchor's range (100..) custom codes are SPL Token's, raised in the program's CPIs.
    if code < 100 {
        let e: spl_token::error::TokenError = num_traits::FromPrimitive::from_u32(code)?;
        return Some(Named {
            source: "SPL Token",
            name: format!("{e:?}"),
            message: e.to_string(),
            account: None,
        });
    }
    None
}

fn explain(err: &TransactionError, logs: &[String]) -> String {
    match err {
        TransactionError::InstructionError(i, InstructionError::Custom(code)) => match named(*code, logs) {
            Some(n) => {
                let about = n.account.map(|a| format!(" (account `{a}`)")).unwrap_or_default();
                let what = format!(
                    "instruction {i} failed with {} error {} ({code}){about}: {}",
                    n.source, n.name, n.message
                );
                match hint(&n.name) {
                    Some(h) => format!("{what}\n  what to do: {h}"),
                    None => what,
                }
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

/// How transactions are sent: whether each step is reported on stderr (the CLI) or not
/// (services, tests), and the priority fee offered per compute unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    progress: bool,
    /// Micro-lamports per requested compute unit; zero offers none.
    pub priority_fee: u64,
}

impl Sender {
    /// Reports each step on stderr.
    pub const STDERR: Sender = Sender { progress: true, priority_fee: 0 };
    /// Says nothing.
    pub const SILENT: Sender = Sender { progress: false, priority_fee: 0 };

    pub fn with_priority_fee(self, micro_lamports_per_unit: u64) -> Sender {
        Sender { priority_fee: micro_lamports_per_unit, ..self }
    }

    fn say(self, line: impl FnOnce() -> String) {
        if self.progress {
            eprintln!("{}", line());
        }
    }
}

/// Signs with `payer` and `signers`, sends, waits for confirmation; `what` names the step.
pub async fn send(
    rpc: &RpcClient,
    how: Sender,
    what: &str,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Signature> {
    how.say(|| format!("{what}: sending..."));
    let tx = sign(rpc, how, payer, ixs, signers).await?;
    submit(rpc, how, what, &tx).await
}

/// A transaction of `ixs` paid by `payer`, signed with a fresh blockhash (its signature is
/// known before it is sent, e.g. to be stored first). It asks for the compute units its
/// instructions can use at most (`compux_sdk::compute`) and offers `how`'s priority fee.
pub async fn sign(
    rpc: &RpcClient,
    how: Sender,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Transaction> {
    let blockhash =
        rpc.get_latest_blockhash().await.map_err(|e| anyhow!("cannot reach {}: {e}", rpc.url()))?;
    Ok(sign_with(blockhash, how, payer, ixs, signers))
}

/// [`sign`] with a blockhash the caller read.
pub fn sign_with(
    blockhash: Hash,
    how: Sender,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Transaction {
    let mut all = vec![payer];
    all.extend(signers.iter().copied().filter(|k| k.pubkey() != payer.pubkey()));
    let ixs = compux_sdk::compute::with_budget(ixs, how.priority_fee);
    Transaction::new_signed_with_payer(&ixs, Some(&payer.pubkey()), &all, blockhash)
}

/// Sends a signed transaction and waits for confirmation; a failure names the program
/// error and what to do.
pub async fn submit(rpc: &RpcClient, how: Sender, what: &str, tx: &Transaction) -> Result<Signature> {
    match rpc.send_and_confirm_transaction(tx).await {
        Ok(sig) => {
            how.say(|| format!("{what}: confirmed {sig}"));
            Ok(sig)
        }
        Err(e) => {
            let reason = match e.kind() {
                ErrorKind::RpcError(RpcError::RpcResponseError {
                    data: RpcResponseErrorData::SendTransactionPreflightFailure(sim),
                    ..
                }) => sim.err.clone().map(|e| explain(&e.into(), sim.logs.as_deref().unwrap_or_default())),
                ErrorKind::TransactionError(te) => Some(explain(te, &[])),
                _ => None,
            };
            Err(anyhow!("{what} failed: {}", reason.unwrap_or_else(|| e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(code: u32) -> TransactionError {
        TransactionError::InstructionError(1, InstructionError::Custom(code))
    }

    #[test]
    fn anchor_errors_are_named_with_their_account_from_the_logs() {
        let logs = vec![
            "Program log: AnchorError caused by account: quote_vault. Error Code: ConstraintDuplicateMutableAccount. Error Number: 2040. Error Message: A mutable account was passed twice.".to_string(),
        ];
        let e = explain(&custom(2040), &logs);
        assert!(
            e.contains("Anchor error ConstraintDuplicateMutableAccount (2040) (account `quote_vault`)"),
            "{e}"
        );
        assert!(e.contains("what to do: the same account was given twice"), "{e}");
    }

    #[test]
    fn compux_errors_are_named_from_the_idl_and_spl_token_errors_by_their_enum() {
        let e = explain(&custom(6000 + compux_sdk::CompuxError::NotMatured as u32), &[]);
        assert!(e.contains("compux error NotMatured") && e.contains("what to do"), "{e}");
        let e = explain(&custom(1), &[]);
        assert!(e.contains("SPL Token error InsufficientFunds (1): Insufficient funds"), "{e}");
        assert!(e.contains("fund it with quote tokens"), "{e}");
        let e = explain(&custom(17), &[]);
        assert!(e.contains("AccountFrozen"), "{e}");
        // An Anchor code with no logs to name it still says what it is.
        assert_eq!(explain(&custom(2999), &[]), "instruction 1 failed with custom error 2999");
    }
}
