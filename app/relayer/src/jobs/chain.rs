//! The settler's view of the chain: the reads and the one write it needs, behind a trait so
//! its tests can stand between it and a real chain and lose a confirmation, fail a send or
//! take the chain away (`tests/settler.rs`). `Rpc` is the real one.

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use compux_client::Sender;
use compux_sdk::state::Market;
use compux_sdk::MarketKeys;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::account::Account;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::Transaction;

#[async_trait]
pub trait Chain: Send + Sync {
    /// Raw accounts for `keys`, in order (`None`: no account there).
    async fn accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<Account>>>;
    /// A blockhash to sign with.
    async fn latest_blockhash(&self) -> Result<Hash>;
    /// Sends a signed transaction and waits for its confirmation. An error does not mean it
    /// did not land (the confirmation may be what was lost): the caller asks the chain.
    async fn submit(&self, what: &str, tx: &Transaction) -> Result<Signature>;
}

/// The chain behind a JSON-RPC endpoint, at `confirmed` commitment.
pub struct Rpc(pub RpcClient);

impl Rpc {
    pub fn new(url: &str) -> Rpc {
        Rpc(RpcClient::new_with_commitment(
            url.to_string(),
            solana_rpc_client_api::config::CommitmentConfig::confirmed(),
        ))
    }
}

#[async_trait]
impl Chain for Rpc {
    async fn accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<Account>>> {
        compux_client::fetch::accounts(&self.0, keys).await
    }

    async fn latest_blockhash(&self) -> Result<Hash> {
        self.0.get_latest_blockhash().await.map_err(|e| anyhow!("cannot reach {}: {e}", self.0.url()))
    }

    async fn submit(&self, what: &str, tx: &Transaction) -> Result<Signature> {
        compux_client::send::submit(&self.0, Sender::SILENT, what, tx).await
    }
}

/// The program account at `key` decoded as `T` (`None`: no account there).
pub async fn state<T: anchor_lang::AccountDeserialize>(chain: &dyn Chain, key: &Pubkey) -> Result<Option<T>> {
    let account = chain.accounts(std::slice::from_ref(key)).await?.pop().flatten();
    account.map(|a| compux_client::fetch::state_of(key, &a.data)).transpose()
}

/// The chain's clock, in Unix seconds.
pub async fn unix_timestamp(chain: &dyn Chain) -> Result<i64> {
    let id = solana_sdk::sysvar::clock::ID;
    let account = chain.accounts(&[id]).await?.pop().flatten().ok_or_else(|| anyhow!("no clock sysvar"))?;
    Ok(compux_client::fetch::clock_of(&account.data)?.unix_timestamp)
}

/// The market at `address` and its derived keys.
pub async fn market(chain: &dyn Chain, address: &Pubkey) -> Result<MarketKeys> {
    let market: Market = state(chain, address).await?.ok_or_else(|| anyhow!("no market at {address}"))?;
    compux_client::fetch::market_keys(address, &market)
}
