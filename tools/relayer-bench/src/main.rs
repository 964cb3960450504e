//! `cargo run --profile perf -p compux-relayer-bench [-- --seconds N --rates 500,1000]`
//!
//! Against a SIMULATED upstream on loopback that answers at once, sends the same open-loop
//! load (a fixed request rate; each request is timed from the moment it was due, not from
//! when it went out, so a slow reply never delays the next send: no coordinated omission)
//! directly to the upstream and through the relayer, with metering, holds and the SQLite
//! ledger on, and prints:
//! - latency p50 / p99 / p99.9 of each, at each rate, and the difference (the relayer's
//!   added latency), with the relayer's own measure of it (its histogram: the request's
//!   time minus the wait for the provider);
//! - the maximum sustained throughput through the relayer (closed loop, 64 in flight), with
//!   the upstream's alone for the ratio;
//! - ledger records committed per second (256 writers into the batching writer);
//! - per upstream protocol (OpenAI pass-through; Anthropic, Gemini and AWS Bedrock
//!   translated, Bedrock's requests SigV4-signed), the latency through a relayer speaking it
//!   at one rate, and its own added latency (`--protocols-only` runs just this part).
//!
//! docs/benchmarks.md records the figures.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use compux_relayer::config::{Key, Model, Protocol, Provider};
use compux_relayer::domain::ids::{KeyHash, Pubkey, Source};
use compux_relayer::domain::usage::UsageRecord;
use compux_relayer::sim::{self, SimOptions};
use compux_relayer::{serve, Config, Gateway, Ledger, Meter};

const KEY: &str = "sk-compux-bench";
const ACCOUNT: Pubkey = Pubkey::new_from_array([9; 32]);
const BODY: &str = r#"{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark"}],"max_tokens":16}"#;

