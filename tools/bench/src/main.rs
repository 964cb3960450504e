//! `cargo run --release -p compux-bench [-- --buys N --facilities N --in-flight N]`
//!
//! Starts a localnet in this process and measures, through its JSON-RPC with the real
//! solana-rpc-client:
//! - confirmed `buy_credits` transactions per second (sendTransaction, then
//!   getSignatureStatuses until confirmed), with N transactions in flight;
//! - the wall time of the auditor over a market with 1,000 facilities: what `compux audit`
//!   runs (getProgramAccounts, getMultipleAccounts, the SDK's invariant checker).
//!
//! Prints figures and ratios; docs/benchmarks.md records them.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use compux_client::{bootstrap, fetch, tokens, Sender};
use compux_localnet::{Config, Localnet};
use compux_sdk::state::{FacilityTerms, UnusedCredits};
use compux_sdk::{audit, ix, FacilityKeys, MarketKeys};
use futures_util::stream::{self, StreamExt};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;

/// The bench's own output (the natively running program prints to stdout; see
/// `compux_localnet::stdout`).
macro_rules! say {
    ($($arg:tt)*) => { compux_localnet::stdout::line(&format!($($arg)*)) };
}

const SOL: u64 = 1_000_000_000;
const QUIET: Sender = Sender::SILENT;

struct Args {
    buys: usize,
    facilities: usize,
    in_flight: usize,
}

