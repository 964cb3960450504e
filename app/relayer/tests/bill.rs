//! The marketplace never pays a provider more than it charges: each attack on the seam
//! between the API and the provider's bill, performed over HTTP against SIMULATED upstreams
//! that bill what they write (they honour `max_tokens` and `n`, count tool schemas and
//! images, and write 100,000 tokens when nothing bounds them), in every protocol. Each test
//! asserts that the charge covers the provider's bill at the configured price, or that the
//! request was refused before it was sent.

use compux_relayer::config::Protocol;
use compux_relayer::sim::{self, SimHandle, SimOptions};
use serde_json::{json, Value};

mod common;
use common::*;

/// (input, output) credit base units per 1M tokens: the caller's price and the provider's.
const PRICE: (u64, u64) = (1_000_000, 2_000_000);

const KINDS: [(Protocol, &str); 4] = [
    (Protocol::OpenAi, "gpt-sim"),
    (Protocol::Anthropic, "claude-sim-1"),
    (Protocol::Gemini, "gemini-sim-1"),
    (Protocol::Bedrock, "anthropic.claude-sim-v1:0"),
];

/// A provider that writes `completion_tokens` when nothing bounds it (a long answer).
async fn upstream(completion_tokens: u64, ignores_max_tokens: bool) -> SimHandle {
    let opts =
        SimOptions { name: "biller".into(), completion_tokens, ignores_max_tokens, ..Default::default() };
    sim::spawn(opts, any_port()).await.unwrap()
}

/// What the provider bills for the `usage` it reported, at PRICE, rounded up.
fn bill(usage: &Value) -> u64 {
    let (i, o) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    (i * PRICE.0 + o * PRICE.1).div_ceil(1_000_000)
}

struct Answer {
    status: u16,
    charged: Option<u64>,
    body: Value,
}

async fn send(base: &str, body: Value) -> Answer {
    let res = post_chat(base, &body).await;
    let charged = res.headers().get("x-compux-credits-charged").map(|v| v.to_str().unwrap().parse().unwrap());
    let status = res.status().as_u16();
    Answer { status, charged, body: res.json().await.unwrap_or(Value::Null) }
}

/// A gateway in front of `sim` speaking `kind`, over an account holding `balance`.
async fn gateway_for(
    kind: Protocol,
    upstream_model: &str,
    sim: &SimHandle,
    balance: u64,
) -> (String, std::sync::Arc<compux_relayer::Gateway>, tempfile::TempDir) {
    use async_openai::config::Config as _;
    let (client, g, dir) =
        start(config(vec![of(kind, sim, upstream_model, PRICE.0, PRICE.1)]), balance).await;
    (client.config().api_base().to_string(), g, dir)
}

fn hi() -> Value {
    json!([{"role": "user", "content": "Hi"}])
}

/// The shortfall the ledger holds for the account, summed.
async fn shortfall(g: &compux_relayer::Gateway) -> i64 {
    g.ledger.flush().await.unwrap();
    let q = "SELECT CAST(COALESCE(SUM(shortfall_credits), 0) AS BIGINT) FROM usage_records";
    sqlx::query_scalar::<_, i64>(q).fetch_one(g.ledger.pool()).await.unwrap()
}

#[tokio::test]
async fn a_request_without_max_tokens_is_sent_the_bound_its_hold_covers_in_every_protocol() {
    let sim = upstream(100_000, false).await;
    for (kind, model) in KINDS {
        let (base, g, _dir) = gateway_for(kind, model, &sim, 10_000_000).await;
        let a = send(&base, json!({"model": MODEL, "messages": hi()})).await;
        assert_eq!(a.status, 200, "{kind:?}: {}", a.body);
        let usage = &a.body["usage"];
        // The default bound (100 in these tests) went upstream; the provider wrote that much.
        assert_eq!(usage["completion_tokens"], 100, "{kind:?}: {usage}");
        assert_eq!(a.charged, Some(bill(usage)), "{kind:?}: charged the provider's bill exactly");
        assert_eq!(shortfall(&g).await, 0);
    }
}

#[tokio::test]
async fn every_choice_of_n_is_held_and_charged_and_too_many_are_refused_before_sending() {
    let sim = upstream(100_000, false).await;
    let (base, g, _dir) = gateway_for(Protocol::OpenAi, "gpt-sim", &sim, 10_000_000).await;
    let a = send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10, "n": 128})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["choices"].as_array().unwrap().len(), 128);
    assert_eq!(a.body["usage"]["completion_tokens"], 1_280, "the provider billed every choice");
    assert_eq!(a.charged, Some(bill(&a.body["usage"])));
    assert_eq!(shortfall(&g).await, 0);

    // A balance that covers one choice but not 128 is refused before the provider is asked.
    let before = sim.requests();
    let (base, _g, _dir) = gateway_for(Protocol::OpenAi, "gpt-sim", &sim, 100).await;
    let a = send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10, "n": 128})).await;
    assert_eq!(a.status, 402, "{}", a.body);
    let a = send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10, "n": 129})).await;
    assert_eq!((a.status, a.body["error"]["param"].as_str()), (400, Some("n")), "{}", a.body);
    assert_eq!(sim.requests(), before, "nothing refused reached the provider");
}

