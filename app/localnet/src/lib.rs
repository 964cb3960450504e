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
pub mod stdout;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use jsonrpsee::server::{Server, ServerHandle};

pub use chain::Chain;
use rpc::{Rpc, SolanaRpcServer};

pub const DEFAULT_RPC_PORT: u16 = 8899;

/// Where the VM process that runs an ELF (`compux-svm`) is expected.
pub use compux_native::svm::runner_for as elf_runner;
/// How to run the localnet; the flags follow solana-test-validator where they overlap.
/// How the localnet's bank runs the program: its SBF ELF in the metered VM, or native.
pub use compux_native::Runtime as ProgramRuntime;

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: IpAddr,
    /// JSON-RPC over HTTP on this port, PubSub over WebSocket on the next; 0 picks free ports.
    pub rpc_port: u16,
    /// Keep state here across restarts; `None` keeps it in memory only.
    pub ledger: Option<PathBuf>,
    /// Start from an empty chain even if the ledger holds one.
    pub reset: bool,
    /// The program as an SBF ELF in the metered VM, or native.
    pub program: ProgramRuntime,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_port: DEFAULT_RPC_PORT,
            ledger: None,
            reset: false,
            program: ProgramRuntime::from_env(),
        }
    }
}

/// A running localnet. Dropping it does not stop the servers; call [`Localnet::stop`].
pub struct Localnet {
    pub chain: Arc<Chain>,
    pub rpc_addr: SocketAddr,
    pub pubsub_addr: SocketAddr,
    handles: Vec<ServerHandle>,
}

/// The HTTP server on `port` and the PubSub server on the next port, where clients
/// (web3.js, solana-rpc-client) look for it. Port 0 picks a free pair.
async fn bind_pair(bind: IpAddr, port: u16) -> Result<(Server, Server)> {
    let attempts = if port == 0 { 32 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let http = Server::builder().build(SocketAddr::new(bind, port)).await.with_context(|| {
            format!("cannot listen on {bind}:{port} (is another validator running? try --rpc-port)")
        })?;
        let ws_port = http.local_addr()?.port().checked_add(1).context("no port after 65535 for PubSub")?;
        match Server::builder().build(SocketAddr::new(bind, ws_port)).await {
            Ok(ws) => return Ok((http, ws)),
            Err(e) => {
                last_err = Some(
                    anyhow::Error::new(e).context(format!("cannot listen on {bind}:{ws_port} for PubSub")),
                )
            }
        }
    }
    Err(last_err.expect("at least one attempt"))
}

impl Localnet {
    pub async fn start(config: Config) -> Result<Localnet> {
        let chain = Chain::start(config.ledger.as_deref(), config.reset, &config.program).await?;
        let methods = Rpc { chain: chain.clone() }.into_rpc();
        let (http, ws) = bind_pair(config.bind, config.rpc_port).await?;
        let (rpc_addr, pubsub_addr) = (http.local_addr()?, ws.local_addr()?);
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
