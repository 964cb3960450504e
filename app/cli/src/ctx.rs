//! What every command needs: the RPC client, the wallet, the market, and the output mode.

use std::path::PathBuf;

use anyhow::{Context, Result};
use compux_client::{fetch, Sender};
use compux_sdk::state::Market;
use compux_sdk::MarketKeys;
use serde_json::Value;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature};

use crate::wallet;

pub struct Ctx {
    pub url: String,
    pub rpc: RpcClient,
    keypair: Option<PathBuf>,
    market: Option<Pubkey>,
    pub json: bool,
    /// Micro-lamports per compute unit offered as a priority fee.
    priority_fee: u64,
}

impl Ctx {
    pub fn new(
        url: String,
        keypair: Option<PathBuf>,
        market: Option<Pubkey>,
        json: bool,
        priority_fee: u64,
    ) -> Ctx {
        let rpc = RpcClient::new_with_commitment(url.clone(), CommitmentConfig::confirmed());
        Ctx { url, rpc, keypair, market, json, priority_fee }
    }

    /// How this command sends transactions: progress on stderr, the chosen priority fee.
    pub fn sender(&self) -> Sender {
        Sender::STDERR.with_priority_fee(self.priority_fee)
    }

    pub fn keypair_path(&self) -> Option<&std::path::Path> {
        self.keypair.as_deref()
    }

    pub fn wallet(&self) -> Result<Keypair> {
        wallet::load(self.keypair.as_deref())
    }

    /// Reads fail against an endpoint that is not there; say how to get one.
    pub fn unreachable_hint(&self) -> String {
        if self.url == crate::LOCAL_URL {
            format!("cannot reach {}: start the local chain with `compux localnet` (or pass --url)", self.url)
        } else {
            format!("cannot reach {}", self.url)
        }
    }

    /// Checks the endpoint answers before a command does real work.
    pub async fn connect(&self) -> Result<()> {
        self.rpc.get_slot().await.map(|_| ()).with_context(|| self.unreachable_hint())
    }

    pub async fn market(&self) -> Result<(MarketKeys, Market)> {
        self.connect().await?;
        fetch::resolve_market(&self.rpc, self.market).await
    }

    pub async fn send(
        &self,
        what: &str,
        payer: &Keypair,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<Signature> {
        compux_client::send(&self.rpc, self.sender(), what, payer, ixs, signers).await
    }

    /// Prints `value` as JSON with --json, otherwise the human text.
    pub fn emit(&self, value: Value, human: impl FnOnce() -> String) {
        if self.json {
            crate::output::line(&value.to_string());
        } else {
            crate::output::line(&human());
        }
    }
}