#[tokio::test]
async fn tool_schemas_and_images_are_held_in_every_protocol() {
    let sim = upstream(20, false).await;
    let schema = "x".repeat(1_900_000);
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": schema,
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let image = json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}});
    let with_images = json!([{"role": "user", "content": [{"type": "text", "text": "What are these?"}, image, image, image]}]);
    for (kind, model) in KINDS {
        let (base, g, _dir) = gateway_for(kind, model, &sim, 10_000_000).await;
        let a =
            send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10, "tools": tools})).await;
        assert_eq!(a.status, 200, "{kind:?}: {}", a.body);
        assert!(
            a.body["usage"]["prompt_tokens"].as_u64().unwrap() > 400_000,
            "the provider billed the schema"
        );
        assert_eq!(a.charged, Some(bill(&a.body["usage"])), "{kind:?}");
        let a = send(&base, json!({"model": MODEL, "messages": with_images, "max_tokens": 10})).await;
        assert_eq!(a.status, 200, "{kind:?}: {}", a.body);
        assert!(a.body["usage"]["prompt_tokens"].as_u64().unwrap() >= 3 * sim::SIM_IMAGE_TOKENS);
        assert_eq!(a.charged, Some(bill(&a.body["usage"])), "{kind:?}");
        assert_eq!(shortfall(&g).await, 0, "{kind:?}");

        // A balance that pays for "Hi" but not for the schema: refused before it is sent.
        let before = sim.requests();
        let (base, _g, _dir) = gateway_for(kind, model, &sim, 1_000).await;
        let a =
            send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10, "tools": tools})).await;
        assert_eq!(a.status, 402, "{kind:?}: {}", a.body);
        assert_eq!(sim.requests(), before, "{kind:?}: the provider was not asked");
        let a = send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10})).await;
        assert_eq!(a.status, 200, "{kind:?}: {}", a.body);
    }
}

#[tokio::test]
async fn inputs_and_options_without_a_price_are_refused_naming_the_field() {
    let sim = upstream(20, false).await;
    let (base, _g, _dir) = gateway_for(Protocol::OpenAi, "gpt-sim", &sim, 10_000_000).await;
    let audio = json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]);
    for (body, param) in [
        (json!({"model": MODEL, "messages": hi(), "service_tier": "priority"}), "service_tier"),
        (json!({"model": MODEL, "messages": hi(), "audio": {"voice": "alloy", "format": "wav"}}), "audio"),
        (json!({"model": MODEL, "messages": hi(), "modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"model": MODEL, "messages": hi(), "prediction": {"type": "content", "content": "x"}}),
            "prediction",
        ),
        (json!({"model": MODEL, "messages": audio}), "messages"),
    ] {
        let a = send(&base, body).await;
        assert_eq!((a.status, a.body["error"]["param"].as_str()), (400, Some(param)), "{}", a.body);
        assert!(a.body["error"]["message"].as_str().unwrap().contains("price"), "{}", a.body);
    }
    // A malformed option is a 400 too (it once panicked and reset the connection).
    let a =
        send(&base, json!({"model": MODEL, "messages": hi(), "stream": true, "stream_options": true})).await;
    assert_eq!((a.status, a.body["error"]["param"].as_str()), (400, Some("stream_options")), "{}", a.body);
    assert_eq!(sim.requests(), 0);
}

#[tokio::test]
async fn a_provider_billing_past_the_hold_is_charged_what_the_account_can_pay_and_the_shortfall_is_never_silent(
) {
    // A provider bug: it ignores max_tokens and writes 100,000 tokens (200,000 credits at
    // PRICE) for a request held at 10 output tokens.
    let sim = upstream(100_000, true).await;
    for (kind, model) in KINDS {
        let (base, g, _dir) = gateway_for(kind, model, &sim, 50_000).await;
        let a = send(&base, json!({"model": MODEL, "messages": hi(), "max_tokens": 10})).await;
        assert_eq!(a.status, 200, "{kind:?}: {}", a.body);
        let cost = bill(&a.body["usage"]);
        assert!(cost > 50_000, "{kind:?}: the provider billed more than the balance: {cost}");
        assert_eq!(a.charged, Some(50_000), "{kind:?}: charged all the account could pay");
        assert_eq!(shortfall(&g).await, cost as i64 - 50_000, "{kind:?}: the rest is in the ledger");
        let metrics = reqwest::get(format!("{}/metrics", base.trim_end_matches("/v1"))).await.unwrap();
        let text = metrics.text().await.unwrap();
        let line =
            text.lines().find(|l| l.starts_with("compux_shortfall_credits_total{")).unwrap_or_default();
        assert!(line.ends_with(&format!(" {}", cost - 50_000)), "{kind:?}: {line}");
        assert_eq!(g.meter.balance(VAULT).available(), 0);
    }
}
