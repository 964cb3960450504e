//! The `compux` binary itself, as a user runs it: against a `compux localnet` it started.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use solana_sdk::pubkey::Pubkey;

const BIN: &str = env!("CARGO_BIN_EXE_compux");

fn compux(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("COMPUX_URL")
        .env_remove("COMPUX_KEYPAIR")
        .output()
        .expect("compux runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "compux failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A localnet on free ports, stopped when dropped.
struct Net(Child, String);

impl Net {
    fn start(ledger: &Path) -> Net {
        let mut child = Command::new(BIN)
            .args(["localnet", "--rpc-port", "0", "--json", "--ledger", ledger.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("compux localnet starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).expect("localnet prints its endpoints");
        Net(child, v["rpc_url"].as_str().unwrap().to_string())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn keygen_airdrop_status_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::start(&dir.path().join("ledger"));
    let wallet = dir.path().join("wallets/startup.json");
    let w = wallet.to_str().unwrap();

    let key = stdout_json(&compux(&["keygen", "-o", w, "--json"]));
    let pubkey = key["pubkey"].as_str().unwrap().to_string();
    assert!(stderr(&compux(&["keygen", "-o", w])).contains("--force"), "never overwrites a wallet silently");

    let drop = stdout_json(&compux(&["airdrop", "2.5", "-k", w, "-u", &net.1, "--json"]));
    assert_eq!(drop["lamports"], 2_500_000_000u64);
    let status = stdout_json(&compux(&["status", "-k", w, "-u", &net.1, "--json"]));
    assert_eq!(
        (status["owner"].as_str(), status["lamports"].as_u64()),
        (Some(pubkey.as_str()), Some(2_500_000_000))
    );
    assert_eq!(status["credit_accounts"], serde_json::json!([]));

    // The operator bootstraps a market from the checked-in configuration.
    let toml = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/market.toml");
    let init = &["admin", "init-market", "--config", toml, "-k", w, "-u", &net.1, "--json"];
    let market = stdout_json(&compux(init));
    assert_eq!(market["relayer"].as_str(), Some(pubkey.as_str()), "the wallet relays by default");
    assert_ne!(market["market"], market["credit_mint"]);
    let again =
        &["admin", "init-market", "--config", toml, "--quote-mint", market["quote_mint"].as_str().unwrap()];
    let err = stderr(&compux(&[&again[..], &["-k", w, "-u", &net.1]].concat()));
    assert!(err.contains("init market failed"), "{err}");
}

#[test]
fn market_files_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = dir.path().join("w.json");
    stdout_json(&compux(&["keygen", "-o", wallet.to_str().unwrap(), "--json"]));
    let bad = dir.path().join("market.toml");
    std::fs::write(&bad, "base_price = 1\nearly_termination_fee_bps = 0\ntransfer_notice_secs = 900\nupdate_delay_secs = 1800\nhour_multipliers_bps = [10000]\n")
        .unwrap();
    // An unreachable URL: the file is rejected before any RPC.
    let args = [
        "admin",
        "init-market",
        "--config",
        bad.to_str().unwrap(),
        "-k",
        wallet.to_str().unwrap(),
        "-u",
        "http://127.0.0.1:1",
    ];
    assert!(stderr(&compux(&args)).contains("needs 24 values"));
    std::fs::write(&bad, "base_price = 1\nsurprise = 2\n").unwrap();
    assert!(stderr(&compux(&args)).contains("not a valid market file"));
}

#[test]
fn bad_wallets_and_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, contents: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    };
    let missing = dir.path().join("none.json");
    assert!(stderr(&compux(&["status", "-k", missing.to_str().unwrap()])).contains("compux keygen"));
    assert!(stderr(&compux(&["status", "-k", &path("short.json", "[1,2,3]")])).contains("holds 3 bytes"));
    assert!(
        stderr(&compux(&["status", "-k", &path("corrupt.json", "{")])).contains("not a Solana keypair file")
    );
    let zero = format!("[{}]", vec!["0"; 64].join(","));
    assert!(stderr(&compux(&["status", "-k", &path("zero.json", &zero)])).contains("invalid ed25519 keypair"));
    assert!(stderr(&compux(&["airdrop", "-1", "-k", &path("x.json", "[]")])).contains("error"));
    assert!(
        stderr(&compux(&["airdrop", "0", "-k", &path("y.json", "[]")])).contains("positive number of SOL")
    );
    let unreachable =
        compux(&["status", "Fe7GLtV51UD7QC4M1tw5nv9PziC4WN7c54gD93dwmHt5", "-u", "http://127.0.0.1:1"]);
    assert!(stderr(&unreachable).contains("cannot reach http://127.0.0.1:1"));
}

/// `compux up` in a temporary data directory, stopped when dropped.
struct Up {
    child: Child,
    summary: Value,
    _dir: tempfile::TempDir,
}

/// Starts `compux up` on free ports in `dir`, with `extra` arguments and environment and
/// stderr going to `stderr`; returns it and its summary once it is up.
fn spawn_up(dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> (Child, Value) {
    // The demo market with a two-day transfer notice: the relayer requires its settlement
    // lag (some tests set a one-day flush timer) to be shorter than the notice.
    let demo = include_str!("../../../migrations/market.toml");
    // The update delay stays at least the notice.
    let market = demo
        .replace("transfer_notice_secs = 900", "transfer_notice_secs = 172800")
        .replace("update_delay_secs = 3600", "update_delay_secs = 345600");
    assert!(
        market.contains("transfer_notice_secs = 172800") && market.contains("update_delay_secs = 345600"),
        "the demo market sets transfer_notice_secs = 900 and update_delay_secs = 3600"
    );
    std::fs::create_dir_all(dir).unwrap();
    let toml = dir.join("market.toml");
    std::fs::write(&toml, market).unwrap();
    let mut child = Command::new(BIN)
        .args(["up", "--rpc-port", "0", "--relayer-port", "0", "--json", "--config"])
        .arg(&toml)
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("compux up starts");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let summary: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("up prints a summary, got {line:?}"));
    (child, summary)
}

/// `compux up`'s terminal shows progress, not the embedded chain's noise: the program's own
/// log lines go to `program.log` in the data directory, and the RPC client's tracing
/// warnings are off by default.
#[test]
fn up_keeps_its_terminal_to_what_matters() {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr.txt");
    let stderr = Stdio::from(std::fs::File::create(&err).unwrap());
    let (mut child, summary) = spawn_up(&dir.path().join("data"), &[], &[], stderr);
    let relayer = summary["relayer_url"].as_str().unwrap();
    let key = summary["api_key"].as_str().unwrap();
    let chat =
        r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}"#;
    assert_eq!(http(relayer, "POST", "/v1/chat/completions", key, chat).0, 200);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(text.contains("buy the startup's demo credits: confirmed"), "progress is shown: {text}");
    for noise in ["tarpc", "OpenTelemetry", "Instruction:", "\x1b["] {
        assert!(!text.contains(noise), "{noise:?} on the terminal:\n{text}");
    }
    let program_log = std::fs::read_to_string(dir.path().join("data/program.log")).unwrap();
    assert!(program_log.contains("Instruction: InitMarket"), "{program_log}");
}

impl Up {
    fn start() -> Up {
        // Settlement only at 1,000 records and refills only by hand: these tests assert
        // exact balances.
        Up::start_with(&["--settle-flush-secs", "86400", "--no-auto-refill"])
    }

    fn start_with(extra: &[&str]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        let (child, summary) = spawn_up(dir.path(), extra, &[], Stdio::null());
        Up { child, summary, _dir: dir }
    }

    fn url(&self) -> &str {
        self.summary["rpc_url"].as_str().unwrap()
    }

    fn wallet(&self, name: &str) -> (&str, &str) {
        let w = &self.summary["wallets"][name];
        (w["keypair"].as_str().unwrap(), w["pubkey"].as_str().unwrap())
    }

    /// Runs compux as `who` against this chain.
    fn run(&self, who: &str, args: &[&str]) -> Output {
        let (keypair, _) = self.wallet(who);
        compux(&[&["-u", self.url(), "-k", keypair], args].concat())
    }

    fn json(&self, who: &str, args: &[&str]) -> Value {
        stdout_json(&self.run(who, &[args, &["--json"]].concat()))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a plain socket: (status, headers, body), or the I/O error.
fn http_raw(
    url: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(host)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((status, head.to_lowercase(), body.to_string()))
}

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(url: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http_raw(url, method, path, key, body).unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The caller's vault balance on chain as the relayer first sees it (waits up to 30 s for the
/// first snapshot), before any request.
fn balance_before_use(relayer: &str, key: &str) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, usage) = http(relayer, "GET", "/v1/usage", key, "");
        let onchain = usage["balance"].as_array().and_then(|b| b.last()).and_then(|v| v["onchain"].as_u64());
        match onchain {
            Some(n) if n > 0 => return n,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            _ => panic!("the relayer never saw the vault's balance: {usage}"),
        }
    }
}

/// Waits (up to 20 s) until the relayer's view of `source` in the caller's balance, as
/// `GET /v1/usage` shows it, satisfies `ok`; returns that view.
fn relayer_source(relayer: &str, key: &str, source: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, usage) = http(relayer, "GET", "/v1/usage", key, "");
        let found =
            usage["balance"].as_array().and_then(|b| b.iter().find(|s| s["source"] == source).cloned());
        match found {
            Some(view) if ok(&view) => return view,
            _ if std::time::Instant::now() > deadline => {
                panic!("the relayer never saw {source} as expected: {usage}")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

fn facility_status(up: &Up, who: &str, facility: &str) -> String {
    let status = up.json(who, &["status"]);
    let f = status["facilities"].as_array().unwrap().iter().find(|f| f["address"] == facility);
    f.map_or("closed".into(), |f| f["status"].as_str().unwrap().to_string())
}

#[test]
fn every_role_through_the_binary_then_the_auditor_catches_a_corrupted_vault() {
    let up = Up::start();
    let (_, startup) = up.wallet("startup");

    // The relayer `up` started serves the startup's key from its on-chain credits.
    let (relayer, key) =
        (up.summary["relayer_url"].as_str().unwrap(), up.summary["api_key"].as_str().unwrap());
    let chat = r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 50}"#;
    let (status, reply) = http(relayer, "POST", "/v1/chat/completions", key, chat);
    assert_eq!(status, 200, "{reply}");
    assert!(reply["choices"][0]["message"]["content"].as_str().unwrap().contains("simulated"));
    let (status, usage) = http(relayer, "GET", "/v1/usage", key, "");
    assert_eq!((status, usage["data"][0]["requests"].as_u64()), (200, Some(1)));
    let by_provider =
        up.json("startup", &["usage", "--relayer", relayer, "--api-key", key, "--by", "provider"]);
    assert_eq!(by_provider["data"][0]["provider"], "sim-economy (simulated)");
    assert_eq!(by_provider["data"][0]["requests"], 1);
    let table = up.run("startup", &["usage", "--relayer", relayer, "--api-key", key]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("credit_vault") && table.contains("total: "), "{table}");
    let bad =
        stderr(&up.run("startup", &["usage", "--relayer", relayer, "--api-key", key, "--by", "colour"]));
    assert!(bad.contains("400") && bad.contains("group_by"), "{bad}");
    let (status, err) = http(relayer, "POST", "/v1/chat/completions", "sk-nope", chat);
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    // The same model through the provider that speaks Anthropic's protocol, translated.
    let premium = r#"{"model": "compux-sim-chat", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}], "max_tokens": 50, "provider": {"only": ["sim-premium (anthropic protocol) (simulated)"]}}"#;
    let (status, reply) = http(relayer, "POST", "/v1/chat/completions", key, premium);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert!(reply["choices"][0]["message"]["content"].as_str().unwrap().contains("[sim-premium]"), "{reply}");
    assert!(reply["id"].as_str().unwrap().starts_with("msg_sim_"), "served by the Messages API: {reply}");
    let standard = premium.replace("sim-premium (anthropic protocol)", "sim-standard (gemini protocol)");
    let (status, reply) = http(relayer, "POST", "/v1/chat/completions", key, &standard);
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["choices"][0]["message"]["content"].as_str().unwrap().contains("[sim-standard]"),
        "{reply}"
    );
    assert!(reply["id"].as_str().unwrap().starts_with("gemini-sim-"), "served by the Gemini API: {reply}");
    let reserve = premium.replace("sim-premium (anthropic protocol)", "sim-reserve (bedrock protocol)");
    let (status, reply) = http(relayer, "POST", "/v1/chat/completions", key, &reserve);
    assert_eq!(status, 200, "signed with the demo's AWS credentials: {reply}");
    assert!(reply["choices"][0]["message"]["content"].as_str().unwrap().contains("[sim-reserve]"), "{reply}");
    assert!(reply["id"].as_str().unwrap().starts_with("bedrock-"), "served by the Converse API: {reply}");

    // Startup: standard and reserved credits, on top of the 1,000 (+5 % bulk bonus) `up` bought.
    let start = up.json("startup", &["status"])["credit_accounts"][0]["credits"].as_u64().unwrap();
    assert_eq!(start, 1_050_000_000, "1,000 demo credits and the 5 % bulk bonus");
    assert_eq!(up.json("startup", &["buy", "100"])["balance"], start + 100_000_000);
    assert_eq!(up.json("startup", &["reserve", "--credits-per-period", "10", "--periods", "3"])["nonce"], 0);
    assert_eq!(up.json("startup", &["claim", "0"])["balance"], start + 110_000_000);
    let slippage = stderr(&up.run("startup", &["buy", "5", "--max-quote", "0.000001"]));
    assert!(
        slippage.contains("SlippageExceeded") && slippage.contains("what to do"),
        "the program error is named, with what to do: {slippage}"
    );

    // The issue's attack, as a new user would try it: one person lending to itself at 5x,
    // no interest, one 60-second installment, everything upfront. The market's cap refuses it.
    let (_, lender) = up.wallet("lender");
    let greedy = [
        "lender",
        "offer",
        "--borrower",
        lender,
        "--principal",
        "100",
        "--multiplier-bps",
        "50000",
        "--apr-bps",
        "0",
        "--installments",
        "1",
        "--period",
        "60s",
        "--upfront-bps",
        "10000",
        "--tranches",
        "0",
    ];
    let refused = stderr(&up.run("lender", &greedy));
    assert!(refused.contains("MultiplierAboveCap") && refused.contains("what to do"), "{refused}");
    let capped = [&greedy[..6], &["--multiplier-bps", "15000"], &greedy[8..]].concat();
    let refused = stderr(&up.run("lender", &capped));
    assert!(refused.contains("TermOutsideMarketBounds"), "{refused}");

    // A facility repaid early and closed at maturity: its unused credits become standard
    // credits, never before the end of the financing period.
    let offer = &["lender", "offer", "--borrower", startup, "--principal", "1000"];
    let f1 = up.json("lender", offer)["facility"].as_str().unwrap().to_string();
    assert_eq!(up.json("startup", &["borrower", "accept", &f1])["status"], "Active");
    assert_eq!(up.json("startup", &["borrower", "repay", &f1, "all"])["status"], "Repaid");
    let early = stderr(&up.run("startup", &["borrower", "close", &f1]));
    assert!(early.contains("NotMatured"), "{early}");
    // At maturity the settlement window of the usage metered before it comes first (a day).
    up.json("startup", &["dev", "warp", "--by", "120d"]);
    let early = stderr(&up.run("startup", &["borrower", "close", &f1]));
    assert!(early.contains("SettlementWindowOpen"), "{early}");
    up.json("startup", &["dev", "warp", "--by", "2d"]);
    up.json("startup", &["borrower", "close", &f1]);
    assert_eq!(facility_status(&up, "startup", &f1), "Closed", "waits for the lender's withdrawal");
    let withdrawn = up.json("lender", &["lender", "withdraw", &f1]);
    assert_eq!(withdrawn["status"], "Closed", "the vault closed; the facility stays as a tombstone");
    let credits = up.json("startup", &["status"])["credit_accounts"][0]["credits"].as_u64().unwrap();
    assert_eq!(
        credits,
        start + 110_000_000 + 100_000_000_000,
        "1000 quote at 0.01 a credit: the principal's worth"
    );

    // A facility that defaults: stale until refreshed, frozen, recovered after the window.
    let f2 = up.json("lender", offer)["facility"].as_str().unwrap().to_string();
    up.json("startup", &["borrower", "accept", &f2]);
    // The relayer finds the facility on chain and spends its released credits first...
    let view = relayer_source(relayer, key, &f2, |v| v["available"].as_u64() > Some(0));
    assert_eq!((view["kind"].as_str(), view["frozen"].as_bool()), (Some("facility"), Some(false)));
    assert!(
        stderr(&up.run("lender", &["lender", "freeze", &f2])).contains("NotFreezable"),
        "current: no freeze"
    );
    up.json("startup", &["dev", "warp", "--by", "52d"]);
    let audit = up.run("startup", &["audit", "--json"]);
    assert!(!audit.status.success(), "a defaulted facility left unrefreshed is a violation");
    assert_eq!(facility_status(&up, "lender", &f2), "Active", "stored status is stale");
    assert_eq!(up.json("lender", &["lender", "freeze", &f2])["status"], "Frozen");
    // ...and stops spending them once the lender freezes it.
    relayer_source(relayer, key, &f2, |v| v["frozen"] == true);
    assert!(stderr(&up.run("lender", &["lender", "recover", &f2])).contains("SettlementWindowOpen"));
    up.json("startup", &["dev", "warp", "--by", "3d"]);
    assert_eq!(up.json("lender", &["lender", "recover", &f2])["status"], "Recovered");
    let healthy = up.json("admin", &["audit"]);
    assert_eq!(
        (healthy["ok"].as_bool(), healthy["violations"].as_array().map(Vec::len)),
        (Some(true), Some(0))
    );

    // Corrupt the chain behind the program's back (the localnet's compux_setAccount): the
    // auditor must object to each economic invariant by name; restored after each.
    let client = solana_rpc_client::rpc_client::RpcClient::new(up.url().to_string());
    let market: Pubkey = up.summary["market"].as_str().unwrap().parse().unwrap();
    let treasury = compux_sdk::pda::treasury(&market).0;
    let f2: Pubkey = f2.parse().unwrap();
    #[allow(clippy::type_complexity)]
    let corruptions: [(&str, Pubkey, Box<dyn Fn(&mut Vec<u8>)>); 4] = [
        (
            "minted",
            f2,
            Box::new(|d| {
                edit::<compux_sdk::state::Facility>(d, |f| {
                    f.accepted_cap_bps = f.terms.credit_multiplier_bps - 1
                })
            }),
        ),
        (
            "earmarks",
            market,
            Box::new(|d| edit::<compux_sdk::state::Market>(d, |m| m.reserve_earmarked += 1)),
        ),
        (
            "recovery reserve holds",
            market,
            Box::new(|d| edit::<compux_sdk::state::Market>(d, |m| m.reserve_funded += 1)),
        ),
        ("treasury holds", treasury, Box::new(|d| d[64..72].copy_from_slice(&1u64.to_le_bytes()))),
    ];
    for (named, address, corrupt) in corruptions {
        let original = client.get_account(&address).unwrap();
        let mut bad = original.clone();
        corrupt(&mut bad.data);
        set_account(&client, &address, &bad);
        let audit = up.run("admin", &["audit"]);
        let report = String::from_utf8_lossy(&audit.stdout);
        assert!(
            !audit.status.success() && report.contains("VIOLATION") && report.contains(named),
            "{named}: {report}"
        );
        set_account(&client, &address, &original);
        assert_eq!(up.json("admin", &["audit"])["ok"], true, "restored");
    }

    // One vault's balance: the supply check objects.
    let vault: Pubkey = {
        let ca = &up.json("startup", &["status"])["credit_accounts"][0];
        let address: Pubkey = ca["address"].as_str().unwrap().parse().unwrap();
        let data = client.get_account_data(&address).unwrap();
        Pubkey::try_from(&data[8 + 64..8 + 96]).unwrap()
    };
    let mut account = client.get_account(&vault).unwrap();
    account.data[64..72].copy_from_slice(&1u64.to_le_bytes());
    set_account(&client, &vault, &account);
    let corrupted = up.run("admin", &["audit"]);
    let report = String::from_utf8_lossy(&corrupted.stdout);
    assert!(!corrupted.status.success() && report.contains("VIOLATION: credit supply"), "{report}");
}

/// Decodes a program account, edits it, encodes it back in place.
/// The transaction asked for the compute units its instructions can use at most (the SDK's
/// table), offered `micro_lamports` per unit, and paid exactly the signature fee plus that.
fn priced_as_asked(up: &Up, signature: &str, micro_lamports: u64) {
    use solana_compute_budget_interface::ComputeBudgetInstruction as Budget;
    let client = solana_rpc_client::rpc_client::RpcClient::new(up.url().to_string());
    let encoding = solana_transaction_status_client_types::UiTransactionEncoding::Base64;
    let sent = client.get_transaction(&signature.parse().unwrap(), encoding).unwrap();
    let tx = sent.transaction.transaction.decode().expect("a base64 transaction");
    let keys = tx.message.static_account_keys();
    let ixs: Vec<solana_sdk::instruction::Instruction> = tx
        .message
        .instructions()
        .iter()
        .map(|ix| {
            solana_sdk::instruction::Instruction::new_with_bytes(
                keys[ix.program_id_index as usize],
                &ix.data,
                vec![],
            )
        })
        .collect();
    let limit = compux_sdk::compute::transaction_limit(&ixs[2..], 2);
    assert_eq!(ixs[0].data, Budget::set_compute_unit_limit(limit).data);
    assert_eq!(ixs[1].data, Budget::set_compute_unit_price(micro_lamports).data);
    assert!(limit < 100_000, "a purchase asks for {limit} units");
    let fee = sent.transaction.meta.unwrap().fee;
    assert_eq!(
        fee,
        5_000 + (limit as u64 * micro_lamports).div_ceil(1_000_000),
        "one signature and the priority fee"
    );
}

fn edit<T: anchor_lang::AccountDeserialize + anchor_lang::AccountSerialize>(
    data: &mut Vec<u8>,
    f: impl Fn(&mut T),
) {
    let mut state: T = compux_sdk::decode::account(data).unwrap();
    f(&mut state);
    let len = data.len();
    data.clear();
    state.try_serialize(data).unwrap();
    data.resize(len, 0);
}

/// Overwrites an account on the localnet (its dev method `compux_setAccount`).
fn set_account(
    client: &solana_rpc_client::rpc_client::RpcClient,
    address: &Pubkey,
    account: &solana_sdk::account::Account,
) {
    let ui = serde_json::json!({
        "lamports": account.lamports,
        "data": [base64::Engine::encode(&base64::prelude::BASE64_STANDARD, &account.data), "base64"],
        "owner": account.owner.to_string(),
        "executable": false,
        "rentEpoch": account.rent_epoch,
        "space": account.data.len(),
    });
    let ok: bool = client
        .send(
            solana_rpc_client_api::request::RpcRequest::Custom { method: "compux_setAccount" },
            serde_json::json!([address.to_string(), ui]),
        )
        .unwrap();
    assert!(ok);
}

#[test]
fn operator_and_startup_commands_through_the_binary() {
    let up = Up::start();
    let (_, lender) = up.wallet("lender");
    let credits =
        |who: &str| up.json(who, &["status"])["credit_accounts"][0]["credits"].as_u64().unwrap_or(0);
    let reserve = || up.json("admin", &["audit"])["recovery_reserve"].as_u64().unwrap();

    // A wallet gets its own API key from the relayer by signing a challenge; revokes it.
    let relayer = up.summary["relayer_url"].as_str().unwrap().to_string();
    // Only for a credit account open on chain: the admin has none.
    let refused = stderr(&up.run("admin", &["keys", "create", "--relayer", &relayer]));
    assert!(refused.contains("no credit account") && refused.contains("compux buy"), "{refused}");
    let issued = up.json("startup", &["keys", "create", "--relayer", &relayer, "--requests-per-minute", "1"]);
    let key = issued["key"].as_str().unwrap();
    let chat =
        r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}"#;
    assert_eq!(http(&relayer, "POST", "/v1/chat/completions", key, chat).0, 200);
    let (status, limited) = http(&relayer, "POST", "/v1/chat/completions", key, chat);
    assert_eq!((status, limited["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")));
    let listed = up.json("startup", &["keys", "list", "--relayer", &relayer]);
    assert_eq!(listed["data"][0]["id"], issued["id"]);
    assert_eq!(listed["data"][0]["requests_per_minute"], 1);
    // Low-balance webhooks are managed with a key without limits (a limited key is one handed
    // to a service: it spends, it manages nothing).
    let limited = ["--relayer", relayer.as_str(), "--api-key", key];
    let add =
        [&["alerts", "add", "--url", "http://127.0.0.1:9/hook", "--below", "2.5"][..], &limited].concat();
    let refused = stderr(&up.run("startup", &add));
    assert!(refused.contains("403") && refused.contains("without limits"), "{refused}");
    let manager = up.json("startup", &["keys", "create", "--relayer", &relayer]);
    let api = ["--relayer", relayer.as_str(), "--api-key", manager["key"].as_str().unwrap()];
    let add = [&["alerts", "add", "--url", "http://127.0.0.1:9/hook", "--below", "2.5"][..], &api].concat();
    let added = up.json("startup", &add);
    assert_eq!(added["below"], 2_500_000);
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = added["id"].as_str().unwrap();
    assert_eq!(up.json("startup", &[&["alerts", "list"][..], &api].concat())["data"][0]["id"], id);
    let remove = [&["alerts", "remove", id][..], &api].concat();
    up.json("startup", &remove);
    assert!(stderr(&up.run("startup", &remove)).contains("404"));
    let bad = [&["alerts", "add", "--url", "nope", "--below", "1"][..], &api].concat();
    assert!(stderr(&up.run("startup", &bad)).contains("url"));
    up.json("startup", &["keys", "revoke", issued["id"].as_str().unwrap(), "--relayer", &relayer]);
    assert_eq!(http(&relayer, "POST", "/v1/chat/completions", key, chat).0, 401, "revoked at once");

    // Pause stops purchases with a message that says what to do; resume restores them.
    up.json("admin", &["admin", "pause"]);
    let paused = stderr(&up.run("startup", &["buy", "1"]));
    assert!(paused.contains("MarketPaused") && paused.contains("admin resume"), "{paused}");
    up.json("admin", &["admin", "resume"]);
    let before = credits("startup");
    let bought = up.json("startup", &["buy", "1", "--priority-fee", "1000"]);
    assert_eq!(credits("startup"), before + 1_000_000);
    priced_as_asked(&up, bought["signature"].as_str().unwrap(), 1000);

    // Only the admin may operate the market.
    assert!(stderr(&up.run("startup", &["admin", "pause"])).contains("NotAdmin"));
    let toml = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/market.toml");
    up.json("admin", &["admin", "set-prices", "--config", toml]);
    up.json("admin", &["admin", "set-relayer", lender]);
    // A parameter change waits the market's update delay on chain, shown to every member of
    // the market and in the audit; nobody can apply it early.
    let status = up.json("startup", &["status"]);
    let pending = &status["pending_market_changes"][0]["change"];
    let fields: Vec<&str> =
        pending["changes"].as_array().unwrap().iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(fields, ["relayer"], "the same prices again change nothing: {pending}");
    assert_eq!(up.json("admin", &["audit"])["pending_change"]["effective_at"], pending["effective_at"]);
    let early = stderr(&up.run("lender", &["crank", "apply-update"]));
    assert!(early.contains("applies from") && early.contains("try again then"), "{early}");
    let funded = reserve();
    let (_, admin) = up.wallet("admin");
    let empty = stderr(&up.run("admin", &["admin", "fund-reserve", "10"]));
    assert!(
        empty.contains("SPL Token error InsufficientFunds") && empty.contains("fund it with quote tokens"),
        "up put all the admin's quote in the reserve: {empty}"
    );
    up.json("admin", &["admin", "mint-quote", admin, "10"]);
    up.json("admin", &["admin", "fund-reserve", "10"]);
    assert_eq!(reserve(), funded + 10_000_000, "10 quote tokens of 6 decimals");

    // Transfers between credit accounts of the market: announced first (the relayer stops
    // spending them), moved after the market's notice.
    up.json("lender", &["buy", "1"]);
    let account =
        up.json("startup", &["status"])["credit_accounts"][0]["address"].as_str().unwrap().to_string();
    let api_key = up.summary["api_key"].as_str().unwrap().to_string();
    let vault = |v: &Value| v["onchain"].as_u64().unwrap();
    let before = vault(&relayer_source(&relayer, &api_key, &account, |_| true));
    let announced = up.json("startup", &["transfer", "2.5", lender]);
    assert_eq!(announced["announced"], 2_500_000, "{announced}");
    // The relayer stops spending announced credits as soon as it sees the notice, and the
    // audit shows it.
    relayer_source(&relayer, &api_key, &account, |v| vault(v) + 2_500_000 <= before);
    let notices = &up.json("admin", &["audit"])["transfer_notices"];
    assert_eq!(
        (notices[0]["credit_account"].as_str(), &notices[0]["amount"]),
        (Some(account.as_str()), &serde_json::json!(2_500_000))
    );
    let early = stderr(&up.run("startup", &["transfer", "2.5", lender]));
    assert!(early.contains("may move only from") && early.contains("run this command again"), "{early}");
    assert_eq!(credits("lender"), 1_000_000, "nothing moved before the notice");
    up.json("startup", &["dev", "warp", "--to", &announced["ready_at"].to_string()]);
    up.json("startup", &["transfer", "2.5", lender]);
    assert_eq!(credits("lender"), 3_500_000);
    // A notice can be withdrawn: the credits are the relayer's to spend again.
    up.json("startup", &["transfer", "1", lender]);
    assert_eq!(up.json("admin", &["audit"])["transfer_notices"].as_array().unwrap().len(), 1);
    up.json("startup", &["transfer", "--cancel"]);
    assert_eq!(up.json("admin", &["audit"])["transfer_notices"], serde_json::json!([]));

    // A reservation cancelled: gone from the status.
    let r = up.json("startup", &["reserve", "--credits-per-period", "5", "--periods", "2"]);
    let nonce = r["nonce"].as_u64().unwrap().to_string();
    up.json("startup", &["cancel-reservation", &nonce]);
    assert_eq!(up.json("startup", &["status"])["reservations"], serde_json::json!([]));

    // Auto-refill: below its threshold, anyone's crank buys the configured credits.
    let before = credits("startup");
    up.json("startup", &auto_refill_of_10("5"));
    let (_, startup) = up.wallet("startup");
    up.json("lender", &["crank", "auto-refill", startup]);
    assert_eq!(credits("startup"), before + 10_000_000);
    up.json("startup", &["auto-refill", "--off"]);
    assert!(stderr(&up.run("lender", &["crank", "auto-refill", startup]))
        .contains("auto-refill is not configured"));
}

/// Eight clients sending chat requests back to back, each keeping the request id of every
/// 200 it gets; any other status fails the test. A connection error ends a client: the
/// relayer is gone, or its listener closed (refused, or reset before it accepted).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(relayer: &str, key: &str) -> Load {
        let chat = r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}"#;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients = (0..8)
            .map(|_| {
                let (relayer, key, stop) = (relayer.to_string(), key.to_string(), stop.clone());
                let answers = answers.clone();
                std::thread::spawn(move || {
                    let mut answered = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match http_raw(&relayer, "POST", "/v1/chat/completions", &key, chat) {
                            Ok((200, head, _)) => {
                                let id = head.lines().find_map(|l| l.strip_prefix("x-compux-request-id: "));
                                answered.push(id.expect("every reply has a request id").trim().to_string());
                                answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok((status, _, body)) => panic!("a request got {status}: {body}"),
                            Err(_) => break,
                        }
                    }
                    answered
                })
            })
            .collect();
        // Waits for the load to be under way (not a fixed time: a loaded machine is slow).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while answers.load(std::sync::atomic::Ordering::Relaxed) <= 50 {
            assert!(std::time::Instant::now() < deadline, "the load never got going");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Load { stop, clients }
    }

    /// Every answered request id (after at least 50 answers: the load ran).
    fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answered: Vec<String> = self.clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
        assert!(answered.len() > 50, "the load ran: {} answered", answered.len());
        answered
    }
}

