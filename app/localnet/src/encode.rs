//! Parsing request parameters and encoding responses in the Solana JSON-RPC wire formats.

use base64::prelude::{Engine, BASE64_STANDARD};
use jsonrpsee::types::ErrorObjectOwned;
use solana_account_decoder_client_types::{UiAccount, UiAccountData, UiAccountEncoding, UiDataSliceConfig};
use solana_rpc_client_api::custom_error::JSON_RPC_SERVER_ERROR_TRANSACTION_SIGNATURE_LEN_MISMATCH;
use solana_rpc_client_api::response::RpcResponseContext;
use solana_sdk::account::Account;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::VersionedTransaction;
use solana_transaction_status_client_types::TransactionBinaryEncoding;

pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;

pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub fn invalid_params(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, msg.into(), None::<()>)
}

pub fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR, format!("internal error: {e}"), None::<()>)
}

pub fn pubkey(s: &str) -> RpcResult<Pubkey> {
    s.parse()
        .map_err(|_| invalid_params(format!("Invalid param: {s:?} is not a base58 public key of 32 bytes")))
}

pub fn pubkeys(keys: &[String]) -> RpcResult<Vec<Pubkey>> {
    keys.iter().map(|k| pubkey(k)).collect()
}

pub fn signature(s: &str) -> RpcResult<Signature> {
    let bytes = bs58::decode(s)
        .into_vec()
        .map_err(|_| invalid_params(format!("Invalid param: {s:?} is not base58")))?;
    Signature::try_from(bytes.as_slice()).map_err(|_| {
        ErrorObjectOwned::owned(
            JSON_RPC_SERVER_ERROR_TRANSACTION_SIGNATURE_LEN_MISMATCH as i32,
            format!("Invalid param: a signature is 64 bytes, {s:?} decodes to {}", bytes.len()),
            None::<()>,
        )
    })
}

pub fn hash(s: &str) -> RpcResult<Hash> {
    s.parse().map_err(|_| invalid_params(format!("Invalid param: {s:?} is not a base58 hash")))
}

/// Decodes a base58 or base64 wire transaction (base58 is the RPC's default).
pub fn transaction(
    data: &str,
    encoding: Option<TransactionBinaryEncoding>,
) -> RpcResult<VersionedTransaction> {
    let bytes = match encoding.unwrap_or(TransactionBinaryEncoding::Base58) {
        TransactionBinaryEncoding::Base58 => bs58::decode(data)
            .into_vec()
            .map_err(|e| invalid_params(format!("invalid base58 encoding: {e}")))?,
        TransactionBinaryEncoding::Base64 => BASE64_STANDARD
            .decode(data)
            .map_err(|e| invalid_params(format!("invalid base64 encoding: {e}")))?,
    };
    let tx: VersionedTransaction = bincode::deserialize(&bytes)
        .map_err(|e| invalid_params(format!("failed to deserialize VersionedTransaction: {e}")))?;
    tx.sanitize().map_err(|e| invalid_params(format!("invalid transaction: {e}")))?;
    Ok(tx)
}

pub fn context(slot: u64) -> RpcResponseContext {
    RpcResponseContext { slot, api_version: None }
}

/// An account in the requested encoding. Parsed JSON is not offered: like a validator
/// facing an account it cannot parse, it answers in base64.
pub fn ui_account(
    a: &Account,
    encoding: Option<UiAccountEncoding>,
    slice: Option<UiDataSliceConfig>,
) -> UiAccount {
    let data = match slice {
        Some(s) => {
            let start = s.offset.min(a.data.len());
            let end = s.offset.saturating_add(s.length).min(a.data.len());
            &a.data[start..end]
        }
        None => &a.data[..],
    };
    let data = match encoding.unwrap_or(UiAccountEncoding::Binary) {
        UiAccountEncoding::Binary => UiAccountData::LegacyBinary(bs58::encode(data).into_string()),
        UiAccountEncoding::Base58 => {
            UiAccountData::Binary(bs58::encode(data).into_string(), UiAccountEncoding::Base58)
        }
        _ => UiAccountData::Binary(BASE64_STANDARD.encode(data), UiAccountEncoding::Base64),
    };
    UiAccount {
        lamports: a.lamports,
        data,
        owner: a.owner.to_string(),
        executable: a.executable,
        rent_epoch: a.rent_epoch,
        space: Some(a.data.len() as u64),
    }
}
