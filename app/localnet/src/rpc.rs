//! The Solana JSON-RPC 2.0 methods this product's clients use (solana-rpc-client, web3.js,
//! Anchor), over the chain. jsonrpsee answers malformed requests (-32700, -32600), unknown
//! methods (-32601) and parameters of the wrong shape (-32602) itself.

use std::sync::Arc;

use anchor_spl::token::spl_token::state::{Account as TokenAccount, Mint};
use base64::prelude::{Engine, BASE64_STANDARD};
use jsonrpsee::core::{async_trait, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::PendingSubscriptionSink;
use solana_account_decoder_client_types::token::UiTokenAmount;
use solana_account_decoder_client_types::UiAccount;
use solana_rpc_client_api::config::{
    RpcAccountInfoConfig, RpcContextConfig, RpcEncodingConfigWrapper, RpcProgramAccountsConfig,
    RpcRequestAirdropConfig, RpcSendTransactionConfig, RpcSignatureStatusConfig, RpcSignatureSubscribeConfig,
    RpcSimulateTransactionConfig, RpcTransactionConfig, RpcTransactionLogsConfig, RpcTransactionLogsFilter,
    UiTransactionEncoding,
};
use solana_rpc_client_api::custom_error::{
    JSON_RPC_SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE,
    JSON_RPC_SERVER_ERROR_TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
};
use solana_rpc_client_api::filter::RpcFilterType;
use solana_rpc_client_api::response::{
    OptionalContext, Response, RpcBlockhash, RpcKeyedAccount, RpcSimulateTransactionResult, RpcVersionInfo,
};
use solana_sdk::clock::Clock;
use solana_sdk::epoch_info::EpochInfo;
use solana_sdk::message::VersionedMessage;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::transaction::{TransactionError, VersionedTransaction};
use solana_transaction_status_client_types::{
    EncodedConfirmedTransactionWithStatusMeta, EncodedTransaction, EncodedTransactionWithStatusMeta,
    TransactionBinaryEncoding, TransactionConfirmationStatus, TransactionStatus, UiCompiledInstruction,
    UiMessage, UiRawMessage, UiTransaction, UiTransactionStatusMeta,
};

use crate::chain::{Chain, Rejected, TxRecord};
use crate::encode::{self, context, internal, invalid_params, ui_account, RpcResult};
use crate::pubsub;

/// The version reported by getVersion: the agave release whose runtime the bank runs.
pub const CORE_VERSION: &str = "3.1.12";

/// At most this many keys in one getMultipleAccounts or getSignatureStatuses, as on mainnet.
const MAX_KEYS: usize = 256;

#[rpc(server)]
pub trait SolanaRpc {
    #[method(name = "getHealth")]
    async fn get_health(&self) -> RpcResult<String>;
    #[method(name = "getVersion")]
    async fn get_version(&self) -> RpcResult<RpcVersionInfo>;
    #[method(name = "getGenesisHash")]
    async fn get_genesis_hash(&self) -> RpcResult<String>;
    #[method(name = "getSlot")]
    async fn get_slot(&self, config: Option<RpcContextConfig>) -> RpcResult<u64>;
    #[method(name = "getBlockHeight")]
    async fn get_block_height(&self, config: Option<RpcContextConfig>) -> RpcResult<u64>;
    #[method(name = "getEpochInfo")]
    async fn get_epoch_info(&self, config: Option<RpcContextConfig>) -> RpcResult<EpochInfo>;
    #[method(name = "getLatestBlockhash")]
    async fn get_latest_blockhash(
        &self,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<Response<RpcBlockhash>>;
    #[method(name = "isBlockhashValid")]
    async fn is_blockhash_valid(
        &self,
        blockhash: String,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<Response<bool>>;
    #[method(name = "getFeeForMessage")]
    async fn get_fee_for_message(
        &self,
        message: String,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<Response<Option<u64>>>;
    #[method(name = "getMinimumBalanceForRentExemption")]
    async fn get_minimum_balance_for_rent_exemption(
        &self,
        len: usize,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<u64>;
    #[method(name = "getBalance")]
    async fn get_balance(&self, pubkey: String, config: Option<RpcContextConfig>)
        -> RpcResult<Response<u64>>;
    #[method(name = "getAccountInfo")]
    async fn get_account_info(
        &self,
        pubkey: String,
        config: Option<RpcAccountInfoConfig>,
    ) -> RpcResult<Response<Option<UiAccount>>>;
    #[method(name = "getMultipleAccounts")]
    async fn get_multiple_accounts(
        &self,
        pubkeys: Vec<String>,
        config: Option<RpcAccountInfoConfig>,
    ) -> RpcResult<Response<Vec<Option<UiAccount>>>>;
    #[method(name = "getProgramAccounts")]
    async fn get_program_accounts(
        &self,
        program_id: String,
        config: Option<RpcProgramAccountsConfig>,
    ) -> RpcResult<OptionalContext<Vec<RpcKeyedAccount>>>;
    #[method(name = "getTokenAccountBalance")]
    async fn get_token_account_balance(
        &self,
        pubkey: String,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<Response<UiTokenAmount>>;
    #[method(name = "getTokenSupply")]
    async fn get_token_supply(
        &self,
        mint: String,
        config: Option<RpcContextConfig>,
    ) -> RpcResult<Response<UiTokenAmount>>;
    #[method(name = "requestAirdrop")]
    async fn request_airdrop(
        &self,
        pubkey: String,
        lamports: u64,
        config: Option<RpcRequestAirdropConfig>,
    ) -> RpcResult<String>;
    #[method(name = "sendTransaction")]
    async fn send_transaction(
        &self,
        data: String,
        config: Option<RpcSendTransactionConfig>,
    ) -> RpcResult<String>;
    #[method(name = "simulateTransaction")]
    async fn simulate_transaction(
        &self,
        data: String,
        config: Option<RpcSimulateTransactionConfig>,
    ) -> RpcResult<Response<RpcSimulateTransactionResult>>;
    #[method(name = "getSignatureStatuses")]
    async fn get_signature_statuses(
        &self,
        signatures: Vec<String>,
        config: Option<RpcSignatureStatusConfig>,
    ) -> RpcResult<Response<Vec<Option<TransactionStatus>>>>;
    #[method(name = "getTransaction")]
    async fn get_transaction(
        &self,
        signature: String,
        config: Option<RpcEncodingConfigWrapper<RpcTransactionConfig>>,
    ) -> RpcResult<Option<serde_json::Value>>;

    /// Development only (not a Solana method): moves the chain clock forward to a unix
    /// timestamp, for repayment schedules, reservations and demos. Returns the new Clock.
    #[method(name = "compux_setClock")]
    async fn set_clock(&self, unix_timestamp: i64) -> RpcResult<Clock>;

    /// Development only (not a Solana method): overwrites an account, e.g. to show that
    /// `compux audit` catches a corrupted state. Takes the account as getAccountInfo returns
    /// it (base64 data).
    #[method(name = "compux_setAccount")]
    async fn set_account(&self, pubkey: String, account: UiAccount) -> RpcResult<bool>;

    #[subscription(name = "signatureSubscribe" => "signatureNotification", unsubscribe = "signatureUnsubscribe", item = Response<solana_rpc_client_api::response::RpcSignatureResult>)]
    async fn signature_subscribe(
        &self,
        signature: String,
        config: Option<RpcSignatureSubscribeConfig>,
    ) -> SubscriptionResult;
    #[subscription(name = "accountSubscribe" => "accountNotification", unsubscribe = "accountUnsubscribe", item = Response<UiAccount>)]
    async fn account_subscribe(
        &self,
        pubkey: String,
        config: Option<RpcAccountInfoConfig>,
    ) -> SubscriptionResult;
    #[subscription(name = "logsSubscribe" => "logsNotification", unsubscribe = "logsUnsubscribe", item = Response<solana_rpc_client_api::response::RpcLogsResponse>)]
    async fn logs_subscribe(
        &self,
        filter: RpcTransactionLogsFilter,
        config: Option<RpcTransactionLogsConfig>,
    ) -> SubscriptionResult;
    #[subscription(name = "slotSubscribe" => "slotNotification", unsubscribe = "slotUnsubscribe", item = solana_rpc_client_api::response::SlotInfo)]
    async fn slot_subscribe(&self) -> SubscriptionResult;
}

pub struct Rpc {
    pub chain: Arc<Chain>,
}

impl Rpc {
    async fn slot(&self) -> RpcResult<u64> {
        self.chain.slot().await.map_err(internal)
    }

    async fn respond<T>(&self, value: T) -> RpcResult<Response<T>> {
        Ok(Response { context: context(self.slot().await?), value })
    }

    async fn ui_account_at(
        &self,
        key: &Pubkey,
        config: &RpcAccountInfoConfig,
    ) -> RpcResult<Option<UiAccount>> {
        let account = self.chain.account(key).await.map_err(internal)?;
        Ok(account.map(|a| ui_account(&a, config.encoding, config.data_slice)))
    }

    async fn token_account(&self, key: &str) -> RpcResult<(TokenAccount, Mint)> {
        let key = encode::pubkey(key)?;
        let account = self.chain.account(&key).await.map_err(internal)?;
        let token = account
            .filter(|a| a.owner == anchor_spl::token::ID)
            .and_then(|a| TokenAccount::unpack(&a.data).ok())
            .ok_or_else(|| invalid_params(format!("Invalid param: {key} is not an SPL Token account")))?;
        let mint = self.mint(&token.mint.to_string()).await?;
        Ok((token, mint))
    }

    async fn mint(&self, key: &str) -> RpcResult<Mint> {
        let key = encode::pubkey(key)?;
        let account = self.chain.account(&key).await.map_err(internal)?;
        account
            .filter(|a| a.owner == anchor_spl::token::ID)
            .and_then(|a| Mint::unpack(&a.data).ok())
            .ok_or_else(|| invalid_params(format!("Invalid param: {key} is not an SPL Token mint")))
    }
}

fn check_len(n: usize) -> RpcResult<()> {
    if n > MAX_KEYS {
        return Err(invalid_params(format!("Too many inputs provided; max {MAX_KEYS}")));
    }
    Ok(())
}

fn token_amount(amount: u64, decimals: u8) -> UiTokenAmount {
    UiTokenAmount {
        ui_amount: Some(amount as f64 / 10f64.powi(decimals as i32)),
        decimals,
        amount: amount.to_string(),
        ui_amount_string: compux_sdk::units::format(amount, decimals),
    }
}

fn preflight_failure(r: Rejected) -> ErrorObjectOwned {
    let (code, message) = match &r.err {
        TransactionError::SignatureFailure => (
            JSON_RPC_SERVER_ERROR_TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
            "Transaction signature verification failure".to_string(),
        ),
        err => (
            JSON_RPC_SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE,
            format!("Transaction simulation failed: {err}"),
        ),
    };
    let data = RpcSimulateTransactionResult {
        err: Some(r.err.into()),
        logs: Some(r.logs),
        accounts: None,
        units_consumed: Some(r.units_consumed),
        loaded_accounts_data_size: None,
        return_data: None,
        inner_instructions: None,
        replacement_blockhash: None,
        fee: None,
        pre_balances: None,
        post_balances: None,
        pre_token_balances: None,
        post_token_balances: None,
        loaded_addresses: None,
    };
    ErrorObjectOwned::owned(code as i32, message, Some(data))
}

fn binary_encoding(e: Option<UiTransactionEncoding>) -> RpcResult<Option<TransactionBinaryEncoding>> {
    match e {
        None | Some(UiTransactionEncoding::Base58) => Ok(None),
        Some(UiTransactionEncoding::Base64) => Ok(Some(TransactionBinaryEncoding::Base64)),
        Some(other) => {
            Err(invalid_params(format!("unsupported encoding: {other}. Supported encodings: base58, base64")))
        }
    }
}

fn status(r: &TxRecord) -> TransactionStatus {
    TransactionStatus {
        slot: r.slot,
        confirmations: None,
        status: r.err.clone().map_or(Ok(()), Err),
        err: r.err.clone(),
        confirmation_status: Some(TransactionConfirmationStatus::Finalized),
    }
}

fn encode_transaction(
    tx: &VersionedTransaction,
    encoding: UiTransactionEncoding,
) -> RpcResult<EncodedTransaction> {
    let bytes = || bincode::serialize(tx).map_err(internal);
    Ok(match encoding {
        UiTransactionEncoding::Base64 => {
            EncodedTransaction::Binary(BASE64_STANDARD.encode(bytes()?), TransactionBinaryEncoding::Base64)
        }
        UiTransactionEncoding::Base58 => EncodedTransaction::Binary(
            bs58::encode(bytes()?).into_string(),
            TransactionBinaryEncoding::Base58,
        ),
        UiTransactionEncoding::Binary => {
            EncodedTransaction::LegacyBinary(bs58::encode(bytes()?).into_string())
        }
        // json and jsonParsed: the raw message, as a validator gives for programs it cannot parse.
        _ => {
            let m = &tx.message;
            EncodedTransaction::Json(UiTransaction {
                signatures: tx.signatures.iter().map(ToString::to_string).collect(),
                message: UiMessage::Raw(UiRawMessage {
                    header: *m.header(),
                    account_keys: m.static_account_keys().iter().map(ToString::to_string).collect(),
                    recent_blockhash: m.recent_blockhash().to_string(),
                    instructions: m
                        .instructions()
                        .iter()
                        .map(|ix| UiCompiledInstruction::from(ix, None))
                        .collect(),
                    address_table_lookups: m
                        .address_table_lookups()
                        .map(|l| l.iter().map(Into::into).collect()),
                }),
            })
        }
    })
}

#[async_trait]
impl SolanaRpcServer for Rpc {
    async fn get_health(&self) -> RpcResult<String> {
        Ok("ok".into())
    }

    async fn get_version(&self) -> RpcResult<RpcVersionInfo> {
        Ok(RpcVersionInfo { solana_core: CORE_VERSION.into(), feature_set: None })
    }

    async fn get_genesis_hash(&self) -> RpcResult<String> {
        Ok(self.chain.genesis_hash().to_string())
    }

    async fn get_slot(&self, _: Option<RpcContextConfig>) -> RpcResult<u64> {
        self.slot().await
    }

    async fn get_block_height(&self, _: Option<RpcContextConfig>) -> RpcResult<u64> {
        self.chain.block_height().await.map_err(internal)
    }

    async fn get_epoch_info(&self, _: Option<RpcContextConfig>) -> RpcResult<EpochInfo> {
        let slot = self.slot().await?;
        let per = self.chain.slots_per_epoch();
        Ok(EpochInfo {
            epoch: slot / per,
            slot_index: slot % per,
            slots_in_epoch: per,
            absolute_slot: slot,
            block_height: self.chain.block_height().await.map_err(internal)?,
            transaction_count: None,
        })
    }

    async fn get_latest_blockhash(&self, _: Option<RpcContextConfig>) -> RpcResult<Response<RpcBlockhash>> {
        let (hash, last_valid_block_height) = self.chain.latest_blockhash().await.map_err(internal)?;
        self.respond(RpcBlockhash { blockhash: hash.to_string(), last_valid_block_height }).await
    }

    async fn is_blockhash_valid(
        &self,
        blockhash: String,
        _: Option<RpcContextConfig>,
    ) -> RpcResult<Response<bool>> {
        let hash = encode::hash(&blockhash)?;
        let valid = self.chain.is_blockhash_valid(hash).await.map_err(internal)?;
        self.respond(valid).await
    }

    async fn get_fee_for_message(
        &self,
        message: String,
        _: Option<RpcContextConfig>,
    ) -> RpcResult<Response<Option<u64>>> {
        let bytes = BASE64_STANDARD
            .decode(&message)
            .map_err(|e| invalid_params(format!("invalid base64 message: {e}")))?;
        let message: VersionedMessage = bincode::deserialize(&bytes)
            .map_err(|e| invalid_params(format!("failed to deserialize message: {e}")))?;
        let fee = match message {
            VersionedMessage::Legacy(m) => self.chain.fee_for_message(m).await.map_err(internal)?,
            VersionedMessage::V0(m) => Some(5_000 * m.header.num_required_signatures as u64),
        };
        self.respond(fee).await
    }

    async fn get_minimum_balance_for_rent_exemption(
        &self,
        len: usize,
        _: Option<RpcContextConfig>,
    ) -> RpcResult<u64> {
        if len > solana_system_interface::MAX_PERMITTED_DATA_LENGTH as usize {
            return Err(invalid_params(format!(
                "Invalid param: an account holds at most 10 MiB, not {len} bytes"
            )));
        }
        self.chain.bank().minimum_balance(len).await.map_err(internal)
    }

    async fn get_balance(&self, pubkey: String, _: Option<RpcContextConfig>) -> RpcResult<Response<u64>> {
        let key = encode::pubkey(&pubkey)?;
        let lamports = self.chain.account(&key).await.map_err(internal)?.map_or(0, |a| a.lamports);
        self.respond(lamports).await
    }

    async fn get_account_info(
        &self,
        pubkey: String,
        config: Option<RpcAccountInfoConfig>,
    ) -> RpcResult<Response<Option<UiAccount>>> {
        let key = encode::pubkey(&pubkey)?;
        let account = self.ui_account_at(&key, &config.unwrap_or_default()).await?;
        self.respond(account).await
    }

    async fn get_multiple_accounts(
        &self,
        pubkeys: Vec<String>,
        config: Option<RpcAccountInfoConfig>,
    ) -> RpcResult<Response<Vec<Option<UiAccount>>>> {
        check_len(pubkeys.len())?;
        let keys = encode::pubkeys(&pubkeys)?;
        let config = config.unwrap_or_default();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.ui_account_at(&key, &config).await?);
        }
        self.respond(out).await
    }

    async fn get_program_accounts(
        &self,
        program_id: String,
        config: Option<RpcProgramAccountsConfig>,
    ) -> RpcResult<OptionalContext<Vec<RpcKeyedAccount>>> {
        let program = encode::pubkey(&program_id)?;
        let config = config.unwrap_or_default();
        let filters = config.filters.unwrap_or_default();
        for f in &filters {
            f.verify().map_err(|e| invalid_params(format!("Invalid param: {e}")))?;
        }
        let matches = |data: &[u8]| {
            filters.iter().all(|f| match f {
                RpcFilterType::DataSize(n) => data.len() as u64 == *n,
                RpcFilterType::Memcmp(m) => m.bytes_match(data),
                RpcFilterType::TokenAccountState => TokenAccount::unpack(data).is_ok(),
            })
        };
        let ac = &config.account_config;
        let accounts: Vec<RpcKeyedAccount> = self
            .chain
            .accounts_owned_by(&program)
            .into_iter()
            .filter(|(_, a)| matches(&a.data))
            .map(|(k, a)| RpcKeyedAccount {
                pubkey: k.to_string(),
                account: ui_account(&a, ac.encoding, ac.data_slice),
            })
            .collect();
        Ok(if config.with_context.unwrap_or(false) {
            OptionalContext::Context(self.respond(accounts).await?)
        } else {
            OptionalContext::NoContext(accounts)
        })
    }

    async fn get_token_account_balance(
        &self,
        pubkey: String,
        _: Option<RpcContextConfig>,
    ) -> RpcResult<Response<UiTokenAmount>> {
        let (token, mint) = self.token_account(&pubkey).await?;
        self.respond(token_amount(token.amount, mint.decimals)).await
    }

    async fn get_token_supply(
        &self,
        mint: String,
        _: Option<RpcContextConfig>,
    ) -> RpcResult<Response<UiTokenAmount>> {
        let mint = self.mint(&mint).await?;
        self.respond(token_amount(mint.supply, mint.decimals)).await
    }

    async fn request_airdrop(
        &self,
        pubkey: String,
        lamports: u64,
        _: Option<RpcRequestAirdropConfig>,
    ) -> RpcResult<String> {
        let key = encode::pubkey(&pubkey)?;
        let sig = self.chain.airdrop(&key, lamports).await.map_err(|e| invalid_params(e.to_string()))?;
        Ok(sig.to_string())
    }

    async fn send_transaction(
        &self,
        data: String,
        config: Option<RpcSendTransactionConfig>,
    ) -> RpcResult<String> {
        let config = config.unwrap_or_default();
        let tx = encode::transaction(&data, binary_encoding(config.encoding)?)?;
        match self.chain.send(tx, config.skip_preflight).await.map_err(internal)? {
            Ok(sig) => Ok(sig.to_string()),
            Err(rejected) => Err(preflight_failure(rejected)),
        }
    }

    async fn simulate_transaction(
        &self,
        data: String,
        config: Option<RpcSimulateTransactionConfig>,
    ) -> RpcResult<Response<RpcSimulateTransactionResult>> {
        let config = config.unwrap_or_default();
        let mut tx = encode::transaction(&data, binary_encoding(config.encoding)?)?;
        if config.sig_verify && config.replace_recent_blockhash {
            return Err(invalid_params("sigVerify may not be used with replaceRecentBlockhash"));
        }
        if config.sig_verify && tx.verify_with_results().iter().any(|ok| !ok) {
            return Err(preflight_failure(Rejected {
                err: TransactionError::SignatureFailure,
                logs: vec![],
                units_consumed: 0,
            }));
        }
        let mut replacement = None;
        if config.replace_recent_blockhash {
            let (hash, last_valid_block_height) = self.chain.latest_blockhash().await.map_err(internal)?;
            tx.message.set_recent_blockhash(hash);
            replacement = Some(RpcBlockhash { blockhash: hash.to_string(), last_valid_block_height });
        }
        let (addresses, encoding) = match &config.accounts {
            Some(a) => {
                (a.addresses.iter().map(|k| encode::pubkey(k)).collect::<RpcResult<Vec<_>>>()?, a.encoding)
            }
            None => (vec![], None),
        };
        let sim = self.chain.simulate(tx, &addresses).await.map_err(internal)?;
        let accounts = config.accounts.as_ref().map(|_| {
            sim.accounts.iter().map(|a| a.as_ref().map(|a| ui_account(a, encoding, None))).collect()
        });
        self.respond(RpcSimulateTransactionResult {
            err: sim.err.map(Into::into),
            logs: Some(sim.logs),
            accounts,
            units_consumed: Some(sim.units_consumed),
            loaded_accounts_data_size: None,
            return_data: None,
            inner_instructions: None,
            replacement_blockhash: replacement,
            fee: None,
            pre_balances: None,
            post_balances: None,
            pre_token_balances: None,
            post_token_balances: None,
            loaded_addresses: None,
        })
        .await
    }

    async fn get_signature_statuses(
        &self,
        signatures: Vec<String>,
        _: Option<RpcSignatureStatusConfig>,
    ) -> RpcResult<Response<Vec<Option<TransactionStatus>>>> {
        check_len(signatures.len())?;
        let sigs = signatures.iter().map(|s| encode::signature(s)).collect::<RpcResult<Vec<_>>>()?;
        let statuses = sigs.iter().map(|s| self.chain.transaction(s).map(|r| status(&r))).collect();
        self.respond(statuses).await
    }

    async fn get_transaction(
        &self,
        signature: String,
        config: Option<RpcEncodingConfigWrapper<RpcTransactionConfig>>,
    ) -> RpcResult<Option<serde_json::Value>> {
        let sig = encode::signature(&signature)?;
        let config = config.map(|c| c.convert_to_current()).unwrap_or_default();
        let Some(r) = self.chain.transaction(&sig) else { return Ok(None) };
        let legacy = matches!(r.tx.message, VersionedMessage::Legacy(_));
        if !legacy && config.max_supported_transaction_version.is_none() {
            return Err(ErrorObjectOwned::owned(
                solana_rpc_client_api::custom_error::JSON_RPC_SERVER_ERROR_UNSUPPORTED_TRANSACTION_VERSION as i32,
                "Transaction version (0) is not supported by the requesting client. Please try the request again with the following configuration parameter: \"maxSupportedTransactionVersion\": 0",
                None::<()>,
            ));
        }
        let transaction = encode_transaction(&r.tx, config.encoding.unwrap_or(UiTransactionEncoding::Json))?;
        let meta = UiTransactionStatusMeta {
            err: r.err.clone().map(Into::into),
            status: r.err.clone().map_or(Ok(()), |e| Err(e.into())),
            fee: r.fee,
            pre_balances: r.pre_balances.clone(),
            post_balances: r.post_balances.clone(),
            inner_instructions: None.into(),
            log_messages: Some(r.logs.clone()).into(),
            pre_token_balances: None.into(),
            post_token_balances: None.into(),
            rewards: None.into(),
            loaded_addresses:
                solana_transaction_status_client_types::option_serializer::OptionSerializer::Skip,
            return_data: solana_transaction_status_client_types::option_serializer::OptionSerializer::Skip,
            compute_units_consumed: Some(r.units_consumed).into(),
            cost_units: solana_transaction_status_client_types::option_serializer::OptionSerializer::Skip,
        };
        let encoded = EncodedConfirmedTransactionWithStatusMeta {
            slot: r.slot,
            transaction: EncodedTransactionWithStatusMeta {
                transaction,
                meta: Some(meta),
                version: config.max_supported_transaction_version.map(|_| match r.tx.message {
                    VersionedMessage::Legacy(_) => solana_sdk::transaction::TransactionVersion::LEGACY,
                    VersionedMessage::V0(_) => solana_sdk::transaction::TransactionVersion::Number(0),
                }),
            },
            block_time: Some(r.block_time),
        };
        serde_json::to_value(encoded).map(Some).map_err(internal)
    }

    async fn set_clock(&self, unix_timestamp: i64) -> RpcResult<Clock> {
        self.chain.set_clock(unix_timestamp).await.map_err(|e| invalid_params(e.to_string()))
    }

    async fn set_account(&self, pubkey: String, account: UiAccount) -> RpcResult<bool> {
        let key = encode::pubkey(&pubkey)?;
        let data =
            account.data.decode().ok_or_else(|| invalid_params("account data must be base58 or base64"))?;
        let owner = encode::pubkey(&account.owner)?;
        let account = solana_sdk::account::Account {
            lamports: account.lamports,
            data,
            owner,
            executable: account.executable,
            rent_epoch: account.rent_epoch,
        };
        self.chain.set_account(key, account).await.map_err(internal)?;
        Ok(true)
    }

    async fn signature_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        signature: String,
        _: Option<RpcSignatureSubscribeConfig>,
    ) -> SubscriptionResult {
        let sig = match encode::signature(&signature) {
            Ok(s) => s,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        pubsub::signature(self.chain.clone(), pending, sig).await
    }

    async fn account_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        pubkey: String,
        config: Option<RpcAccountInfoConfig>,
    ) -> SubscriptionResult {
        let key = match encode::pubkey(&pubkey) {
            Ok(k) => k,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        pubsub::account(self.chain.clone(), pending, key, config.unwrap_or_default()).await
    }

    async fn logs_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        filter: RpcTransactionLogsFilter,
        _: Option<RpcTransactionLogsConfig>,
    ) -> SubscriptionResult {
        let mentions = match filter {
            RpcTransactionLogsFilter::All | RpcTransactionLogsFilter::AllWithVotes => None,
            RpcTransactionLogsFilter::Mentions(keys) => match encode::pubkeys(&keys) {
                Ok(keys) if keys.len() == 1 => Some(keys[0]),
                Ok(_) => {
                    pending.reject(invalid_params("Invalid Request: Only 1 address supported")).await;
                    return Ok(());
                }
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            },
        };
        pubsub::logs(self.chain.clone(), pending, mentions).await
    }

    async fn slot_subscribe(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        pubsub::slots(self.chain.clone(), pending).await
    }
}
