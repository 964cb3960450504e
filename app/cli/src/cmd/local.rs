//! The local system: `localnet`, `up`, and the wallet commands `keygen` and `airdrop`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use compux_client::{bootstrap, fetch, tokens, Sender};
use compux_localnet::{Config, Localnet, ProgramRuntime, DEFAULT_RPC_PORT};
use compux_relayer::config::{Key, Model, Provider};
use compux_sdk::MarketKeys;
use serde_json::json;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::CommitmentConfig;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::ctx::Ctx;
use crate::wallet;
use compux_sdk::units;

#[derive(Args)]
pub struct LocalnetArgs {
    /// HTTP JSON-RPC port; PubSub listens on the next one (0: any free ports).
    #[arg(long, default_value_t = DEFAULT_RPC_PORT)]
    rpc_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Keep the chain in this directory across restarts (in memory when absent).
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Start a new chain even if the ledger holds one.
    #[arg(long, requires = "ledger")]
    reset: bool,
    /// Run this SBF ELF of the program in the metered VM [default: target/deploy/compux.so
    /// when `bash scripts/sbf.sh` has built it, else the native program].
    #[arg(long, conflicts_with = "native")]
    program: Option<PathBuf>,
    /// Run the program natively (unmetered) even when its ELF is built.
    #[arg(long)]
    native: bool,
    /// Print only the endpoints.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args)]
pub struct UpArgs {
    /// Where the ledger and the demo wallets live.
    #[arg(long, default_value = ".compux")]
    data_dir: PathBuf,
    /// HTTP JSON-RPC port; PubSub listens on the next one (0: any free ports).
    #[arg(long, default_value_t = DEFAULT_RPC_PORT)]
    rpc_port: u16,
    /// The demo market's configuration.
    #[arg(long, default_value = "migrations/market.toml")]
    config: PathBuf,
    /// Start from an empty chain and new wallets.
    #[arg(long)]
    reset: bool,
    /// The relayer's (OpenAI-compatible API) port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    relayer_port: u16,
    /// Log lines (warnings; per-request lines with COMPUX_LOG=info) as text or JSON.
    #[arg(long, value_enum, default_value_t)]
    log_format: crate::logs::LogFormat,
    /// The settler burns metered usage in batches of 1,000 records, or after this many
    /// seconds when traffic is light.
    #[arg(long, default_value_t = 2)]
    settle_flush_secs: u64,
    /// Do not let the relayer send auto-refills (leave them to `compux crank auto-refill`).
    #[arg(long)]
    no_auto_refill: bool,
    /// Seconds between the relayer's balance refreshes (chain events trigger one at once).
    #[arg(long, default_value_t = 2)]
    balance_refresh_secs: u64,
    /// Run this SBF ELF of the program in the metered VM [default: target/deploy/compux.so
    /// when `bash scripts/sbf.sh` has built it, else the native program].
    #[arg(long, conflicts_with = "native")]
    program: Option<PathBuf>,
    /// Run the program natively (unmetered) even when its ELF is built.
    #[arg(long)]
    native: bool,
}

/// Where `bash scripts/sbf.sh` puts the program's ELF and the VM that runs it.
const BUILT_ELF: &str = "target/deploy/compux.so";

/// The ELF named, else the one `scripts/sbf.sh` built, else native; says which on stderr.
fn program_runtime(named: Option<PathBuf>, native: bool) -> Result<ProgramRuntime> {
    use ProgramRuntime as Runtime;
    let ready = |elf: &std::path::Path| elf.is_file() && compux_localnet::elf_runner(elf).is_file();
    let runtime = match named {
        _ if native => Runtime::Native,
        Some(p) if ready(&p) => Runtime::Elf(p),
        Some(p) if p.is_file() => anyhow::bail!(
            "--program {}: the VM that runs it, {}, is missing (build both with `bash scripts/sbf.sh`)",
            p.display(),
            compux_localnet::elf_runner(&p).display()
        ),
        Some(p) => {
            anyhow::bail!("--program {}: no such file (build it with `bash scripts/sbf.sh`)", p.display())
        }
        None if ready(std::path::Path::new(BUILT_ELF)) => Runtime::Elf(PathBuf::from(BUILT_ELF)),
        None => {
            eprintln!(
                "program: no SBF build at {BUILT_ELF} (with its VM beside it); running the program natively, \
                 unmetered. `bash scripts/sbf.sh` builds it."
            );
            return Ok(Runtime::Native);
        }
    };
    eprintln!("program: {}", runtime.describe());
    Ok(runtime)
}

pub async fn localnet(ctx: &Ctx, a: LocalnetArgs) -> Result<()> {
    // The chain's own process: with a ledger directory the program's lines go to a log
    // file there, otherwise to stderr.
    let log = a.ledger.as_ref().map(|dir| std::fs::create_dir_all(dir).map(|_| dir.join("program.log")));
    let log = log.transpose().context("cannot create the ledger directory")?;
    crate::output::divert_program_logs(log.as_deref()).context("cannot open the program log")?;
    let program = program_runtime(a.program.clone(), a.native)?;
    let net = Localnet::start(Config {
        bind: a.bind,
        rpc_port: a.rpc_port,
        ledger: a.ledger.clone(),
        reset: a.reset,
        program: program.clone(),
    })
    .await?;
    if ctx.json {
        out!(
            "{}",
            json!({"rpc_url": net.rpc_url(), "websocket_url": net.pubsub_url(), "program": program.describe()})
        );
    } else if a.quiet {
        out!("{}\n{}", net.rpc_url(), net.pubsub_url());
    } else {
        out!("CompuX localnet (the compux program natively in a solana-program-test bank)");
        out!("  JSON RPC URL:   {}", net.rpc_url());
        out!("  WebSocket URL:  {}", net.pubsub_url());
        out!("  program:        {}", compux_sdk::PROGRAM_ID);
        match &a.ledger {
            Some(dir) => out!("  ledger:         {}", dir.display()),
            None => out!("  ledger:         in memory (use --ledger DIR to keep state)"),
        }
        out!("Ctrl-C stops it.");
    }
    stop_signal().await?;
    net.stop().await;
    Ok(())
}

/// Three SIMULATED providers (no internet here), one per protocol the relayer speaks, and the
/// relayer in front of them, with the
/// startup's API key; returns the relayer's base URL and the key.
async fn demo_relayer(
    a: &UpArgs,
    rpc_url: &str,
    m: &MarketKeys,
    startup: &Keypair,
) -> Result<(String, String, compux_relayer::Running)> {
    use compux_relayer::sim::{self, SimOptions};
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let spawn = |name: &str| {
        let options = SimOptions { name: name.into(), completion_tokens: 24, ..Default::default() };
        sim::spawn(options, any)
    };
    let (economy, premium, standard, reserve) = (
        spawn("sim-economy").await?,
        spawn("sim-premium").await?,
        spawn("sim-standard").await?,
        spawn("sim-reserve").await?,
    );
    let key_file = a.data_dir.join("startup.apikey");
    let api_key = match std::fs::read_to_string(&key_file) {
        Ok(k) => k.trim().to_string(),
        Err(_) => {
            let k = format!("sk-compux-{}", Keypair::new().pubkey());
            wallet::write_private(&key_file, &k)?;
            k
        }
    };
    let account = m.credit_account(&startup.pubkey()).address;
    let simulated = |name: &str, url: String, input_per_1m: u64, output_per_1m: u64| {
        Provider::new(
            format!("{name} (simulated)"),
            url,
            vec![Model::priced(SIM_MODEL, input_per_1m, output_per_1m)],
        )
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], a.relayer_port));
    let providers = vec![
        simulated("sim-economy", economy.base_url(), 1_000_000, 2_000_000),
        // The premium one speaks Anthropic's Messages API, the standard one Gemini's and the
        // reserve one AWS Bedrock's Converse API (SigV4-signed): the same public model through
        // four protocols, translated by the relayer (docs/providers.md).
        Provider {
            kind: compux_relayer::config::Protocol::Anthropic,
            ..simulated("sim-premium (anthropic protocol)", premium.base_url(), 3_000_000, 6_000_000)
        },
        Provider {
            kind: compux_relayer::config::Protocol::Gemini,
            ..simulated("sim-standard (gemini protocol)", standard.gemini_base_url(), 2_000_000, 4_000_000)
        },
        Provider {
            kind: compux_relayer::config::Protocol::Bedrock,
            ..simulated("sim-reserve (bedrock protocol)", reserve.bedrock_base_url(), 4_000_000, 8_000_000)
        },
    ];
    let mut config = compux_relayer::Config::new(listen, providers);
    config.rpc_url = rpc_url.to_string();
    config.market = Some(m.market);
    config.balance_refresh_secs = a.balance_refresh_secs;
    // A local system: webhooks to this machine are what a developer tries first.
    config.alerts.allow_private_urls = true;
    config.keys.push(Key {
        sha256: compux_relayer::domain::ids::KeyHash::of(&api_key).into(),
        account,
        credits_per_day: None,
        requests_per_minute: None,
    });
    // Burns metered usage on chain with the market's relayer key: batches of 1,000 records,
    // or after flush_secs when traffic is light.
    let mut settler = compux_relayer::jobs::settler::SettlerConfig::new("relayer.json".into());
    settler.flush_secs = a.settle_flush_secs;
    settler.auto_refill = !a.no_auto_refill;
    settler.refill_every_secs = 1;
    config.settler = Some(settler);
    let config = format!(
        "# Written by `compux up`: the demo relayer in front of four SIMULATED providers,\n\
         # speaking OpenAI's, Anthropic's, Gemini's and AWS Bedrock's protocols.\n\
         # Every setting is documented in docs/relayer.md.\n{}",
        config.check()?.to_toml()?
    );
    let path = a.data_dir.join("relayer.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    let running = compux_relayer::start(&path).await?;
    Ok((format!("http://{}/v1", running.addr), api_key, running))
}