struct Args {
    seconds: u64,
    rates: Vec<u64>,
    throughput_seconds: u64,
    records: usize,
    /// Also measure the ledger on this Postgres server (a fresh database is created).
    postgres: Option<String>,
    /// The rate of the per-protocol runs (each `seconds` long).
    protocol_rate: u64,
    /// Only the per-protocol runs.
    protocols_only: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 10,
        rates: vec![500, 1_000],
        throughput_seconds: 5,
        records: 200_000,
        postgres: None,
        protocol_rate: 1_000,
        protocols_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("missing value");
        match flag.as_str() {
            "--seconds" => a.seconds = value()?.parse()?,
            "--rates" => a.rates = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--throughput-seconds" => a.throughput_seconds = value()?.parse()?,
            "--records" => a.records = value()?.parse()?,
            "--postgres" => a.postgres = Some(value()?),
            "--protocol-rate" => a.protocol_rate = value()?.parse()?,
            "--protocols-only" => a.protocols_only = true,
            "-h" | "--help" => {
                println!(
                    "compux-relayer-bench [--seconds N (10) per rate] [--rates 500,1000] \
                     [--throughput-seconds N (5)] [--records N (200000) for the ledger] \
                     [--postgres URL (also the ledger on Postgres)] \
                     [--protocol-rate N (1000) for the per-protocol runs] [--protocols-only]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(a)
}

/// Percentile `p` (0..100) of sorted microseconds.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1_000.0)
}

/// Sends one request and reads the whole reply: true if it was a 2xx.
async fn served(req: reqwest::RequestBuilder) -> bool {
    match req.send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// Latencies of one open-loop run, sorted, in µs.
struct Run {
    /// From when each request was due (includes any lag in sending it: the measure that
    /// cannot hide a stall).
    from_due: Vec<u64>,
    /// From when it was actually sent (the service time; excludes the timer's 1 ms grain).
    from_send: Vec<u64>,
    failed: u64,
}

/// Open loop: request i is due at start + i / rate and is sent on its own task when due,
/// whatever earlier requests are doing.
async fn open_loop(http: &reqwest::Client, url: &str, rate: u64, seconds: u64) -> Run {
    let total = rate * seconds;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(due).await;
        let req = http.post(url).bearer_auth(KEY).header("content-type", "application/json").body(BODY);
        tasks.push(tokio::spawn(async move {
            let sent = tokio::time::Instant::now();
            let ok = served(req).await;
            (due.elapsed().as_micros() as u64, sent.elapsed().as_micros() as u64, ok)
        }));
    }
    let mut run = Run { from_due: Vec::new(), from_send: Vec::new(), failed: 0 };
    for t in tasks {
        let (due, sent, ok) = t.await.expect("request task");
        if ok {
            run.from_due.push(due);
            run.from_send.push(sent);
        } else {
            run.failed += 1;
        }
    }
    run.from_due.sort_unstable();
    run.from_send.sort_unstable();
    run
}

/// Closed loop: `in_flight` workers send back to back for `seconds`; requests per second.
async fn closed_loop(http: &reqwest::Client, url: &str, in_flight: usize, seconds: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (http, url) = (http.clone(), url.to_string());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    let r = http
                        .post(&url)
                        .bearer_auth(KEY)
                        .header("content-type", "application/json")
                        .body(BODY);
                    if served(r).await {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    let mut n = 0;
    for w in workers {
        n += w.await.expect("worker");
    }
    n as f64 / started.elapsed().as_secs_f64().max(seconds as f64)
}

/// The relayer's own added-latency histogram, as quantile estimates from /metrics buckets:
/// the smallest bucket bound holding `p` % of the observations.
async fn own_added(http: &reqwest::Client, base: &str, p: f64) -> Result<String> {
    let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let prefix = "compux_relayer_added_latency_seconds_bucket{route=\"/v1/chat/completions\",le=\"";
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            Some((le.to_string(), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    Ok(buckets
        .iter()
        .find(|(_, c)| *c >= total * p / 100.0)
        .map_or("n/a".into(), |(le, _)| format!("<= {le} s")))
}

/// Commit latency of single records sent open-loop at `rate` per second (sorted µs).
async fn ledger_latency(ledger: &Ledger, rate: u64, seconds: u64) -> Vec<u64> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        tokio::time::sleep_until(start + Duration::from_nanos(i * 1_000_000_000 / rate)).await;
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            ledger.record(record(10_000_000 + i as usize)).await.expect("ledger write");
            t.elapsed().as_micros() as u64
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.push(t.await.expect("task"));
    }
    lat.sort_unstable();
    lat
}

/// Records per second from 256 concurrent writers: (durable in the journal, committed and
/// synced in SQLite).
async fn ledger_writes(records: usize, postgres: Option<&str>) -> Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("compux-bench-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let target = match postgres {
        Some(url) => {
            std::env::set_var("COMPUX_TEST_LEDGER", "postgres");
            std::env::set_var("COMPUX_TEST_POSTGRES_URL", url);
            compux_relayer::store::db::test_target(&dir).await?
        }
        None => dir.join("ledger.sqlite").display().to_string(),
    };
    let ledger = Ledger::open_with(&target, &dir.join("journal"), 16 << 20).await?;
    let lat = ledger_latency(&ledger, 1_000, 3).await;
    println!(
        "  latency of recording one record (journal append) at 1,000/s: p50 {}, p99 {}, p99.9 {}",
        ms(pct(&lat, 50.0)),
        ms(pct(&lat, 99.0)),
        ms(pct(&lat, 99.9))
    );
    let base = ledger.count().await?;
    let writers = 256;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for i in (w..records).step_by(writers) {
                    ledger.record(record(i)).await.expect("ledger write");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let journaled = records as f64 / started.elapsed().as_secs_f64();
    // count() waits until SQLite has committed everything recorded.
    anyhow::ensure!(ledger.count().await? == base + records as u64, "every record committed");
    let committed = records as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((journaled, committed))
}

fn record(i: usize) -> UsageRecord {
    UsageRecord {
        request_id: format!("bench-{i}"),
        created_at_ms: 1_764_000_000_000 + i as i64,
        key_hash: KeyHash::of("bench"),
        account: ACCOUNT,
        source: Source::Vault(ACCOUNT),
        provider: "sim (simulated)".into(),
        model: "bench-chat".into(),
        input_tokens: 12,
        output_tokens: 16,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        credits_charged: 44,
        input_per_1m: 1_000_000,
        output_per_1m: 2_000_000,
        provider_input_per_1m: 800_000,
        provider_output_per_1m: 1_600_000,
        provider_cost: 36,
        shortfall: 0,
    }
}

/// A relayer in front of `provider` with its own SQLite ledger in `dir`; its base URL.
async fn start_relayer(provider: Provider, dir: &std::path::Path) -> Result<(String, Ledger)> {
    let any = "127.0.0.1:0".parse()?;
    let mut config = Config::new(any, vec![provider]);
    config.keys.push(Key::new(KeyHash::of(KEY), ACCOUNT));
    let meter = Meter::new();
    meter.set_onchain(Source::Vault(ACCOUNT), u64::MAX / 4);
    std::fs::create_dir_all(dir)?;
    let ledger = Ledger::open(&dir.join("ledger.sqlite")).await?;
    let gateway = Gateway::new(config.check()?, meter, ledger.clone()).await?;
    Ok((format!("http://{}", serve(gateway).await?), ledger))
}

/// Latency at each rate, the most served, and the ledger's rates.
async fn general(
    a: &Args,
    http: &reqwest::Client,
    relayer: &str,
    ledger: &Ledger,
    direct_url: &str,
    relayed_url: &str,
) -> Result<()> {
    println!(
        "relayer benchmark: {} cores, SIMULATED upstream on loopback answering at once",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Warm both paths (connections, SQLite pages).
    closed_loop(http, direct_url, 8, 1).await;
    closed_loop(http, relayed_url, 8, 1).await;

    println!("\nopen loop, {} s per rate: latency from send (and p99 from when due)", a.seconds);
    println!(
        "{:>6}  {:>9}  {:>11} {:>11} {:>11}  {:>11}  {:>6}",
        "rate", "path", "p50", "p99", "p99.9", "p99 due", "failed"
    );
    for &rate in &a.rates {
        let direct = open_loop(http, direct_url, rate, a.seconds).await;
        let relayed = open_loop(http, relayed_url, rate, a.seconds).await;
        for (name, r) in [("direct", &direct), ("relayer", &relayed)] {
            println!(
                "{rate:>6}  {name:>9}  {:>11} {:>11} {:>11}  {:>11}  {:>6}",
                ms(pct(&r.from_send, 50.0)),
                ms(pct(&r.from_send, 99.0)),
                ms(pct(&r.from_send, 99.9)),
                ms(pct(&r.from_due, 99.0)),
                r.failed
            );
        }
        let added = |p, f: fn(&Run) -> &Vec<u64>| ms(pct(f(&relayed), p).saturating_sub(pct(f(&direct), p)));
        println!(
            "{rate:>6}  {:>9}  {:>11} {:>11} {:>11}  {:>11}   (relayer - direct)",
            "added",
            added(50.0, |r| &r.from_send),
            added(99.0, |r| &r.from_send),
            added(99.9, |r| &r.from_send),
            added(99.0, |r| &r.from_due)
        );
    }
    println!(
        "relayer's own added latency over the whole run (its histogram): p50 {}, p99 {}, p99.9 {}",
        own_added(http, relayer, 50.0).await?,
        own_added(http, relayer, 99.0).await?,
        own_added(http, relayer, 99.9).await?
    );

    println!("\nmaximum throughput, closed loop, 64 in flight, {} s", a.throughput_seconds);
    let direct = closed_loop(http, direct_url, 64, a.throughput_seconds).await;
    let before = ledger.count().await?;
    let relayed = closed_loop(http, relayed_url, 64, a.throughput_seconds).await;
    let recorded = ledger.count().await? - before;
    println!("  direct to the upstream: {direct:>8.0} req/s");
    println!("  through the relayer:    {relayed:>8.0} req/s ({:.0} % of direct; {recorded} usage records written)", 100.0 * relayed / direct);

    println!("\nledger: {} records from 256 concurrent writers", a.records);
    let (journaled, committed) = ledger_writes(a.records, None).await?;
    println!("  {journaled:>8.0} records/s recorded (durable against kill -9: in the journal)");
    println!("  {committed:>8.0} records/s committed to SQLite (WAL, synchronous FULL, group commit)");
    if let Some(url) = a.postgres.as_deref() {
        println!("\nledger on Postgres: {} records from 256 concurrent writers", a.records);
        let (journaled, committed) = ledger_writes(a.records, Some(url)).await?;
        println!("  {journaled:>8.0} records/s recorded (in the journal)");
        println!("  {committed:>8.0} records/s committed to Postgres (group commit)");
    }

    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // The SIMULATED Bedrock checks the SigV4 signature the relayer makes from these (set
    // before any request is made; real AWS credentials, if set, are used as they are).
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDCOMPUXBENCH00000");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "compux-bench-credentials-simulated-only");
    }
    let a = args()?;
    let any = "127.0.0.1:0".parse()?;
    let upstream = sim::spawn(
        SimOptions {
            name: "bench-upstream".into(),
            fail_status: None,
            completion_tokens: 16,
            latency_ms: 0,
            ..Default::default()
        },
        any,
    )
    .await?;
    let dir = std::env::temp_dir().join(format!("compux-bench-relayer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let model = Model::priced("bench-chat", 1_000_000, 2_000_000);
    let provider = Provider::new("bench-upstream (simulated)", upstream.base_url(), vec![model.clone()]);
    let (relayer, ledger) = start_relayer(provider, &dir).await?;
    let direct_url = format!("{}/chat/completions", upstream.base_url());
    let relayed_url = format!("{relayer}/v1/chat/completions");
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    if !a.protocols_only {
        general(&a, &http, &relayer, &ledger, &direct_url, &relayed_url).await?;
    }

    println!(
        "\nper upstream protocol, open loop at {} req/s for {} s (the same SIMULATED upstream answers each)",
        a.protocol_rate, a.seconds
    );
    println!("{:>10}  {:>11} {:>11}  {:>11} {:>11}", "protocol", "p50", "p99", "own p50", "own p99");
    for kind in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini, Protocol::Bedrock] {
        let base = match kind {
            Protocol::Gemini => upstream.gemini_base_url(),
            Protocol::Bedrock => upstream.bedrock_base_url(),
            _ => upstream.base_url(),
        };
        let mut p = Provider::new(format!("bench-{kind:?} (simulated)"), base, vec![model.clone()]);
        p.kind = kind;
        let (url, _) = start_relayer(p, &dir.join(format!("{kind:?}"))).await?;
        let chat = format!("{url}/v1/chat/completions");
        closed_loop(&http, &chat, 8, 1).await;
        let r = open_loop(&http, &chat, a.protocol_rate, a.seconds).await;
        println!(
            "{:>10}  {:>11} {:>11}  {:>11} {:>11}  ({} failed)",
            format!("{kind:?}"),
            ms(pct(&r.from_send, 50.0)),
            ms(pct(&r.from_send, 99.0)),
            own_added(&http, &url, 50.0).await?,
            own_added(&http, &url, 99.0).await?,
            r.failed
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
