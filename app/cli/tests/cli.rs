//! The `compux` binary itself, as a user runs it: against a `compux localnet` it started.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

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
    std::fs::write(&bad, "base_price = 1\nearly_termination_fee_bps = 0\nhour_multipliers_bps = [10000]\n")
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