#[test]
fn sigterm_under_load_finishes_every_started_request_records_it_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr.txt");
    let stderr = Stdio::from(std::fs::File::create(&err).unwrap());
    let (mut child, summary) = spawn_up(dir.path(), &[], &[], stderr);
    let relayer = summary["relayer_url"].as_str().unwrap().to_string();
    let key = summary["api_key"].as_str().unwrap().to_string();
    let load = Load::start(&relayer, &key);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    let answered = load.stop();
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "exit {status:?}: {text}");
    assert!(text.contains("SIGTERM") && text.contains("every request finished and recorded"), "{text}");

    // Read the ledger as it is, without replaying any journal: every answered request is
    // in it, once, and nothing else.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("relayer-ledger.sqlite").display());
    let ids: Vec<String> = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT request_id FROM usage_records").fetch_all(&pool).await.unwrap()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "no request recorded twice");
    let mut expected = answered.clone();
    expected.sort();
    assert_eq!(sorted, expected, "exactly the answered requests are recorded");
}

#[test]
fn after_kill_9_under_load_every_answered_request_has_exactly_one_usage_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let (mut child, summary) = spawn_up(dir.path(), &[], &[], Stdio::null());
    let relayer = summary["relayer_url"].as_str().unwrap().to_string();
    let key = summary["api_key"].as_str().unwrap().to_string();
    let chat =
        r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}"#;
    let bought = balance_before_use(&relayer, &key);
    let load = Load::start(&relayer, &key);
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    let answered = load.stop();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger_path = dir.path().join("relayer-ledger.sqlite");
    let (ids, charged) = runtime.block_on(async {
        let ledger = compux_relayer::Ledger::open(&ledger_path).await.unwrap();
        (ledger.request_ids().await.unwrap(), ledger.total_charged().await.unwrap())
    });
    let recorded: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(recorded.len(), ids.len(), "no request recorded twice");
    let missing: Vec<&String> = answered.iter().filter(|id| !recorded.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no record: {missing:?}",
        missing.len(),
        answered.len()
    );
    // Requests recorded but never answered (in flight at the kill) are at most one per client.
    assert!(ids.len() <= answered.len() + 8, "{} records for {} answers", ids.len(), answered.len());

    // Restarted, the relayer still counts those charges against the balance, and logs one
    // JSON line per request.
    let (child, summary) = spawn_up(
        dir.path(),
        &["--log-format", "json"],
        &[("COMPUX_LOG", "compux_relayer=info")],
        std::fs::File::create(&log).unwrap().into(),
    );
    let _up = Up { child, summary: summary.clone(), _dir: tempfile::tempdir().unwrap() };
    let relayer = summary["relayer_url"].as_str().unwrap();
    let (status, usage) = http(relayer, "GET", "/v1/usage", &key, "");
    assert_eq!(status, 200, "{usage}");
    let vault = usage["balance"].as_array().unwrap().last().unwrap().clone();
    // Whatever either settler burned before or after the kill, every charge is still counted
    // exactly once: burned (no longer on chain) or unsettled (held back from the balance).
    // `onchain` and `unsettled` change together in one snapshot, so this holds in any order.
    let (onchain, unsettled) = (vault["onchain"].as_u64().unwrap(), vault["unsettled"].as_u64().unwrap());
    assert_eq!(
        (bought - onchain) + unsettled,
        charged,
        "unsettled charges survive the restart: burned + unsettled == charged ({usage})"
    );
    assert_eq!(vault["available"].as_u64(), Some(bought - charged), "{usage}");
    let (status, head, _) = http_raw(relayer, "POST", "/v1/chat/completions", &key, chat).unwrap();
    assert_eq!(status, 200);
    let id = head.lines().find_map(|l| l.strip_prefix("x-compux-request-id: ")).unwrap().trim().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == id.as_str());
        match found {
            Some(v) => break v,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            None => panic!("no JSON log line for {id}: {text}"),
        }
    };
    assert_eq!(
        (line["target"].as_str(), line["route"].as_str(), line["status"].as_u64()),
        (Some("compux_relayer::access"), Some("/v1/chat/completions"), Some(200))
    );
    assert!(
        line["provider"].as_str().unwrap().contains("simulated") && line["timestamp"].is_string(),
        "{line}"
    );

    // Settlement: whatever the kill interrupted (a batch cut and not sent, sent and not
    // marked), every credit charged is burned on chain exactly once.
    let account: solana_sdk::pubkey::Pubkey = vault["source"].as_str().unwrap().parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let usage = loop {
        let (_, usage) = http(relayer, "GET", "/v1/usage?group_by=none", &key, "");
        // Burned as the balance shows it, and marked settled in the ledger (the mark follows
        // the burn: both are waited for).
        let row = &usage["data"][0];
        if usage["balance"].as_array().unwrap().last().unwrap()["unsettled"] == 0
            && row["settled_credits"] == row["credits"]
        {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "never fully settled: {usage}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let charged = usage["data"][0]["credits"].as_u64().unwrap();
    let rpc_url = summary["rpc_url"].as_str().unwrap();
    let rpc = solana_rpc_client::nonblocking::rpc_client::RpcClient::new(rpc_url.into());
    let state: compux_sdk::state::CreditAccount =
        runtime.block_on(compux_client::fetch::account_state(&rpc, &account)).unwrap().unwrap();
    assert_eq!(
        state.settlement.total_settled, charged,
        "burned on chain == charged in the ledger, to the unit"
    );
    assert!(state.settlement.settled_seq >= 1);
    // The ledger's usage_chain after its last batch is the chain's.
    let (_, list) = http(relayer, "GET", &format!("/v1/settlement/batches?source={account}"), "", "");
    let last = list["data"].as_array().unwrap().last().unwrap().clone();
    let hex: String = state.settlement.usage_chain.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        (last["seq"].as_u64(), last["usage_chain"].as_str()),
        (Some(state.settlement.settled_seq), Some(hex.as_str()))
    );
    // Provider spend over settled burns reconciles with the chain to the unit.
    let spend = stdout_json(&compux(&[
        "usage",
        "--relayer",
        relayer,
        "--api-key",
        &key,
        "--by",
        "provider",
        "--settled",
        "--json",
    ]));
    let rows = spend["data"].as_array().unwrap();
    let burned: u64 = rows.iter().map(|r| r["credits"].as_u64().unwrap()).sum();
    assert_eq!(burned, state.settlement.total_settled, "{spend}");
    assert!(rows.iter().all(|r| r["margin"].as_i64()
        == Some(r["credits"].as_i64().unwrap() - r["provider_credits"].as_i64().unwrap())));
    // Every receipt of the period, exported: each answered request is there, burned.
    let export = compux(&["usage", "--relayer", relayer, "--api-key", &key, "--receipts"]);
    assert!(export.status.success());
    let lines: Vec<Value> =
        String::from_utf8_lossy(&export.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let exported: std::collections::HashMap<&str, &Value> =
        lines.iter().map(|l| (l["receipt"].as_str().unwrap(), l)).collect();
    assert!(answered.iter().all(|id| exported.get(id.as_str()).is_some_and(|l| l["settled"] == true)));

    // Any answered request's receipt proves its burn from the chain.
    let receipt = &answered[answered.len() / 2];
    let proved =
        stdout_json(&compux(&["audit", "prove", receipt, "--relayer", relayer, "-u", rpc_url, "--json"]));
    assert_eq!(proved["ok"], true, "{proved}");
    let missing = compux(&["audit", "prove", "no-such-receipt", "--relayer", relayer, "-u", rpc_url]);
    assert!(stderr(&missing).contains("404"));
    // A record altered in the relayer's database no longer proves: exit 1, and why.
    let tamper = |delta: i64| {
        runtime.block_on(async {
            let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", ledger_path.display())).await.unwrap();
            sqlx::query(
                "UPDATE usage_records SET credits_charged = credits_charged + ? WHERE request_id = ?",
            )
            .bind(delta)
            .bind(receipt)
            .execute(&db)
            .await
            .unwrap();
            db.close().await;
        })
    };
    tamper(1);
    let altered = stderr(&compux(&["audit", "prove", receipt, "--relayer", relayer, "-u", rpc_url]));
    assert!(altered.contains("FAIL") && altered.contains("Merkle proof"), "{altered}");
    tamper(-1);

    // The audit checks the relayer's published charges against the chain's burns, per
    // source; a ledger that charged less than the chain burned is a violation.
    let audit =
        |extra: &[&str]| compux(&[&["audit", "--relayer", relayer, "-u", rpc_url][..], extra].concat());
    let checked = stdout_json(&audit(&["--json"]));
    assert_eq!(checked["ok"], true, "{checked}");
    let rows = checked["usage_against_chain"].as_array().unwrap();
    let row = rows.iter().find(|u| u["source"] == account.to_string().as_str()).unwrap();
    assert_eq!(
        (row["charged"].as_u64(), row["burned"].as_u64(), row["unburned"].as_u64()),
        (Some(charged), Some(charged), Some(0)),
        "{row}"
    );
    tamper(-1);
    let over = audit(&[]);
    assert!(!over.status.success());
    let text = String::from_utf8_lossy(&over.stdout);
    assert!(text.contains("BurnedMoreThanCharged"), "{text}");
    tamper(1);
    // A relayer that publishes batches other than those burned fails the audit, whatever
    // totals it states: its batches must replay into the chain's usage_chain.
    let tamper_batch = |delta: i64| {
        runtime.block_on(async {
            let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", ledger_path.display())).await.unwrap();
            sqlx::query("UPDATE settle_batches SET window_end = window_end + ? WHERE source = ? AND seq = 1")
                .bind(delta)
                .bind(account.to_string())
                .execute(&db)
                .await
                .unwrap();
            db.close().await;
        })
    };
    tamper_batch(-1);
    let forged = audit(&[]);
    let text = String::from_utf8_lossy(&forged.stdout);
    assert!(!forged.status.success() && text.contains("BatchesDiffer"), "{text}");
    tamper_batch(1);
    assert!(audit(&[]).status.success(), "restored");

    // Every record is in exactly one batch, however the batches were cut (by size or by the
    // flush timer: how large they grew under load is a benchmark's figure,
    // scripts/bench_settlement.sh, not this test's).
    let (_, list) = http(relayer, "GET", &format!("/v1/settlement/batches?source={account}"), "", "");
    let batched: u64 = list["data"].as_array().unwrap().iter().filter_map(|b| b["records"].as_u64()).sum();
    assert_eq!(batched, usage["data"][0]["requests"].as_u64().unwrap(), "{list}");

    // The process dies after the last batch landed but before it was marked: restarted, the
    // settler finds it on chain and marks it, and burns nothing twice.
    let last_seq = state.settlement.settled_seq;
    drop(_up);
    runtime.block_on(async {
        let ledger = compux_relayer::Ledger::open(&ledger_path).await.unwrap();
        let unmarked = sqlx::query("UPDATE settle_batches SET settled_at_ms = NULL WHERE seq = ?")
            .bind(last_seq as i64)
            .execute(ledger.pool())
            .await
            .unwrap();
        assert_eq!(unmarked.rows_affected(), 1);
    });
    let (child, summary) = spawn_up(dir.path(), &[], &[], Stdio::null());
    let _up = Up { child, summary: summary.clone(), _dir: tempfile::tempdir().unwrap() };
    let relayer = summary["relayer_url"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, list) = http(relayer, "GET", &format!("/v1/settlement/batches?source={account}"), "", "");
        let last = list["data"].as_array().unwrap().iter().find(|b| b["seq"] == last_seq).cloned().unwrap();
        if last["settled_at_ms"].is_number() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the unmarked batch was never reconciled: {list}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let rpc = solana_rpc_client::nonblocking::rpc_client::RpcClient::new(
        summary["rpc_url"].as_str().unwrap().into(),
    );
    let after: compux_sdk::state::CreditAccount =
        runtime.block_on(compux_client::fetch::account_state(&rpc, &account)).unwrap().unwrap();
    assert_eq!(
        (after.settlement.settled_seq, after.settlement.total_settled),
        (last_seq, state.settlement.total_settled),
        "found on chain and marked; nothing burned twice"
    );
}

/// POSTs a chat request; returns its receipt.
fn chat_receipt(relayer: &str, key: &str) -> String {
    let chat =
        r#"{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}"#;
    let (status, head, body) = http_raw(relayer, "POST", "/v1/chat/completions", key, chat).unwrap();
    assert_eq!(status, 200, "{body}");
    head.lines()
        .find_map(|l| l.strip_prefix("x-compux-receipt: "))
        .expect("a receipt header")
        .trim()
        .to_string()
}

/// Waits (up to 30 s) until the relayer reports the receipt's batch settled; returns it.
fn settled(relayer: &str, receipt: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, r) = http(relayer, "GET", &format!("/v1/receipts/{receipt}"), "", "");
        if r["batch"]["settled_at_ms"].is_number() {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {r}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn financed_credits_are_burned_from_the_escrow_and_a_frozen_facility_stops_serving() {
    // Balances are refreshed hourly here: the relayer sees the facility, its burns and its
    // freeze only through chain events (logsSubscribe), as they happen.
    let up = Up::start_with(&["--balance-refresh-secs", "3600"]);
    let (_, startup) = up.wallet("startup");
    let (relayer, key) =
        (up.summary["relayer_url"].as_str().unwrap(), up.summary["api_key"].as_str().unwrap());

    // The relayer sends the permissionless auto-refill when the vault is below its threshold.
    let credits = || up.json("startup", &["status"])["credit_accounts"][0]["credits"].as_u64().unwrap();
    let before = credits();
    up.json("startup", &auto_refill_of_10("0.15"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while credits() == before {
        assert!(std::time::Instant::now() < deadline, "the relayer never refilled");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(credits(), before + 10_000_000, "one refill of 10 credits");
    up.json("startup", &["auto-refill", "--off"]);
    let offer = &["lender", "offer", "--borrower", startup, "--principal", "1000"];
    let facility = up.json("lender", offer)["facility"].as_str().unwrap().to_string();
    up.json("startup", &["borrower", "accept", &facility]);
    relayer_source(relayer, key, &facility, |v| v["available"].as_u64() > Some(0));

    // Financed credits are spent first, and burned from the facility's escrow.
    let receipt = chat_receipt(relayer, key);
    let r = settled(relayer, &receipt);
    assert_eq!(r["leaf"]["source"], facility.as_str());
    let proved = up.json("admin", &["audit", "prove", &receipt, "--relayer", relayer]);
    assert_eq!(proved["ok"], true, "{proved}");
    let f = facility_state(&up, &facility);
    assert_eq!(
        f.burned_credits,
        r["leaf"]["credits"].as_u64().unwrap(),
        "the escrow burned exactly the charge"
    );
    assert_eq!(f.settlement.settled_seq, 1);
    assert!(
        up.json("admin", &["audit"])["ok"].as_bool().unwrap(),
        "the market's invariants hold after the burn"
    );

    // Default and freeze: the relayer stops spending the facility, the vault serves.
    up.json("startup", &["dev", "warp", "--by", "52d"]);
    assert_eq!(up.json("lender", &["lender", "freeze", &facility])["status"], "Frozen");
    relayer_source(relayer, key, &facility, |v| v["frozen"] == true);
    let receipt = chat_receipt(relayer, key);
    let r = settled(relayer, &receipt);
    assert_ne!(r["leaf"]["source"], facility.as_str(), "served and burned from the vault");
    assert_eq!(
        facility_state(&up, &facility).settlement.settled_seq,
        1,
        "nothing more from the frozen escrow"
    );
    assert_eq!(up.json("admin", &["audit", "prove", &receipt, "--relayer", relayer])["ok"], true);
}

fn facility_state(up: &Up, facility: &str) -> compux_sdk::state::Facility {
    let rpc = solana_rpc_client::nonblocking::rpc_client::RpcClient::new(up.url().into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let address: solana_sdk::pubkey::Pubkey = facility.parse().unwrap();
    runtime.block_on(compux_client::fetch::account_state(&rpc, &address)).unwrap().unwrap()
}

/// `compux auto-refill` of 10 credits whenever the vault holds fewer than 100,000, spending
/// at most `cap` quote tokens.
fn auto_refill_of_10(cap: &str) -> [&str; 9] {
    ["auto-refill", "--threshold", "100000", "--refill", "10", "--max-quote-per-refill", "1", "--cap", cap]
}
