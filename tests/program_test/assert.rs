//! Assertions on transaction outcomes: each attack test names the exact error it expects.

use anchor_lang::error::{ErrorCode, ERROR_CODE_OFFSET};
use compux_sdk::CompuxError;
use solana_sdk::instruction::InstructionError;
use solana_sdk::transaction::TransactionError;

use super::env::TxResult;

/// The custom program error code of a failed transaction, if it failed with one.
pub fn custom_code(res: &TxResult) -> Option<u32> {
    match res {
        Err(f) => match &f.err {
            TransactionError::InstructionError(_, InstructionError::Custom(c)) => Some(*c),
            _ => None,
        },
        Ok(_) => None,
    }
}

#[track_caller]
pub fn assert_code(res: TxResult, expected: u32, name: &str) {
    let got = custom_code(&res);
    assert_eq!(got, Some(expected), "expected {name} ({expected}), got {:#?}", res.map(|_| "success"));
}

#[track_caller]
pub fn assert_compux_err(res: TxResult, e: CompuxError) {
    assert_code(res, ERROR_CODE_OFFSET + e as u32, &format!("{e:?}"));
}

#[track_caller]
pub fn assert_anchor_err(res: TxResult, e: ErrorCode) {
    assert_code(res, e as u32, &format!("{e:?}"));
}

#[track_caller]
pub fn assert_ok(res: TxResult) -> Vec<String> {
    match res {
        Ok(logs) => logs,
        Err(f) => panic!("transaction failed: {:?}\nlogs:\n{}", f.err, f.logs.join("\n")),
    }
}