fn args() -> Result<Args> {
    let mut a = Args { buys: 2_000, facilities: 1_000, in_flight: 16 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize> { Ok(it.next().context("missing value")?.parse()?) };
        match flag.as_str() {
            "--buys" => a.buys = value()?,
            "--facilities" => a.facilities = value()?,
            "--in-flight" => a.in_flight = value()?.max(1),
            "-h" | "--help" => {
                println!("compux-bench [--buys N (2000)] [--facilities N (1000)] [--in-flight N (16)]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(a)
}

/// Signs with a fresh blockhash, sends, and polls until confirmed. Signing at send time is
/// what real clients do, and required here: the localnet's blockhashes live about a second
/// (docs/localnet.md).
async fn send_confirmed(
    rpc: &RpcClient,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Signature> {
    let mut all = vec![payer];
    all.extend(signers.iter().copied().filter(|k| k.pubkey() != payer.pubkey()));
    let tx = Transaction::new_signed_with_payer(
        ixs,
        Some(&payer.pubkey()),
        &all,
        rpc.get_latest_blockhash().await?,
    );
    let sig = rpc.send_transaction(&tx).await?;
    loop {
        if let Some(status) = rpc.get_signature_statuses(&[sig]).await?.value[0].clone() {
            ensure!(status.err.is_none(), "{sig} failed: {:?}", status.err);
            return Ok(sig);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn funded(
    rpc: &RpcClient,
    m: &MarketKeys,
    admin: &Keypair,
    quote: u64,
) -> Result<(Keypair, solana_sdk::pubkey::Pubkey)> {
    let kp = Keypair::new();
    let sig = rpc.request_airdrop(&kp.pubkey(), 100 * SOL).await?;
    rpc.confirm_transaction(&sig).await?;
    let ata = tokens::mint_to_owner(rpc, QUIET, admin, &m.quote_mint, &kp.pubkey(), quote).await?;
    Ok((kp, ata))
}

/// Confirmed buy_credits per second with `in_flight` outstanding.
async fn bench_buys(rpc: &RpcClient, m: &MarketKeys, admin: &Keypair, a: &Args) -> Result<(f64, Duration)> {
    let (startup, quote) = funded(rpc, m, admin, u64::MAX / 4).await?;
    compux_client::send(rpc, QUIET, "open", &startup, &[ix::open_credit_account(m, &startup.pubkey())], &[])
        .await?;
    // Distinct amounts keep every transaction unique under one blockhash.
    let buys: Vec<Instruction> = (0..a.buys)
        .map(|i| ix::buy_credits(m, &startup.pubkey(), &quote, 1_000_000 + i as u64, u64::MAX, 0))
        .collect();
    let started = Instant::now();
    let results: Vec<Result<Signature>> = stream::iter(&buys)
        .map(|buy| send_confirmed(rpc, &startup, std::slice::from_ref(buy), &[]))
        .buffer_unordered(a.in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    for r in results {
        r?;
    }
    Ok((a.buys as f64 / elapsed.as_secs_f64(), elapsed))
}

fn terms(borrower: solana_sdk::pubkey::Pubkey) -> FacilityTerms {
    FacilityTerms {
        borrower,
        principal: 1_000_000,
        apr_bps: 1_200,
        installments: 4,
        period_secs: 30 * 86_400,
        credit_multiplier_bps: 15_000,
        upfront_bps: 2_500,
        tranches: 3,
        grace_secs: 5 * 86_400,
        default_after_secs: 20 * 86_400,
        late_fee_bps: 500,
        unused_at_close: UnusedCredits::Convert,
        min_recovery_rate_bps: 0,
    }
}

/// Builds `n` accepted facilities (one lender, one borrower), then times the auditor.
async fn bench_audit(
    rpc: &RpcClient,
    m: &MarketKeys,
    admin: &Keypair,
    a: &Args,
) -> Result<(Duration, Duration, usize)> {
    let (lender, lender_quote) = funded(rpc, m, admin, u64::MAX / 4).await?;
    let (borrower, _) = funded(rpc, m, admin, 1).await?;
    compux_client::send(
        rpc,
        QUIET,
        "open",
        &borrower,
        &[ix::open_credit_account(m, &borrower.pubkey())],
        &[],
    )
    .await?;
    // Every facility earmarks principal x the market's recovery rate of the reserve.
    let t = terms(borrower.pubkey());
    let reserve = t.principal.saturating_mul(a.facilities as u64);
    send_confirmed(
        rpc,
        &lender,
        &[ix::fund_recovery_reserve(m, &lender.pubkey(), &lender_quote, reserve)],
        &[],
    )
    .await?;
    let setup = Instant::now();
    // Facility numbers come from the market's counter, so offers go one after another.
    for nonce in 0..a.facilities as u64 {
        let f = FacilityKeys::derive(&m.market, &lender.pubkey(), nonce);
        let ixs = [
            ix::offer_facility(m, &f, &lender_quote, t),
            ix::accept_facility(m, &f, &borrower.pubkey(), t, 0),
        ];
        send_confirmed(rpc, &lender, &ixs, &[&borrower]).await?;
    }
    let setup = setup.elapsed();

    let started = Instant::now();
    let snapshot = fetch::snapshot(rpc, &m.market).await?;
    let report = audit::check(&snapshot);
    let elapsed = started.elapsed();
    ensure!(report.violations.is_empty(), "the benchmark market should be healthy: {:?}", report.violations);
    Ok((elapsed, setup, snapshot.facilities.len()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: single-threaded start-up is over, but nothing reads the environment
        // concurrently yet; the bank's logger reads it when the localnet starts below.
        unsafe { std::env::set_var("RUST_LOG", "error") };
    }
    compux_localnet::stdout::divert_program_logs(None).expect("stdout diverted to stderr");
    let net = Localnet::start(Config { rpc_port: 0, ..Config::default() }).await?;
    let rpc = RpcClient::new_with_commitment(net.rpc_url(), CommitmentConfig::confirmed());
    let admin = Keypair::new();
    let sig = rpc.request_airdrop(&admin.pubkey(), 1_000 * SOL).await?;
    rpc.confirm_transaction(&sig).await?;
    let config = bootstrap::read_config(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/market.toml"
    )))?;
    let mint = bootstrap::create_test_quote_mint(&rpc, QUIET, &admin).await?;
    let m = bootstrap::init_market(&rpc, QUIET, &admin, mint, config, admin.pubkey()).await?;

    say!("compux-bench: localnet at {} (debug={})", net.rpc_url(), cfg!(debug_assertions));
    let (tps, took) = bench_buys(&rpc, &m, &admin, &a).await?;
    say!(
        "buy_credits via JSON-RPC: {} confirmed in {:.2} s = {tps:.0} tx/s ({} in flight; {:.2} ms per tx)",
        a.buys,
        took.as_secs_f64(),
        a.in_flight,
        took.as_secs_f64() * 1e3 / a.buys as f64
    );
    let (audit, setup, n) = bench_audit(&rpc, &m, &admin, &a).await?;
    say!("setup: {n} facilities offered and accepted in {:.2} s", setup.as_secs_f64());
    say!(
        "audit of a market with {n} facilities: {:.3} s (target < 10 s: {:.1}% of the budget; {:.2} ms per facility)",
        audit.as_secs_f64(),
        audit.as_secs_f64() * 10.0,
        audit.as_secs_f64() * 1e3 / n.max(1) as f64
    );
    net.stop().await;
    Ok(())
}
