//! The harness the gateway's test binaries share: a gateway in front of SIMULATED providers,
//! with its own ledger, the real `async-openai` client pointed at it.
#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::sync::Arc;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use async_openai::Client;
use compux_relayer::config::{Key, Model, Protocol, Provider};
use compux_relayer::domain::ids::{KeyHash, Pubkey, Source};
use compux_relayer::sim::{self, SimHandle, SimOptions};
use compux_relayer::{serve, Config, Gateway, Ledger, Meter};

pub const KEY: &str = "sk-compux-test";
/// The startup's credit account, and its vault as a credit source.
pub const ACCOUNT: Pubkey = Pubkey::new_from_array([42; 32]);
pub const VAULT: Source = Source::Vault(ACCOUNT);
pub const MODEL: &str = "sim-chat";
/// The breaker's cool-down in `gateway`'s configuration: longer than any test runs.
pub const COOLDOWN: std::time::Duration = std::time::Duration::from_secs(600);

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub async fn provider(name: &str, fail_status: Option<u16>) -> SimHandle {
    sim::spawn(
        SimOptions {
            name: name.into(),
            fail_status,
            completion_tokens: 20,
            latency_ms: 0,
            ..Default::default()
        },
        any_port(),
    )
    .await
    .unwrap()
}

/// A provider that answers `latency_ms` after each request.
pub async fn slow(name: &str, latency_ms: u64) -> SimHandle {
    let options = SimOptions { name: name.into(), completion_tokens: 20, latency_ms, ..Default::default() };
    sim::spawn(options, any_port()).await.unwrap()
}

/// Providers as (handle, input price, output price) per 1M tokens.
pub async fn gateway(
    providers: &[(&SimHandle, u64, u64)],
    balance: u64,
) -> (Client<OpenAIConfig>, Arc<Gateway>, tempfile::TempDir) {
    let providers = providers
        .iter()
        .enumerate()
        .map(|(i, (p, input, output))| {
            Provider::new(
                format!("sim-{i} (simulated)"),
                p.base_url(),
                vec![Model::priced(MODEL, *input, *output)],
            )
        })
        .collect();
    let mut config = config(providers);
    // A breaker's cool-down passes only when a test moves the clock (COOLDOWN), and a loaded
    // machine's slow reply is no timeout.
    (config.upstream_timeout_ms, config.breaker_threshold, config.breaker_cooldown_ms) =
        (30_000, 3, COOLDOWN.as_millis() as u64);
    start(config, balance).await
}

/// A configuration serving `providers` on any port, KEY spending from ACCOUNT, and holds
/// of 100 completion tokens when a request names none.
pub fn config(providers: Vec<Provider>) -> Config {
    let mut c = Config::new(any_port(), providers);
    c.default_max_tokens = 100;
    c.keys.push(Key::new(KeyHash::of(KEY), ACCOUNT));
    // No chain here: wallet-issued keys are tested against one through the CLI.
    c.require_credit_account = false;
    // The tests' webhook receivers listen on this machine.
    c.alerts.allow_private_urls = true;
    c
}

/// A gateway from `config` with its own ledger, serving; ACCOUNT holds `balance` on chain.
/// The client uses KEY.
pub async fn start(config: Config, balance: u64) -> (Client<OpenAIConfig>, Arc<Gateway>, tempfile::TempDir) {
    // A clock the tests can move forward (a new UTC day, a breaker's cool-down).
    let meter = Meter::with_clock(compux_relayer::clock::Clock::adjustable());
    meter.set_onchain(VAULT, balance);
    let dir = tempfile::tempdir().unwrap();
    let target = compux_relayer::store::db::test_target(dir.path()).await.unwrap();
    let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
    let g = Gateway::new(config.check().unwrap(), meter, ledger).await.unwrap();
    let addr = serve(g.clone()).await.unwrap();
    let client =
        Client::with_config(OpenAIConfig::new().with_api_base(format!("http://{addr}/v1")).with_api_key(KEY));
    (client, g, dir)
}

/// "Say hello" to MODEL, at most `max_tokens` generated.
pub fn ask(max_tokens: u32) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .messages(vec![ChatCompletionRequestUserMessage::from("Say hello").into()])
        .max_completion_tokens(max_tokens)
        .build()
        .unwrap()
}

/// The worst case `body` holds at a flat price of `per_1m` credit base units per 1M tokens,
/// for `max_tokens`: its prompt bound (`domain/bound.rs`) and its generations.
pub fn worst_of(body: &serde_json::Value, per_1m: u64, max_tokens: u64) -> u64 {
    let b = compux_relayer::domain::bound::of(
        body,
        true,
        false,
        compux_relayer::domain::bound::DEFAULT_IMAGE_TOKENS,
    )
    .unwrap();
    let price = compux_relayer::domain::pricing::Price::flat(per_1m, per_1m);
    compux_relayer::domain::pricing::worst(price, b.prompt_tokens, max_tokens * b.generations).unwrap()
}

/// The worst case of `ask(max_tokens)` at a flat `per_1m`.
pub fn worst(per_1m: u64, max_tokens: u32) -> u64 {
    worst_of(&serde_json::to_value(ask(max_tokens)).unwrap(), per_1m, max_tokens as u64)
}

/// POSTs `body` to the chat completions of the gateway at `base` (its `/v1` URL) with KEY.
pub async fn post_chat(base: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// AWS credentials in the environment, where the Bedrock adapter signs with them and the
/// SIMULATED Bedrock checks its signatures (the same for every test of this binary).
pub fn aws_credentials() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDSIMULATED0000000");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "simulated/secret/key/for/the/tests000000");
    });
}

/// A provider of `kind` at `sim`, serving MODEL as `upstream` at (input, output) per 1M.
pub fn of(kind: Protocol, sim: &SimHandle, upstream: &str, input: u64, output: u64) -> Provider {
    aws_credentials();
    let mut model = Model::priced(MODEL, input, output);
    model.upstream_model = Some(upstream.into());
    let base = match kind {
        Protocol::Gemini => sim.gemini_base_url(),
        Protocol::Bedrock => sim.bedrock_base_url(),
        _ => sim.base_url(),
    };
    let mut p = Provider::new(format!("{upstream} ({kind:?}, simulated)"), base, vec![model]);
    p.kind = kind;
    p
}
