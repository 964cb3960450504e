//! On-chain balances for the hard cap, refreshed in the background so the hot path never
//! makes an RPC call: each key's credit account's vault balance, read over Solana RPC.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;

use crate::meter::Meter;

/// Reads every account's credit vault once and records it in the meter.
pub async fn refresh(rpc: &RpcClient, meter: &Meter, accounts: &[String]) -> Result<()> {
    for account in accounts {
        let key = Pubkey::from_str(account)
            .with_context(|| format!("{account} is not a credit account address"))?;
        let (vault, _) = compux_sdk::pda::credit_vault(&key);
        // A vault that does not exist yet holds nothing.
        let balance = match rpc.get_token_account_balance(&vault).await {
            Ok(b) => b.amount.parse().unwrap_or(0),
            Err(_) => 0,
        };
        meter.set_onchain(account, balance);
    }
    Ok(())
}

/// The accounts to keep fresh, asked anew each round (keys come and go).
pub type Accounts = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Refreshes now, then every `every` in the background.
pub async fn spawn_refresher(
    rpc_url: String,
    meter: Arc<Meter>,
    accounts: Accounts,
    every: Duration,
) -> Result<()> {
    let rpc = RpcClient::new(rpc_url);
    refresh(&rpc, &meter, &accounts()).await?;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = refresh(&rpc, &meter, &accounts()).await {
                tracing::warn!("balance refresh failed: {e:#}");
            }
        }
    });
    Ok(())
}
