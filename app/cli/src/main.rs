//! `compux`: the command line for CompuX. Every command takes `--url` (any Solana RPC
//! endpoint; the local one by default) and `--keypair` (a Solana CLI keypair file); read
//! commands print JSON with `--json`.

mod bootstrap;
mod tx;
mod wallet;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use compux_localnet::{Config, Localnet, DEFAULT_RPC_PORT};
use compux_sdk::state::CreditAccount;
use serde_json::json;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::UiAccountEncoding;
use solana_rpc_client_api::config::{CommitmentConfig, RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

const LOCAL_URL: &str = "http://127.0.0.1:8899";

#[derive(Parser)]
#[command(name = "compux", version, about = "CompuX: AI compute credits on Solana", long_about = None)]
struct Cli {
    /// JSON-RPC endpoint: the localnet by default, or any Solana cluster URL.
    #[arg(long, short = 'u', global = true, env = "COMPUX_URL", default_value = LOCAL_URL)]
    url: String,
    /// Wallet keypair file (Solana CLI JSON format).
    #[arg(long, short = 'k', global = true, env = "COMPUX_KEYPAIR")]
    keypair: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded chain: the compux program with the real SPL programs, served on the
    /// Solana JSON-RPC (HTTP, --rpc-port) and PubSub (WebSocket, the next port).
    Localnet {
        /// HTTP JSON-RPC port; PubSub listens on the next one.
        #[arg(long, default_value_t = DEFAULT_RPC_PORT)]
        rpc_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Keep the chain in this directory across restarts (in memory when absent).
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Start a new chain even if the ledger holds one.
        #[arg(long, requires = "ledger")]
        reset: bool,
        /// Print only the endpoints.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Create a new wallet keypair file (the default wallet unless --outfile).
    Keygen {
        /// Where to write it; defaults to --keypair or ~/.config/solana/id.json.
        #[arg(long, short = 'o')]
        outfile: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Request SOL from the localnet's faucet (for fees and rent).
    Airdrop {
        /// Amount in SOL.
        sol: f64,
        /// Recipient; the wallet by default.
        to: Option<Pubkey>,
    },
    /// Operator commands (the wallet is the market's admin).
    #[command(subcommand)]
    Admin(Admin),
    /// The wallet's SOL balance and its credit accounts in every market.
    Status {
        /// Whose status; the wallet by default.
        owner: Option<Pubkey>,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Create a market from a configuration file. Without --quote-mint (localnet), a
    /// 6-decimal test quote mint is created with the wallet as its mint authority.
    InitMarket {
        /// Market configuration: prices, hourly multipliers, bulk tiers, reserve discounts.
        #[arg(long, default_value = "migrations/market.toml")]
        config: PathBuf,
        /// The quote token's mint (USDC on a real cluster).
        #[arg(long)]
        quote_mint: Option<Pubkey>,
        /// The relayer allowed to settle usage; the wallet by default.
        #[arg(long)]
        relayer: Option<Pubkey>,
    },
}

fn main() {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_none() {
        // The embedded bank logs every instruction at DEBUG and more at INFO; keep the
        // terminal for what the user asked. Set before any thread exists.
        unsafe { std::env::set_var("RUST_LOG", "error") };
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn rpc(url: &str) -> RpcClient {
    RpcClient::new_with_commitment(url.to_string(), CommitmentConfig::confirmed())
}

/// Reads fail against an endpoint that is not there; say how to get one.
fn unreachable_hint(url: &str) -> String {
    if url == LOCAL_URL {
        format!("cannot reach {url}: start the local chain with `compux localnet` (or pass --url)")
    } else {
        format!("cannot reach {url}")
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Localnet { rpc_port, bind, ledger, reset, quiet } => {
            let net = Localnet::start(Config { bind, rpc_port, ledger: ledger.clone(), reset }).await?;
            if cli.json {
                println!("{}", json!({"rpc_url": net.rpc_url(), "websocket_url": net.pubsub_url()}));
            } else if quiet {
                println!("{}\n{}", net.rpc_url(), net.pubsub_url());
            } else {
                println!("CompuX localnet (the compux program natively in a solana-program-test bank)");
                println!("  JSON RPC URL:   {}", net.rpc_url());
                println!("  WebSocket URL:  {}", net.pubsub_url());
                println!("  program:        {}", compux_sdk::PROGRAM_ID);
                match &ledger {
                    Some(dir) => println!("  ledger:         {}", dir.display()),
                    None => println!("  ledger:         in memory (use --ledger DIR to keep state)"),
                }
                println!("  faucet:         compux airdrop 10");
                println!("Ctrl-C stops it.");
            }
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            net.stop().await;
            Ok(())
        }
        Command::Keygen { outfile, force } => {
            let path = outfile.or(cli.keypair).unwrap_or_else(wallet::default_path);
            let kp = wallet::create(&path, force)?;
            if cli.json {
                println!("{}", json!({"pubkey": kp.pubkey().to_string(), "path": path}));
            } else {
                println!("wrote {}\npubkey: {}", path.display(), kp.pubkey());
            }
            Ok(())
        }
        Command::Airdrop { sol, to } => {
            if !(sol.is_finite() && sol > 0.0) {
                anyhow::bail!("the amount must be a positive number of SOL, not {sol}");
            }
            let to = match to {
                Some(k) => k,
                None => wallet::load(cli.keypair.as_deref())?.pubkey(),
            };
            let client = rpc(&cli.url);
            let lamports = (sol * LAMPORTS_PER_SOL as f64) as u64;
            eprintln!("requesting {sol} SOL for {to}...");
            let sig =
                client.request_airdrop(&to, lamports).await.with_context(|| unreachable_hint(&cli.url))?;
            client.confirm_transaction(&sig).await?;
            let balance = client.get_balance(&to).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"signature": sig.to_string(), "pubkey": to.to_string(), "lamports": balance})
                );
            } else {
                println!("confirmed {sig}\nbalance: {} SOL", balance as f64 / LAMPORTS_PER_SOL as f64);
            }
            Ok(())
        }
        Command::Admin(Admin::InitMarket { config, quote_mint, relayer }) => {
            let market_config = bootstrap::read_config(&config)?;
            let admin = wallet::load(cli.keypair.as_deref())?;
            let client = rpc(&cli.url);
            let quote_mint = match quote_mint {
                Some(m) => m,
                None => bootstrap::create_test_quote_mint(&client, &admin).await?,
            };
            let relayer = relayer.unwrap_or_else(|| admin.pubkey());
            let keys = bootstrap::init_market(&client, &admin, quote_mint, market_config, relayer).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({
                        "market": keys.market.to_string(),
                        "quote_mint": keys.quote_mint.to_string(),
                        "credit_mint": keys.credit_mint.to_string(),
                        "treasury": keys.treasury.to_string(),
                        "recovery_reserve": keys.recovery_reserve.to_string(),
                        "relayer": relayer.to_string(),
                    })
                );
            } else {
                println!(
                    "market       {}
quote mint   {}
credit mint  {}
relayer      {relayer}",
                    keys.market, keys.quote_mint, keys.credit_mint
                );
            }
            Ok(())
        }
        Command::Status { owner } => {
            let owner = match owner {
                Some(k) => k,
                None => wallet::load(cli.keypair.as_deref())?.pubkey(),
            };
            status(&rpc(&cli.url), &cli.url, owner, cli.json).await
        }
    }
}