pub async fn relayer(ctx: &Ctx, config: &Path) -> Result<()> {
    let running = compux_relayer::start(config).await?;
    ctx.emit(json!({"url": format!("http://{}/v1", running.addr)}), || {
        format!("relayer: OpenAI-compatible API on http://{}/v1 (Ctrl-C or SIGTERM stops it)", running.addr)
    });
    let signal = stop_signal().await?;
    stop_relayer(running, signal).await
}

/// How long requests in flight (long streams included) may take to finish at shutdown.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for Ctrl-C or SIGTERM (what `kill`, systemd and Kubernetes send); names which.
async fn stop_signal() -> Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|_| "Ctrl-C").context("waiting for Ctrl-C"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// Stops the relayer cleanly: no new requests, those in flight finish, every record is in
/// the ledger, leases given back.
async fn stop_relayer(running: compux_relayer::Running, signal: &str) -> Result<()> {
    eprintln!("{signal}: the relayer stops accepting requests and finishes those in flight...");
    let stopped = running.shutdown(DRAIN_DEADLINE).await.context("stopping the relayer")?;
    if stopped.drained {
        eprintln!("relayer stopped: every request finished and recorded");
    } else {
        eprintln!(
            "relayer stopped: requests still running after {} s were cut; every finished one is recorded",
            DRAIN_DEADLINE.as_secs()
        );
    }
    Ok(())
}

/// A demo wallet in the data directory, created on first use.
fn demo_wallet(dir: &Path, name: &str) -> Result<(PathBuf, Keypair)> {
    let path = dir.join(format!("{name}.json"));
    let kp = if path.exists() { wallet::load(Some(&path))? } else { wallet::create(&path, false)? };
    Ok((path, kp))
}

const DEMO_QUOTE: u64 = 1_000_000; // whole quote tokens minted to the lender and the startup
const DEMO_CREDITS: u64 = 1_000 * compux_sdk::constants::CREDIT_UNIT; // bought for the startup's API calls
const SIM_MODEL: &str = "compux-sim-chat";
const DEMO_RESERVE: u64 = 100_000; // whole quote tokens in the recovery reserve

/// The demo market: created by the admin wallet on first start, found again afterwards.
async fn demo_market(
    rpc: &RpcClient,
    admin: &Keypair,
    relayer: &Pubkey,
    config: &Path,
) -> Result<(MarketKeys, bool)> {
    let existing =
        fetch::program_accounts::<compux_sdk::state::Market>(rpc, &[(8, admin.pubkey().as_ref())]).await?;
    if let Some((address, _)) = existing.first() {
        return Ok((fetch::market(rpc, address).await?.0, false));
    }
    let market_config = bootstrap::read_config(config)?;
    let quote_mint = bootstrap::create_test_quote_mint(rpc, Sender::STDERR, admin).await?;
    Ok((bootstrap::init_market(rpc, Sender::STDERR, admin, quote_mint, market_config, *relayer).await?, true))
}

pub async fn up(ctx: &Ctx, a: UpArgs) -> Result<()> {
    let _logs = crate::logs::init(a.log_format, "warn");
    if a.reset && a.data_dir.exists() {
        std::fs::remove_dir_all(&a.data_dir)
            .with_context(|| format!("cannot remove {}", a.data_dir.display()))?;
    }
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    // Read the configuration before starting anything, so a bad file costs nothing.
    bootstrap::read_config(&a.config)?;
    eprintln!("starting the localnet...");
    // The program's `msg!` lines (twice per transaction: preflight and execution) would
    // drown the progress; they are kept in the data directory.
    let program_log = a.data_dir.join("program.log");
    crate::output::divert_program_logs(Some(&program_log)).context("cannot open the program log")?;
    let program = program_runtime(a.program.clone(), a.native)?;
    let net = Localnet::start(Config {
        rpc_port: a.rpc_port,
        ledger: Some(a.data_dir.join("ledger")),
        program: program.clone(),
        ..Config::default()
    })
    .await?;
    let rpc = RpcClient::new_with_commitment(net.rpc_url(), CommitmentConfig::confirmed());

    let mut wallets = serde_json::Map::new();
    let mut keys = Vec::new();
    for name in ["admin", "lender", "startup", "relayer"] {
        let (path, kp) = demo_wallet(&a.data_dir, name)?;
        if rpc.get_balance(&kp.pubkey()).await? < LAMPORTS_PER_SOL {
            let sig = rpc.request_airdrop(&kp.pubkey(), 100 * LAMPORTS_PER_SOL).await?;
            rpc.confirm_transaction(&sig).await?;
        }
        wallets.insert(name.into(), json!({"pubkey": kp.pubkey().to_string(), "keypair": path}));
        keys.push(kp);
    }
    let [admin, lender, startup, relayer] = <[Keypair; 4]>::try_from(keys).expect("four wallets");

    eprintln!("bootstrapping the demo market...");
    let (m, created) = demo_market(&rpc, &admin, &relayer.pubkey(), &a.config).await?;
    if created {
        let p = ctx.sender();
        let decimals = rpc.get_token_supply(&m.quote_mint).await?.decimals;
        let unit = 10u64.pow(decimals as u32);
        for who in [&lender, &startup] {
            tokens::mint_to_owner(&rpc, p, &admin, &m.quote_mint, &who.pubkey(), DEMO_QUOTE * unit).await?;
        }
        let reserve =
            tokens::mint_to_owner(&rpc, p, &admin, &m.quote_mint, &admin.pubkey(), DEMO_RESERVE * unit)
                .await?;
        let fund = compux_sdk::ix::fund_recovery_reserve(&m, &admin.pubkey(), &reserve, DEMO_RESERVE * unit);
        compux_client::send(&rpc, p, "fund recovery reserve", &admin, &[fund], &[]).await?;
        let quote =
            anchor_spl::associated_token::get_associated_token_address(&startup.pubkey(), &m.quote_mint);
        let ixs = [
            compux_sdk::ix::open_credit_account(&m, &startup.pubkey()),
            compux_sdk::ix::buy_credits(&m, &startup.pubkey(), &quote, DEMO_CREDITS, u64::MAX, 0),
        ];
        compux_client::send(&rpc, p, "buy the startup's demo credits", &startup, &ixs, &[]).await?;
    }

    eprintln!("starting the simulated providers and the relayer...");
    let (relayer_url, api_key, relayer) = demo_relayer(&a, &net.rpc_url(), &m, &startup).await?;

    let summary = json!({
        "program": program.describe(),
        "rpc_url": net.rpc_url(),
        "websocket_url": net.pubsub_url(),
        "market": m.market.to_string(),
        "quote_mint": m.quote_mint.to_string(),
        "credit_mint": m.credit_mint.to_string(),
        "wallets": wallets,
        "data_dir": a.data_dir,
        "relayer_url": relayer_url,
        "api_key": api_key,
        // What the key spends from (the settler's batches are listed by it).
        "credit_account": m.credit_account(&startup.pubkey()).address.to_string(),
        "model": SIM_MODEL,
    });
    if ctx.json {
        out!("{summary}");
    } else {
        let w = |name: &str| summary["wallets"][name]["keypair"].as_str().unwrap_or_default().to_string();
        let url =
            if net.rpc_url() == crate::LOCAL_URL { String::new() } else { format!(" -u {}", net.rpc_url()) };
        out!("CompuX is up.");
        out!("  chain      {} (JSON-RPC)  {} (PubSub)", net.rpc_url(), net.pubsub_url());
        out!("  market     {}  (quote mint {}, test tokens)", m.market, m.quote_mint);
        out!("  wallets    {} (admin, lender, startup, relayer)", a.data_dir.display());
        out!("  relayer    {relayer_url} (OpenAI-compatible; four SIMULATED providers behind it: OpenAI, Anthropic, Gemini and Bedrock protocols)");
        out!(
            "  API key    {api_key} (the startup's; also in {})",
            a.data_dir.join("startup.apikey").display()
        );
        out!("Try:");
        out!(
            "  curl -s {relayer_url}/chat/completions -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\n       -d '{{\"model\": \"{SIM_MODEL}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], \"max_tokens\": 50}}'"
        );
        out!("  compux{url} -k {} buy 100", w("startup"));
        out!("  compux{url} -k {} status", w("startup"));
        out!(
            "  compux{url} -k {} lender offer --borrower {} --principal 1000",
            w("lender"),
            startup.pubkey()
        );
        out!("  compux{url} audit");
        out!("  compux usage --relayer {relayer_url} --api-key {api_key}");
        out!("  compux{url} audit prove <x-compux-receipt of a reply> --relayer {relayer_url}");
        out!(
            "  the settler burns usage on chain every {} s (or per 1,000 requests); auto-refill is {}",
            a.settle_flush_secs,
            if a.no_auto_refill { "off" } else { "on" }
        );
        out!("Ctrl-C stops it; the chain and wallets stay in {}.", a.data_dir.display());
    }
    let signal = stop_signal().await?;
    stop_relayer(relayer, signal).await?;
    net.stop().await;
    Ok(())
}

pub fn keygen(ctx: &Ctx, outfile: Option<PathBuf>, force: bool) -> Result<()> {
    let path =
        outfile.or_else(|| ctx.keypair_path().map(Path::to_path_buf)).unwrap_or_else(wallet::default_path);
    let kp = wallet::create(&path, force)?;
    ctx.emit(json!({"pubkey": kp.pubkey().to_string(), "path": path}), || {
        format!("wrote {}\npubkey: {}", path.display(), kp.pubkey())
    });
    Ok(())
}

pub async fn airdrop(ctx: &Ctx, sol: &str, to: Option<Pubkey>) -> Result<()> {
    let lamports = units::parse(sol, 9)?;
    anyhow::ensure!(lamports > 0, "the amount must be a positive number of SOL, not {sol}");
    let to = match to {
        Some(k) => k,
        None => ctx.wallet()?.pubkey(),
    };
    eprintln!("requesting {sol} SOL for {to}...");
    let sig = ctx.rpc.request_airdrop(&to, lamports).await.with_context(|| ctx.unreachable_hint())?;
    ctx.rpc.confirm_transaction(&sig).await?;
    let balance = ctx.rpc.get_balance(&to).await?;
    ctx.emit(json!({"signature": sig.to_string(), "pubkey": to.to_string(), "lamports": balance}), || {
        format!("confirmed {sig}\nbalance: {} SOL", units::format(balance, 9))
    });
    Ok(())
}
