//! The embedded CompuX chain: the `compux` program running natively in a solana-program-test
//! bank with the real SPL Token, Token-2022, Associated Token and Memo programs, served on
//! the standard Solana JSON-RPC over HTTP and PubSub over WebSocket on the next port, as
//! solana-test-validator does. Real clients (solana-rpc-client, @solana/web3.js, Anchor)
//! talk to it unmodified.

pub mod chain;
pub mod encode;
mod ledger;
pub mod pubsub;
pub mod rpc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use jsonrpsee::server::{Server, ServerHandle};

pub use chain::Chain;
use rpc::{Rpc, SolanaRpcServer};

pub const DEFAULT_RPC_PORT: u16 = 8899;

/// How to run the localnet; the flags follow solana-test-validator where they overlap.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: IpAddr,
    /// JSON-RPC over HTTP on this port, PubSub over WebSocket on the next; 0 picks free ports.
    pub rpc_port: u16,
    /// Keep state here across restarts; `None` keeps it in memory only.
    pub ledger: Option<PathBuf>,
    /// Start from an empty chain even if the ledger holds one.
    pub reset: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { bind: IpAddr::V4(Ipv4Addr::LOCALHOST), rpc_port: DEFAULT_RPC_PORT, ledger: None, reset: false }
    }
}

/// A running localnet. Dropping it does not stop the servers; call [`Localnet::stop`].
pub struct Localnet {
    pub chain: Arc<Chain>,
    pub rpc_addr: SocketAddr,
    pub pubsub_addr: SocketAddr,
    handles: Vec<ServerHandle>,
}

impl Localnet {
    pub async fn start(config: Config) -> Result<Localnet> {
        let chain = Chain::start(config.ledger.as_deref(), config.reset).await?;
        let methods = Rpc { chain: chain.clone() }.into_rpc();
        let http = Server::builder()
            .build(SocketAddr::new(config.bind, config.rpc_port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{} (is another validator running? try --rpc-port)",
                    config.bind, config.rpc_port
                )
            })?;
        let rpc_addr = http.local_addr()?;
        let ws_port = if config.rpc_port == 0 { 0 } else { config.rpc_port + 1 };
        let ws = Server::builder()
            .build(SocketAddr::new(config.bind, ws_port))
            .await
            .with_context(|| format!("cannot listen on {}:{ws_port} for PubSub", config.bind))?;
        let pubsub_addr = ws.local_addr()?;
        let handles = vec![http.start(methods.clone()), ws.start(methods)];
        Ok(Localnet { chain, rpc_addr, pubsub_addr, handles })
    }

    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    pub fn pubsub_url(&self) -> String {
        format!("ws://{}", self.pubsub_addr)
    }

    pub async fn stop(self) {
        for h in self.handles {
            let _ = h.stop();
            h.stopped().await;
        }
    }
}