async fn status(client: &RpcClient, url: &str, owner: Pubkey, json_out: bool) -> Result<()> {
    let lamports = client.get_balance(&owner).await.with_context(|| unreachable_hint(url))?;
    // Credit accounts: [discriminator][market][owner]...
    let filters = vec![
        RpcFilterType::Memcmp(Memcmp::new_raw_bytes(
            0,
            <CreditAccount as anchor_lang::Discriminator>::DISCRIMINATOR.to_vec(),
        )),
        RpcFilterType::Memcmp(Memcmp::new_raw_bytes(8 + 32, owner.to_bytes().to_vec())),
    ];
    let config = RpcProgramAccountsConfig {
        filters: Some(filters),
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            ..Default::default()
        },
        ..Default::default()
    };
    let found = client.get_program_ui_accounts_with_config(&compux_sdk::PROGRAM_ID, config).await?;
    let mut accounts = Vec::new();
    for (address, ui) in found {
        let data = ui.data.decode().context("undecodable account data")?;
        let ca: CreditAccount = compux_sdk::decode::account(&data)?;
        let credits: u64 = client.get_token_account_balance(&ca.vault).await?.amount.parse()?;
        accounts.push(json!({
            "address": address.to_string(),
            "market": ca.market.to_string(),
            "credits": credits,
            "settled_seq": ca.settlement.settled_seq,
            "total_purchased": ca.total_purchased,
        }));
    }
    if json_out {
        println!(
            "{}",
            json!({"owner": owner.to_string(), "lamports": lamports, "credit_accounts": accounts})
        );
        return Ok(());
    }
    println!("wallet {owner}\n  SOL: {}", lamports as f64 / LAMPORTS_PER_SOL as f64);
    if accounts.is_empty() {
        println!("  no credit account yet");
    }
    for a in &accounts {
        let credits = a["credits"].as_u64().unwrap_or(0);
        println!(
            "  market {}: {}.{:06} credits (account {}, settled batches {})",
            a["market"].as_str().unwrap_or_default(),
            credits / compux_sdk::constants::CREDIT_UNIT,
            credits % compux_sdk::constants::CREDIT_UNIT,
            a["address"].as_str().unwrap_or_default(),
            a["settled_seq"]
        );
    }
    Ok(())
}
