//! `compux`: the command line for CompuX. Every command takes `--url` (any Solana RPC
//! endpoint; the local one by default) and `--keypair` (a Solana CLI keypair file); read
//! commands print JSON with `--json`.

#[macro_use]
mod output;
mod cmd;
mod ctx;
mod logs;
mod relayer_api;
mod wallet;

use std::path::PathBuf;

use clap::Parser;
use solana_sdk::pubkey::Pubkey;

// The relayer allocates per request (JSON bodies, headers, records); under load glibc's
// malloc took ~17% of its CPU (perf, docs/benchmarks.md), mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub const LOCAL_URL: &str = "http://127.0.0.1:8899";

#[derive(Parser)]
#[command(
    name = "compux",
    version,
    about = "CompuX: AI compute credits on Solana",
    long_about = "CompuX: AI compute credits on Solana.\n\n\
        Start a local chain with `compux localnet` (or everything with `compux up`), then act as\n\
        the operator (`admin`), a startup (`buy`, `reserve`, ...), a lender (`lender`), a borrower\n\
        (`borrower`) or an auditor (`audit`). Amounts are in whole tokens (\"12.5\"); durations\n\
        like 30d, 12h, 90m."
)]
pub struct Cli {
    /// JSON-RPC endpoint: the localnet by default, or any Solana cluster URL.
    #[arg(long, short = 'u', global = true, env = "COMPUX_URL", default_value = LOCAL_URL)]
    url: String,
    /// Wallet keypair file (Solana CLI JSON format) [default: ~/.config/solana/id.json].
    #[arg(long, short = 'k', global = true, env = "COMPUX_KEYPAIR")]
    keypair: Option<PathBuf>,
    /// The market to act on; optional when the chain has exactly one.
    #[arg(long, short = 'm', global = true, env = "COMPUX_MARKET")]
    market: Option<Pubkey>,
    /// Machine-readable output on stdout (progress still goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Priority fee offered per compute unit, in micro-lamports (each transaction asks for
    /// the compute units its instructions can use at most, so it pays at most limit x fee).
    /// Raise it when a busy cluster drops transactions.
    #[arg(
        long,
        global = true,
        env = "COMPUX_PRIORITY_FEE",
        default_value_t = 0,
        value_name = "MICRO_LAMPORTS"
    )]
    priority_fee: u64,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_none() {
        // The embedded bank logs every instruction at DEBUG and more at INFO; keep the
        // terminal for what the user asked. Set before any thread exists.
        unsafe { std::env::set_var("RUST_LOG", "error") };
    }
    if matches!(cli.command, cmd::Command::Up(_)) && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // The demo's SIMULATED Bedrock checks SigV4 signatures like AWS; without credentials
        // of the user's, the relayer and it share demo ones (nothing leaves this machine).
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDCOMPUXDEMO000000");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "compux-up-demo-credentials-simulated-only");
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let ctx = ctx::Ctx::new(cli.url, cli.keypair, cli.market, cli.json, cli.priority_fee);
    if let Err(e) = runtime.block_on(cmd::run(&ctx, cli.command)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
