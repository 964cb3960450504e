//! The gateway through the real `async-openai` client, against simulated providers.

use std::sync::Arc;

use async_openai::config::Config as _;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::CreateChatCompletionRequest;
use async_openai::Client;
use compux_relayer::access::keys::Limits;
use compux_relayer::config::{Model, Provider};
use compux_relayer::domain::ids::{KeyHash, Pubkey, Source};
use compux_relayer::domain::pricing::Price;
use compux_relayer::sim::SimHandle;
use compux_relayer::{serve, Config, Gateway, Ledger, Meter};

mod common;
use common::*;

/// A chat request through plain reqwest (for statuses async-openai would retry).
async fn post_hi(client: &Client<OpenAIConfig>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", client.config().api_base()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

fn api_error(e: OpenAIError) -> (u16, Option<String>) {
    match e {
        OpenAIError::ApiError(r) => (r.status_code.as_u16(), r.api_error.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn chat_is_served_by_the_cheapest_provider_and_charged_exactly() {
    let cheap = provider("cheap", None).await;
    let dear = provider("dear", None).await;
    let (client, g, _dir) =
        gateway(&[(&dear, 2_000_000, 8_000_000), (&cheap, 1_000_000, 4_000_000)], 10_000_000).await;

    let models = client.models().list().await.unwrap();
    assert_eq!(models.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![MODEL]);

    let reply = client.chat().create(ask(50)).await.unwrap();
    let usage = reply.usage.expect("usage is passed through");
    assert!(
        reply.choices[0].message.content.as_deref().unwrap().contains("[cheap]"),
        "routed to the cheapest"
    );
    let expected = (usage.prompt_tokens as u64 * 1_000_000 + usage.completion_tokens as u64 * 4_000_000)
        .div_ceil(1_000_000);
    let b = g.meter.balance(VAULT);
    assert_eq!(
        (b.unsettled, b.held),
        (expected, 0),
        "charged the real usage at the serving provider's price"
    );
    assert_eq!((cheap.requests(), dear.requests()), (1, 0));
    assert_eq!(g.ledger.unsettled(VAULT).await.unwrap(), expected, "the ledger holds the same charge");
    let all = compux_relayer::store::ledger::UsageQuery {
        group_by: compux_relayer::store::ledger::Dim::ALL.to_vec(),
        ..Default::default()
    };
    let rows = g.ledger.usage(&ACCOUNT, &all).await.unwrap();
    assert_eq!((rows.len(), rows[0].requests, rows[0].credits), (1, 1, expected));
    assert_eq!(rows[0].provider.as_deref(), Some("sim-1 (simulated)"));
}

#[tokio::test]
async fn failing_provider_is_skipped_and_the_caller_is_charged_once() {
    // A server error, and a redirect (not followed: a paid body is never sent elsewhere).
    for status in [500, 307] {
        let broken = provider("broken", Some(status)).await;
        let backup = provider("backup", None).await;
        let (client, g, _dir) =
            gateway(&[(&broken, 1_000_000, 1_000_000), (&backup, 3_000_000, 3_000_000)], 10_000_000).await;
        let reply = client.chat().create(ask(50)).await.unwrap();
        assert!(reply.choices[0].message.content.as_deref().unwrap().contains("[backup]"), "{status}");
        let usage = reply.usage.unwrap();
        let at_backup = (usage.total_tokens as u64 * 3_000_000).div_ceil(1_000_000);
        assert_eq!(g.meter.balance(VAULT).unsettled, at_backup, "once, at the serving provider's price");
        assert_eq!((broken.requests(), backup.requests()), (1, 1));
    }
}

#[tokio::test]
async fn a_provider_that_took_the_request_and_times_out_is_charged_its_hold_and_not_failed_over() {
    let slow = slow("slow", 60_000).await;
    let backup = provider("backup", None).await;
    let entry = |name: &str, url: String, price: u64| {
        Provider::new(name, url, vec![Model::priced(MODEL, price, price)])
    };
    // The slow provider answers after a minute; its first byte is waited for 3 s (far from
    // both it and a healthy reply on a loaded machine).
    let timing_out = |providers| Config { first_byte_timeout_ms: 3_000, ..config(providers) };
    let both = vec![entry("slow", slow.base_url(), 1_000_000), entry("backup", backup.base_url(), 2_000_000)];
    let (client, g, _dir) = start(timing_out(both), 10_000_000).await;
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 504);
    let charged: u64 = res.headers()["x-compux-credits-charged"].to_str().unwrap().parse().unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("charged its hold") && message.contains("pay twice"), "{message}");
    assert_eq!(backup.requests(), 0, "the slow provider has the work: another would bill it again");
    let b = g.meter.balance(VAULT);
    assert!(charged > 0 && b.unsettled == charged && b.held == 0, "{b:?}");
    assert_eq!(records(&g).await.len(), 1, "recorded like any other request");

    // A provider that cannot be reached never got the request: the next one serves it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let both = vec![entry("down", nowhere, 1_000_000), entry("backup", backup.base_url(), 2_000_000)];
    let (client, g, _dir) = start(timing_out(both), 10_000_000).await;
    let reply = client.chat().create(ask(50)).await.unwrap();
    assert!(reply.choices[0].message.content.as_deref().unwrap().contains("[backup]"));
    let at_backup = (reply.usage.unwrap().total_tokens as u64 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(g.meter.balance(VAULT).unsettled, at_backup, "charged once, at the serving provider's price");
}

/// A caller that hangs up on a non-streamed request does not cancel it: the provider
/// finishes (and bills) it, and it is recorded and charged all the same.
#[tokio::test]
async fn a_caller_that_goes_away_does_not_cancel_the_request_it_is_charged_for() {
    let slow = slow("slow", 1_500).await;
    let (client, g, _dir) = gateway(&[(&slow, 1_000_000, 1_000_000)], 10_000_000).await;
    let base = client.config().api_base().to_string();
    let impatient =
        reqwest::Client::builder().timeout(std::time::Duration::from_millis(300)).build().unwrap();
    let gone = impatient
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10}))
        .send()
        .await;
    assert!(gone.is_err(), "the caller left before the reply");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while records(&g).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the abandoned request was never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = records(&g).await;
    assert_eq!((slow.requests(), r.len()), (1, 1));
    assert!(
        r[0].1 > 0 && g.meter.balance(VAULT).unsettled == r[0].1 as u64,
        "charged what the provider billed"
    );
}

#[tokio::test]
async fn past_its_concurrency_limit_a_replica_answers_503_and_a_keyless_caller_is_refused_before_its_body() {
    let slow = slow("slow", 1_500).await;
    let mut c = config(vec![Provider::new("slow", slow.base_url(), vec![Model::priced(MODEL, 1, 1)])]);
    c.max_concurrent_requests = 2;
    let (client, g, _dir) = start(c, 10_000_000).await;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.chat().create(ask(10)).await })
        })
        .collect();
    // Both hold their credits (1 unit each at this price), so both hold their slots.
    while g.meter.balance(VAULT).held < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    for b in busy {
        b.await.unwrap().unwrap();
    }
    assert_eq!(post_hi(&client).await.status().as_u16(), 200, "the slots came back");
    assert_eq!(slow.requests(), 3, "the refused request never went upstream");

    // A caller without a valid key is answered before its body is read: a body that never
    // ends would otherwise hold the request open.
    let base = client.config().api_base().to_string();
    let endless =
        reqwest::Body::wrap_stream(futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>());
    let res = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth("sk-not-a-key")
        .header("content-type", "application/json")
        .body(endless);
    let res = tokio::time::timeout(std::time::Duration::from_secs(60), res.send()).await;
    let res = res.expect("answered without waiting for the body").unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn errors_have_openai_shape_status_and_code() {
    let up = provider("up", None).await;
    let (client, g, _dir) = gateway(&[(&up, 1_000_000, 1_000_000)], 10).await;

    // 402: the worst case (prompt bound + max_tokens) exceeds the 10 units available.
    let (status, code) = api_error(client.chat().create(ask(1_000)).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (402, Some("insufficient_credits")));
    assert_eq!(g.meter.balance(VAULT).unsettled, 0, "nothing charged");
    assert_eq!(g.ledger.count().await.unwrap(), 0, "nothing recorded");
    assert_eq!(up.requests(), 0, "never sent upstream");

    let mut unknown = ask(5);
    unknown.model = "no-such-model".into();
    assert_eq!(
        api_error(client.chat().create(unknown).await.unwrap_err()),
        (404, Some("model_not_found".into()))
    );

    let stranger = Client::with_config(
        OpenAIConfig::new().with_api_base(client.config().api_base()).with_api_key("sk-wrong"),
    );
    assert_eq!(
        api_error(stranger.chat().create(ask(5)).await.unwrap_err()),
        (401, Some("invalid_api_key".into()))
    );

    // 400: a parameter out of range, named in the error.
    let e = client.chat().create(ask(2_000_000)).await.unwrap_err();
    let OpenAIError::ApiError(r) = e else { panic!("expected an API error") };
    assert_eq!(
        (r.status_code.as_u16(), r.api_error.code.as_deref(), r.api_error.param.as_deref()),
        (400, Some("invalid_value"), Some("max_completion_tokens"))
    );

    // 502: every provider failed with a 5xx; nothing charged.
    let broken = provider("broken", Some(500)).await;
    let (client, g, _dir) = gateway(&[(&broken, 1, 1)], 1_000_000).await;
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("upstream_error"), Some("upstream_unavailable"))
    );
    assert_eq!((g.meter.balance(VAULT).unsettled, g.ledger.count().await.unwrap()), (0, 0));
}

#[tokio::test]
async fn concurrent_requests_never_spend_more_than_the_balance() {
    let up = provider("up", None).await;
    // Each request holds its worst case (its prompt bound + 20 max tokens at 1 unit per
    // token); the balance covers 50.
    let balance = worst(1_000_000, 20) * 50;
    let (client, g, _dir) = gateway(&[(&up, 1_000_000, 1_000_000)], balance).await;
    let served = two_hundred_at_once(&client).await;
    let b = g.meter.balance(VAULT);
    assert!(served >= 50, "at least the 50 the balance covers at worst case were served, got {served}");
    assert!(b.unsettled <= balance, "charged {} > balance {balance}", b.unsettled);
    assert_eq!(b.held, 0);
    assert_eq!(up.requests(), served, "every served request went upstream once");
    assert_eq!(g.ledger.count().await.unwrap(), served, "one record per served request");
    assert_eq!(g.ledger.unsettled(VAULT).await.unwrap(), b.unsettled, "ledger and meter agree to the unit");
}

/// Sends 200 requests of 20 max tokens at once; returns how many were served (the others
/// must be refused for want of credits).
async fn two_hundred_at_once(client: &Client<OpenAIConfig>) -> u64 {
    let calls = (0..200).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.chat().create(ask(20)).await })
    });
    let mut served = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => served += 1,
            Err(e) => assert_eq!(api_error(e), (402, Some("insufficient_credits".into()))),
        }
    }
    served
}

/// Streams `request`, returning the content, the usage chunk if any, and the chunk count.
async fn stream(
    client: &Client<OpenAIConfig>,
    request: CreateChatCompletionRequest,
) -> (String, Option<(u32, u32)>, usize) {
    use futures_util::StreamExt;
    let mut s = client.chat().create_stream(request).await.unwrap();
    let (mut text, mut usage, mut chunks) = (String::new(), None, 0);
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        for c in &chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
        if let Some(u) = chunk.usage {
            assert!(chunk.choices.is_empty(), "the usage chunk has no choices");
            usage = Some((u.prompt_tokens, u.completion_tokens));
        }
    }
    (text, usage, chunks)
}

#[tokio::test]
async fn streams_are_relayed_metered_and_the_usage_chunk_is_the_callers_choice() {
    use async_openai::types::chat::ChatCompletionStreamOptions;
    let up = provider("up", None).await;
    let (client, g, _dir) = gateway(&[(&up, 1_000_000, 2_000_000)], 10_000_000).await;

    // Asked for: the final chunk with empty choices carries the usage, and it is what was charged.
    let mut with_usage = ask(50);
    with_usage.stream_options =
        Some(ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: None });
    let (text, usage, _) = stream(&client, with_usage).await;
    assert_eq!(text, "[up] simulated reply");
    let (i, o) = usage.expect("the usage chunk the caller asked for");
    let first = (i as u64 * 1_000_000 + o as u64 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(g.meter.balance(VAULT).unsettled, first);

    // Not asked for: no usage chunk reaches the caller, yet the request is metered the same.
    let (text, usage, chunks) = stream(&client, ask(50)).await;
    assert_eq!((text.as_str(), usage), ("[up] simulated reply", None));
    assert!(chunks >= 3, "role, words and the finish chunk arrive as chunks");
    assert_eq!(
        g.meter.balance(VAULT),
        compux_relayer::domain::meter::Balance {
            onchain: 10_000_000,
            unsettled: 2 * first,
            held: 0,
            frozen: false
        }
    );
    assert_eq!(g.ledger.count().await.unwrap(), 2);
    assert_eq!(g.ledger.unsettled(VAULT).await.unwrap(), 2 * first, "the ledger has both streams");
}

/// A chat request with a `provider` preferences object, sent raw (OpenAI's SDK types have no
/// such field): (status, provider that served it).
async fn routed(base: &str, provider: serde_json::Value) -> (u16, String) {
    let body = serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "provider": provider});
    let res = post_chat(base, &body).await;
    let status = res.status().as_u16();
    let served =
        res.headers().get("x-compux-provider").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, served)
}

#[tokio::test]
async fn provider_preferences_change_the_route() {
    let (a, b, c) = (provider("a", None).await, provider("b", None).await, provider("c", None).await);
    // sim-0 is the cheapest, sim-2 the dearest.
    let (client, _g, _dir) = gateway(
        &[(&a, 1_000_000, 1_000_000), (&b, 2_000_000, 2_000_000), (&c, 3_000_000, 3_000_000)],
        10_000_000,
    )
    .await;
    let base = client.config().api_base().to_string();
    let name = |i: usize| format!("sim-{i} (simulated)");
    use serde_json::json;
    assert_eq!(routed(&base, json!(null)).await, (200, name(0)), "cheapest by default");
    assert_eq!(routed(&base, json!({"only": [name(2)]})).await, (200, name(2)));
    assert_eq!(routed(&base, json!({"ignore": [name(0)]})).await, (200, name(1)));
    assert_eq!(routed(&base, json!({"order": [name(1), name(0)]})).await, (200, name(1)));
    assert_eq!(
        routed(&base, json!({"max_price": {"prompt": 1_500_000}, "order": [name(2)]})).await,
        (200, name(0)),
        "max_price drops the dearer ones"
    );
    assert_eq!(routed(&base, json!({"only": ["nobody"]})).await.0, 404, "well formed, but nothing matches");
    assert_eq!(routed(&base, json!({"sort": "fastest"})).await.0, 400, "an unknown sort is a client error");
    // The preferences are the relayer's: never forwarded (the sim would not mind, but a real provider might).
    assert_eq!(a.requests() + b.requests() + c.requests(), 5);
}

#[tokio::test]
async fn a_failing_provider_is_taken_out_and_probed_back() {
    let broken = provider("broken", Some(503)).await;
    let backup = provider("backup", None).await;
    let (client, g, _dir) =
        gateway(&[(&broken, 1_000_000, 1_000_000), (&backup, 2_000_000, 2_000_000)], 10_000_000).await;
    for _ in 0..6 {
        client.chat().create(ask(10)).await.unwrap();
    }
    assert_eq!(broken.requests(), 3, "after 3 failures in a row the breaker keeps requests away");
    assert_eq!(backup.requests(), 6, "every request was served, by the backup");
    // The cool-down passes on the injected clock, not by sleeping.
    g.meter.clock().advance(COOLDOWN + std::time::Duration::from_secs(1));
    client.chat().create(ask(10)).await.unwrap();
    assert_eq!(broken.requests(), 4, "after the cooldown one request probes it");
    client.chat().create(ask(10)).await.unwrap();
    assert_eq!(broken.requests(), 4, "a failed probe takes it out again");
}

#[tokio::test]
async fn a_provider_that_rate_limits_the_marketplace_is_failed_over_and_cooled_down_at_once() {
    let limited = provider("limited", Some(429)).await;
    let backup = provider("backup", None).await;
    let (client, g, _dir) =
        gateway(&[(&limited, 1_000_000, 1_000_000), (&backup, 2_000_000, 2_000_000)], 10_000_000).await;
    for _ in 0..3 {
        let reply =
            client.chat().create(ask(10)).await.expect("served by the backup, not a 429 to the caller");
        assert!(reply.choices[0].message.content.as_deref().unwrap().contains("[backup]"));
    }
    assert_eq!(limited.requests(), 1, "one 429 takes it out of routing, no threshold of failures");
    g.meter.clock().advance(COOLDOWN + std::time::Duration::from_secs(1));
    client.chat().create(ask(10)).await.unwrap();
    assert_eq!(limited.requests(), 2, "after the cool-down one request probes it");
}

#[tokio::test]
async fn completions_and_embeddings_are_metered_like_chat_and_completions_stream() {
    use async_openai::types::completions::CreateCompletionRequestArgs;
    use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
    let up = provider("up", None).await;
    let (client, g, _dir) = gateway(&[(&up, 1_000_000, 2_000_000)], 10_000_000).await;

    let completion = CreateCompletionRequestArgs::default()
        .model(MODEL)
        .prompt("Once upon a time")
        .max_tokens(10u32)
        .build()
        .unwrap();
    let reply = client.completions().create(completion).await.unwrap();
    assert!(reply.choices[0].text.contains("simulated"));
    let u = reply.usage.unwrap();
    let first =
        (u.prompt_tokens as u64 * 1_000_000 + u.completion_tokens as u64 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(g.meter.balance(VAULT).unsettled, first);

    let embed =
        CreateEmbeddingRequestArgs::default().model(MODEL).input(["first text", "second"]).build().unwrap();
    let reply = client.embeddings().create(embed).await.unwrap();
    assert_eq!((reply.data.len(), reply.data[0].embedding.len()), (2, 8));
    let charged = reply.usage.prompt_tokens as u64; // 1 unit per input token, no output
    assert_eq!(g.meter.balance(VAULT).unsettled, first + charged);
    assert_eq!(g.ledger.count().await.unwrap(), 2);

    // Bad input for each endpoint is a 400 naming the field.
    let empty = CreateEmbeddingRequestArgs::default().model(MODEL).input("").build().unwrap();
    let (status, code) = api_error(client.embeddings().create(empty).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (400, Some("missing_required_parameter")));

    // A streamed completion, usage asked for: the text arrives in pieces, and the usage
    // chunk is what was charged.
    use async_openai::types::chat::ChatCompletionStreamOptions;
    use futures_util::StreamExt;
    let streamed = CreateCompletionRequestArgs::default()
        .model(MODEL)
        .prompt("Once upon a time")
        .max_tokens(10u32)
        .stream_options(ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: None })
        .build()
        .unwrap();
    let mut s = client.completions().create_stream(streamed).await.unwrap();
    let (mut text, mut usage, mut pieces) = (String::new(), None, 0);
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        pieces += 1;
        text.extend(chunk.choices.iter().map(|c| c.text.as_str()));
        usage = chunk.usage.or(usage);
    }
    assert_eq!((text.as_str(), pieces > 3), (" [up] simulated completion", true));
    let u = usage.expect("the usage chunk");
    let third =
        (u.prompt_tokens as u64 * 1_000_000 + u.completion_tokens as u64 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(g.meter.balance(VAULT).unsettled, first + charged + third);
}

#[tokio::test]
async fn metrics_count_requests_and_every_response_has_a_request_id() {
    let up = provider("up", None).await;
    let (client, _g, _dir) = gateway(&[(&up, 1_000_000, 1_000_000)], 10_000_000).await;
    client.chat().create(ask(10)).await.unwrap();
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.headers().contains_key("x-compux-request-id"), "errors carry a request id too");
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let text = http.get(base.replace("/v1", "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"compux_requests_total{provider="sim-0 (simulated)",route="/v1/chat/completions",status="200"} 1"#), "{text}");
    assert!(
        text.contains(r#"compux_requests_total{provider="",route="/v1/chat/completions",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("compux_relayer_added_latency_seconds_count{route=\"/v1/chat/completions\"} 2"),
        "{text}"
    );
    assert!(text.contains(r#"compux_provider_up{provider="sim-0 (simulated)"} 1"#), "{text}");
    // The key-sync task runs under its supervisor.
    assert!(text.contains(r#"compux_task_up{task="keys"} 1"#), "{text}");
    assert!(text.contains(r#"compux_task_restarts{task="keys"} 0"#), "{text}");
    assert!(text.contains("compux_unsettled_credits "), "{text}");
}

mod bodies {
    //! Whatever a caller sends, the relayer answers with a 2xx or a 4xx in OpenAI's shape
    //! (Anthropic's on `/v1/messages`): never a 5xx of its own (the simulated provider here
    //! is healthy).
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let model = prop_oneof![Just(json!(MODEL)), Just(json!("unknown-model")), any_json()];
        let messages = prop_oneof![Just(json!([{"role": "user", "content": "hi"}])), any_json()];
        let max_tokens = prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), any_json()];
        let structured = (model, messages, max_tokens, any_json(), any_json()).prop_map(|(m, msg, max, stream, provider)| {
            serde_json::to_vec(&json!({"model": m, "messages": msg, "max_tokens": max, "stream": stream, "provider": provider})).unwrap()
        });
        prop_oneof![
            structured,
            any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            prop::collection::vec(any::<u8>(), 0..64)
        ]
    }

    #[test]
    fn no_body_or_key_makes_the_relayer_fail() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (base, _keep) = rt.block_on(async {
            let up = provider("up", None).await;
            let (client, g, dir) = gateway(&[(&up, 1_000_000, 1_000_000)], 1_000_000_000).await;
            (client.config().api_base().to_string(), (up, g, dir))
        });
        let http = reqwest::Client::new();
        let paths = ["chat/completions", "completions", "embeddings", "messages"];
        // The authorization header: absent, the real key, a wrong scheme or case, or noise.
        let auth = prop_oneof![
            Just(None),
            Just(Some(format!("Bearer {KEY}"))),
            Just(Some(format!("bearer {KEY}"))),
            Just(Some(format!("Basic {KEY}"))),
            "[ -~]{0,30}".prop_map(|k| Some(format!("Bearer {k}"))),
            "[ -~]{0,30}".prop_map(Some),
        ];
        let content_type =
            prop_oneof![Just(None), Just(Some("application/json".to_string())), "[ -~]{0,20}".prop_map(Some)];
        let extra = ("x-[a-z]{1,10}", "[ -~]{0,20}");
        proptest!(ProptestConfig::with_cases(200), |(body in body(), path in 0usize..4, auth in auth, content_type in content_type, extra in extra)| {
            let (status, json) = rt.block_on(async {
                let mut req = http.post(format!("{base}/{}", paths[path])).header(extra.0.as_str(), extra.1.trim());
                if let Some(a) = &auth {
                    req = req.header("authorization", a.trim());
                }
                if let Some(c) = &content_type {
                    req = req.header("content-type", c.trim());
                }
                let res = req.body(body.clone()).send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            });
            prop_assert!(status < 500, "{status} for {} ({auth:?}, {content_type:?}): {json}", String::from_utf8_lossy(&body));
            if status >= 400 && paths[path] == "messages" {
                // Anthropic's error shape.
                prop_assert!(json["type"] == "error" && json["error"]["type"].is_string() && json["error"]["message"].is_string(), "{json}");
            } else if status >= 400 {
                prop_assert!(json["error"]["message"].is_string() && json["error"]["code"].is_string(), "{json}");
            }
        });
    }
}

#[tokio::test]
async fn hour_of_day_multipliers_reprice_and_reroute() {
    let cheap = provider("cheap", None).await;
    let other = provider("other", None).await;
    // `cheap` lists at a third of `other`, but charges 5x at every hour: `other` wins.
    let peak =
        Model { hour_multipliers_bps: Some(vec![50_000; 24]), ..Model::priced(MODEL, 1_000_000, 1_000_000) };
    let providers = vec![
        Provider::new("cheap", cheap.base_url(), vec![peak]),
        Provider::new("other", other.base_url(), vec![Model::priced(MODEL, 3_000_000, 3_000_000)]),
    ];
    let c = config(providers);
    let (client, _g, _dir) = start(c.clone(), 10_000_000).await;
    let reply = client.chat().create(ask(10)).await.unwrap();
    assert!(reply.choices[0].message.content.as_deref().unwrap().contains("[other]"));
    assert_eq!((cheap.requests(), other.requests()), (0, 1));

    let mut bad = c;
    bad.providers[0].models[0].hour_multipliers_bps = Some(vec![10_000, 10_000]);
    assert!(bad.check().unwrap_err().to_string().contains("24 values"));
}

#[tokio::test]
async fn wallets_get_keys_by_signing_a_challenge_and_can_revoke_them() {
    use serde_json::{json, Value};
    use solana_sdk::signature::{Keypair, Signer};
    let up = provider("up", None).await;
    let market = Keypair::new().pubkey();
    let mut c = Config::new(
        any_port(),
        vec![Provider::new("up", up.base_url(), vec![Model::priced(MODEL, 1_000_000, 1_000_000)])],
    );
    c.market = Some(market);
    c.require_credit_account = false; // no chain here: tested through the CLI
    let (client, g, _dir) = start(c, 0).await;
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{base}/{path}")).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let wallet = Keypair::new();
    let owner = wallet.pubkey().to_string();
    let signed = |challenge: &str, by: &Keypair, params: Value| {
        let mut body = params;
        body["owner"] = json!(owner);
        body["challenge"] = json!(challenge);
        body["signature"] = json!(by.sign_message(challenge.as_bytes()).to_string());
        body
    };
    let challenge = |action: &str, params: Value| {
        let mut ask = params;
        ask["owner"] = json!(owner);
        ask["action"] = json!(action);
        let issued = post("keys/challenge", ask);
        async move { issued.await.1["challenge"].as_str().unwrap().to_string() }
    };

    let c = challenge("create", json!({})).await;
    for line in ["asks you to sign with your Solana account", &owner, "Create an API key", "Action: create"] {
        assert!(c.contains(line), "the message says what is signed ({line}): {c}");
    }
    assert!(c.contains("Request Hash: ") && c.contains("Expiration Time: "), "{c}");
    let (status, issued) = post("keys", signed(&c, &wallet, json!({}))).await;
    assert_eq!(status, 200, "{issued}");
    let key = issued["key"].as_str().unwrap().to_string();
    let account = compux_sdk::pda::credit_account(&market, &wallet.pubkey()).0;
    assert_eq!(issued["account"], account.to_string(), "scoped to the wallet's credit account in the market");
    let (status, again) = post("keys", signed(&c, &wallet, json!({}))).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (401, Some("invalid_signature")),
        "a challenge is single-use"
    );

    // Someone else's signature on a fresh challenge gets nothing.
    let c = challenge("create", json!({})).await;
    let (status, _) = post("keys", signed(&c, &Keypair::new(), json!({}))).await;
    assert_eq!(status, 401);

    // A signature answers only the request it was asked for: one given to list keys, or to
    // create a key limited to 1 credit a day, cannot create an unlimited key.
    let c = challenge("list", json!({})).await;
    let (status, body) = post("keys", signed(&c, &wallet, json!({}))).await;
    assert_eq!(status, 401, "a listing signature replayed as a creation: {body}");
    let limited = json!({"limits": {"credits_per_day": 1_000_000}});
    let c = challenge("create", limited.clone()).await;
    assert!(c.contains("at most 1 credits a day"), "{c}");
    let (status, body) = post("keys", signed(&c, &wallet, json!({"limits": {}}))).await;
    assert_eq!(status, 401, "limits dropped from a signed creation: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("issued for another request"), "{body}");

    // The key spends from that account's on-chain balance.
    g.meter.set_onchain(Source::Vault(account), 1_000_000);
    let client = Client::with_config(OpenAIConfig::new().with_api_base(&base).with_api_key(&key));
    client.chat().create(ask(10)).await.unwrap();
    assert!(g.meter.balance(Source::Vault(account)).unsettled > 0);

    // Listed (without the key) and revoked with fresh signatures; then it stops working.
    let c = challenge("list", json!({})).await;
    let (_, list) = post("keys/list", signed(&c, &wallet, json!({}))).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&key), "the key itself is never shown again");
    let id = list["data"][0]["id"].as_str().unwrap();
    let c = challenge("revoke", json!({"id": "key_someother"})).await;
    let (status, _) = post("keys/revoke", signed(&c, &wallet, json!({"id": id}))).await;
    assert_eq!(status, 401, "a signature to revoke one key does not revoke another");
    let c = challenge("revoke", json!({"id": id})).await;
    assert_eq!(post("keys/revoke", signed(&c, &wallet, json!({"id": id}))).await.0, 200);
    assert_eq!(
        api_error(client.chat().create(ask(10)).await.unwrap_err()),
        (401, Some("invalid_api_key".into()))
    );

    // A wallet holds at most `keys_per_wallet` active keys (revoked ones do not count).
    for _ in 0..20 {
        let c = challenge("create", json!({})).await;
        assert_eq!(post("keys", signed(&c, &wallet, json!({}))).await.0, 200);
    }
    let c = challenge("create", json!({})).await;
    let (status, body) = post("keys", signed(&c, &wallet, json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("too_many_keys")), "{body}");
}

/// One provider serving MODEL at 1 credit base unit per token either way, with the provider's
/// own price 0.6 / 0.8 per token; KEY with `limits`.
async fn one_provider(
    limits: Limits,
    balance: u64,
) -> (Client<OpenAIConfig>, Arc<Gateway>, tempfile::TempDir, SimHandle) {
    let up = provider("up", None).await;
    let provider_price = Some(Price::flat(600_000, 800_000));
    let model = Model { provider_price, ..Model::priced(MODEL, 1_000_000, 1_000_000) };
    let mut c = config(vec![Provider::new("up", up.base_url(), vec![model])]);
    (c.keys[0].credits_per_day, c.keys[0].requests_per_minute) =
        (limits.credits_per_day, limits.requests_per_minute);
    let (client, g, dir) = start(c, balance).await;
    (client, g, dir, up)
}

/// The ledger's record of each request, oldest first (to the millisecond): (source, credits,
/// provider cost, in, out).
async fn records(g: &Gateway) -> Vec<(String, i64, i64, i64, i64)> {
    g.ledger.flush().await.unwrap();
    sqlx::query_as(
        "SELECT source, credits_charged, provider_cost, input_tokens, output_tokens FROM usage_records ORDER BY created_at_ms",
    )
    .fetch_all(g.ledger.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn facility_credits_are_spent_first_and_frozen_ones_are_refused_with_403() {
    let (client, g, _dir, _up) = one_provider(Limits::default(), 0).await;
    let facility = Source::Facility(Pubkey::new_unique());
    g.meter.set_sources(ACCOUNT, vec![facility, VAULT]);
    g.meter.set_onchain(facility, 1_000);

    client.chat().create(ask(10)).await.unwrap();
    let first = records(&g).await;
    assert_eq!(first[0].0, facility.to_string(), "released facility credits are spent first");
    assert_eq!(g.meter.balance(facility).unsettled, first[0].1 as u64);

    // The lender freezes the facility: its credits stop at once, and with nothing in the
    // vault the caller gets credits_frozen, not insufficient_credits.
    g.meter.set_frozen(facility, true);
    let (status, code) = api_error(client.chat().create(ask(10)).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (403, Some("credits_frozen")));

    // The borrower's own vault still serves.
    g.meter.set_onchain(VAULT, 1_000);
    client.chat().create(ask(10)).await.unwrap();
    let all = records(&g).await;
    assert_eq!(all.len(), 2, "the refused request left no record");
    let sources: Vec<&str> = all.iter().map(|r| r.0.as_str()).collect();
    let (vault, facility_text) = (ACCOUNT.to_string(), facility.to_string());
    assert!(
        sources.contains(&vault.as_str()) && sources.contains(&facility_text.as_str()),
        "one from each: {sources:?}"
    );
    assert_eq!(
        g.meter.balance(facility).unsettled,
        first[0].1 as u64,
        "nothing more from the frozen facility"
    );

    // Without the frozen facility's credits, a request nothing covers is a plain 402.
    g.meter.set_onchain(facility, 0);
    let (status, code) = api_error(client.chat().create(ask(2_000)).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (402, Some("insufficient_credits")));
}

#[tokio::test]
async fn the_providers_own_price_is_recorded_with_every_request() {
    let (client, g, _dir, _up) = one_provider(Limits::default(), 1_000_000).await;
    client.chat().create(ask(10)).await.unwrap();
    let (_, charged, provider_cost, input, output) = records(&g).await.remove(0);
    assert_eq!(charged, input + output, "1 credit base unit per token");
    assert_eq!(provider_cost, (input * 600_000 + output * 800_000 + 999_999) / 1_000_000, "rounded up");
    assert!(provider_cost < charged, "the marketplace's margin");

    // /v1/usage groups as asked, over a period, and says what is wrong with a bad query.
    client.chat().create(ask(20)).await.unwrap();
    let all = records(&g).await;
    let (charged, provider_cost) = all.iter().fold((0, 0), |(c, p), r| (c + r.1, p + r.2));
    let base = client.config().api_base().to_string();
    let get = |query: &str| {
        let req = reqwest::Client::new().get(format!("{base}/usage{query}")).bearer_auth(KEY);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, by_provider) = get("?group_by=provider").await;
    assert_eq!(status, 200, "{by_provider}");
    let row = &by_provider["data"][0];
    assert_eq!((row["provider"].as_str(), row["requests"].as_u64()), (Some("up"), Some(2)));
    assert_eq!(
        (row["credits"].as_i64(), row["provider_credits"].as_i64()),
        (Some(charged), Some(provider_cost))
    );
    assert!(row.get("day").is_none() && row.get("model").is_none(), "only the dimensions asked for: {row}");
    let lower =
        reqwest::Client::new().get(format!("{base}/usage")).header("authorization", format!("bearer {KEY}"));
    assert_eq!(lower.send().await.unwrap().status().as_u16(), 200, "the auth scheme is case-insensitive");
    let (_, total) = get("?group_by=none").await;
    assert_eq!(total["data"].as_array().unwrap().len(), 1);
    assert_eq!(total["data"][0]["credits"].as_i64(), Some(charged));
    let (_, future) = get("?from=2999-01-01").await;
    assert_eq!(future["data"], serde_json::json!([]), "nothing in a period without requests");
    for bad in ["?group_by=colour", "?from=2026-13", "?to=yesterday", "?surprise=1"] {
        let (status, err) = get(bad).await;
        assert_eq!(
            (status, err["error"]["type"].as_str()),
            (400, Some("invalid_request_error")),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn a_key_over_its_requests_per_minute_gets_429_with_retry_after() {
    let (client, _g, _dir, up) =
        one_provider(Limits { requests_per_minute: Some(2), ..Default::default() }, 1_000_000).await;
    client.chat().create(ask(10)).await.unwrap();
    client.chat().create(ask(10)).await.unwrap();
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "one request every 30 s: retry in {retry} s");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(up.requests(), 2, "the limited request never reached a provider");
}

#[tokio::test]
async fn a_key_over_its_daily_credits_gets_429_until_the_next_utc_day_and_the_budget_survives_a_restart() {
    // Each request holds at most prompt bound + 100 tokens = well under 300 units.
    let (client, g, dir, _up) =
        one_provider(Limits { credits_per_day: Some(300), ..Default::default() }, 1_000_000).await;
    let mut served = 0;
    let err = loop {
        match client.chat().create(ask(100)).await {
            Ok(_) => served += 1,
            Err(e) => break e,
        }
        assert!(served < 100, "the daily limit never bound");
    };
    assert_eq!(api_error(err), (429, Some("daily_credit_limit_exceeded".into())));
    let spent: u64 = records(&g).await.iter().map(|r| r.1 as u64).sum();
    assert!(served >= 1 && spent <= 300, "{served} served, {spent} spent of 300");

    // A restarted relayer restores the key's spend today and every unsettled charge from
    // the ledger, so neither the budget nor the balance resets with the process.
    // (On the gateway's clock: the day the records were made is the day restored, even
    // when the test runs across midnight UTC.)
    let meter = Meter::with_clock(g.meter.clock().clone());
    compux_relayer::restore(&g.ledger, &meter).await.unwrap();
    assert_eq!(meter.balance(VAULT).unsettled, spent);
    let budget = compux_relayer::domain::meter::Budget {
        key: &KeyHash::of(KEY),
        per_day: 300,
        day: g.meter.clock().today(),
    };
    meter.set_onchain(VAULT, 1_000_000);
    assert!(matches!(
        meter.hold(ACCOUNT, 300 - spent + 1, Some(budget)),
        Err(compux_relayer::domain::meter::Refused::DailyLimit { used, .. }) if used == spent
    ));
    assert!(meter.hold(ACCOUNT, 300 - spent, Some(budget)).is_ok());

    // The budget is per UTC day: on the next one the key spends again.
    g.meter.clock().advance(std::time::Duration::from_secs(86_400));
    client.chat().create(ask(100)).await.expect("a new day, a new budget");
    drop(dir);
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let (client, _g, _dir, _up) = one_provider(Limits::default(), 1_000).await;
    let base = client.config().api_base().trim_end_matches("/v1").to_string();
    let http = reqwest::Client::new();
    let doc: serde_json::Value =
        http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> =
        compux_relayer::http::routes::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    for (method, path) in served {
        // A path parameter gets a value no record has: the route answers its own 404.
        let concrete = path.replace("{id}", "no-such-id");
        let req =
            http.request(method.parse().unwrap(), format!("{base}{concrete}")).bearer_auth(KEY).body("{}");
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let routed = match status {
            404 => body["error"]["code"].as_str().is_some_and(|c| c.ends_with("_not_found")),
            405 => false,
            _ => true,
        };
        assert!(routed, "{method} {path} is documented but answers {status}: {body}");
    }
    // What is not served answers in OpenAI's error shape, not an empty body.
    for (method, path, status, code) in
        [("GET", "/v1/nope", 404, "unknown_url"), ("PUT", "/v1/models", 405, "method_not_allowed")]
    {
        let res = http.request(method.parse().unwrap(), format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["type"].as_str()),
            (Some(code), Some("invalid_request_error"))
        );
    }
    // Every `$ref` resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &r[..r.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
}

#[tokio::test]
async fn receipts_are_exported_a_page_at_a_time_and_each_reply_names_its_own() {
    let (client, _g, _dir, _up) = one_provider(Limits::default(), 1_000_000).await;
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let mut issued = Vec::new();
    for _ in 0..3 {
        let res = http
            .post(format!("{base}/chat/completions"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
            .send()
            .await
            .unwrap();
        let receipt = res.headers()["x-compux-receipt"].to_str().unwrap().to_string();
        assert_eq!(receipt, res.headers()["x-compux-request-id"].to_str().unwrap());
        issued.push(receipt);
    }
    let get = |query: String| {
        let req = http.get(format!("{base}/receipts{query}")).bearer_auth(KEY);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, first) = get("?limit=2".into()).await;
    assert_eq!(status, 200, "{first}");
    let next = first["next"].as_str().expect("a second page").to_string();
    let (_, second) = get(format!("?limit=2&after={next}")).await;
    assert!(second["next"].is_null(), "the last page");
    let mut exported: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| {
            p["data"].as_array().unwrap().iter().map(|r| r["receipt"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(second["data"][0]["settled"] == false && second["data"][0]["batch"].is_null(), "no settler here");
    exported.sort();
    issued.sort();
    assert_eq!(exported, issued, "every receipt once, across pages");
    for bad in ["?limit=0", "?limit=10001", "?after=nonsense", "?from=someday"] {
        assert_eq!(get(bad.into()).await.0, 400, "{bad}");
    }
    let (status, one) = get(format!("/{}", issued[0])).await;
    assert_eq!((status, one["leaf"]["request_id"].as_str()), (200, Some(issued[0].as_str())));
}

#[tokio::test]
async fn a_low_balance_fires_one_signed_webhook_retried_until_delivered_and_rearms_on_top_up() {
    use std::sync::Mutex;
    // A webhook receiver that refuses the first two deliveries.
    let got: Arc<Mutex<Vec<(u16, axum::http::HeaderMap, String)>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |headers: axum::http::HeaderMap, body: String| {
                let got = got.clone();
                async move {
                    let mut g = got.lock().unwrap();
                    let status = if g.len() < 2 { 500 } else { 200 };
                    g.push((status, headers, body));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (client, g, _dir, _up) = one_provider(Limits::default(), 1_000).await;
    let config = compux_relayer::jobs::alerts::AlertsConfig {
        check_secs: 1,
        retry_base_ms: 50,
        max_attempts: 4,
        allow_private_urls: true,
        ..Default::default()
    };
    compux_relayer::jobs::alerts::spawn(g.ledger.clone(), g.meter.clone(), config);
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let add =
        |body: serde_json::Value| http.post(format!("{base}/alerts")).bearer_auth(KEY).json(&body).send();
    for bad in [
        serde_json::json!({"url": "ftp://x", "below": 5}),
        serde_json::json!({"url": hook, "below": 0}),
        serde_json::json!({"url": hook}),
    ] {
        assert_eq!(add(bad.clone()).await.unwrap().status().as_u16(), 400, "{bad}");
    }
    let added: serde_json::Value =
        add(serde_json::json!({"url": hook, "below": 500})).await.unwrap().json().await.unwrap();
    let secret = added["secret"].as_str().unwrap().to_string();
    let listed: serde_json::Value =
        http.get(format!("{base}/alerts")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    let attempts = |n: usize| {
        let got = got.clone();
        async move {
            // Checks run every second and retries back off: generous for a loaded machine.
            for _ in 0..600 {
                if got.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("expected {n} deliveries, got {}", got.lock().unwrap().len());
        }
    };
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(got.lock().unwrap().is_empty(), "above the threshold: no alert");
    g.meter.set_onchain(VAULT, 100);
    attempts(3).await;
    {
        let g = got.lock().unwrap();
        assert_eq!(g.iter().map(|d| d.0).collect::<Vec<_>>(), vec![500, 500, 200], "retried until delivered");
        let (_, headers, body) = &g[2];
        let ts: i64 = headers["x-compux-timestamp"].to_str().unwrap().parse().unwrap();
        assert_eq!(
            headers["x-compux-signature"].to_str().unwrap(),
            compux_relayer::jobs::alerts::sign(&secret, ts, body)
        );
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (event["type"].as_str(), event["available"].as_u64(), event["below"].as_u64()),
            (Some("balance.low"), Some(100), Some(500))
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(got.lock().unwrap().len(), 3, "once per crossing, not every check");
    g.meter.set_onchain(VAULT, 1_000);
    // Re-armed once a check has seen the top-up (waited for in the alert's row, not for a
    // fixed time), then a new crossing fires again.
    let id = added["id"].as_str().unwrap().to_string();
    for waited in 0.. {
        let fired: Option<i64> = sqlx::query_scalar("SELECT fired_at_ms FROM alerts WHERE id = $1")
            .bind(&id)
            .fetch_one(g.ledger.pool())
            .await
            .unwrap();
        if fired.is_none() {
            break;
        }
        assert!(waited < 600, "the alert never re-armed after the top-up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    g.meter.set_onchain(VAULT, 10);
    attempts(4).await;

    let id = added["id"].as_str().unwrap();
    let delete = || http.delete(format!("{base}/alerts/{id}")).bearer_auth(KEY).send();
    assert_eq!(delete().await.unwrap().status().as_u16(), 200);
    assert_eq!(delete().await.unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn a_limited_key_spends_within_its_limits_and_manages_no_alerts() {
    let (client, _g, _dir, _up) =
        one_provider(Limits { requests_per_minute: Some(100), ..Default::default() }, 1_000_000).await;
    client.chat().create(ask(10)).await.unwrap();
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let add = http
        .post(format!("{base}/alerts"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": "https://example.com/hook", "below": 5}));
    for req in [
        add,
        http.get(format!("{base}/alerts")).bearer_auth(KEY),
        http.delete(format!("{base}/alerts/alert_x")).bearer_auth(KEY),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "limited_key", "{body}");
    }
}

/// A webhook URL cannot point the relayer at its own network, and an account's alerts are
/// capped.
#[tokio::test]
async fn webhook_urls_must_be_public_and_an_account_has_ten_alerts_at_most() {
    let up = provider("up", None).await;
    let mut c = config(vec![Provider::new("up", up.base_url(), vec![Model::priced(MODEL, 1, 1)])]);
    c.alerts.allow_private_urls = false;
    let (client, _g, _dir) = start(c, 1_000_000).await;
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let add = |url: String| {
        let req = http
            .post(format!("{base}/alerts"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"url": url, "below": 5}));
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
        "http://[::1]:8080/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let (status, body) = add(url.into()).await;
        assert_eq!((status, body["error"]["param"].as_str()), (400, Some("url")), "{url}: {body}");
    }
    for i in 0..10 {
        assert_eq!(add(format!("https://hooks.example.com/{i}")).await.0, 200);
    }
    let (status, body) = add("https://hooks.example.com/11".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("too_many_alerts")), "{body}");
    assert!(compux_relayer::jobs::alerts::public("93.184.216.34".parse().unwrap()));
}

#[tokio::test]
async fn replicas_sharing_a_postgres_ledger_never_spend_more_than_the_balance_together() {
    if std::env::var("COMPUX_TEST_LEDGER").as_deref() != Ok("postgres") {
        eprintln!(
            "replicas share a Postgres ledger: COMPUX_TEST_LEDGER=postgres runs this (scripts/test.sh does)"
        );
        return;
    }
    let up = provider("up", None).await;
    let dir = tempfile::tempdir().unwrap();
    let target = compux_relayer::store::db::test_target(dir.path()).await.unwrap();
    let c =
        config(vec![Provider::new("up", up.base_url(), vec![Model::priced(MODEL, 1_000_000, 1_000_000)])]);
    // As in the single-relayer test: the balance covers 50 requests at worst case.
    let balance = worst(1_000_000, 20) * 50;
    let lease = compux_relayer::jobs::leases::LeaseConfig {
        ttl_ms: 5_000,
        every_ms: 50,
        idle_after_ms: 2_000,
        in_flight_ms: 10_000,
    };
    let mut replicas = Vec::new();
    for i in 0..2 {
        let meter = Meter::new();
        meter.set_onchain(VAULT, balance);
        let journal = dir.path().join(format!("journal-{i}"));
        let ledger = Ledger::open_with(&target, &journal, 1 << 20).await.unwrap();
        let g = Gateway::new(c.clone(), meter.clone(), ledger.clone()).await.unwrap();
        let addr = serve(g.clone()).await.unwrap();
        let accounts: compux_relayer::jobs::balances::Accounts = Arc::new(|| vec![ACCOUNT]);
        let budgets: compux_relayer::jobs::leases::Budgets = Arc::new(Vec::new);
        tokio::spawn(compux_relayer::jobs::leases::run(
            g.share(format!("replica-{i}"), lease.clone()),
            accounts,
            budgets,
        ));
        let client = Client::with_config(
            OpenAIConfig::new().with_api_base(format!("http://{addr}/v1")).with_api_key(KEY),
        );
        replicas.push((client, g));
    }
    // Both replicas hold a lease before the load (waited for, not slept on).
    for waited in 0.. {
        let leased: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM balance_leases WHERE amount > 0")
                .fetch_one(replicas[0].1.ledger.pool())
                .await
                .unwrap();
        if leased >= 2 {
            break;
        }
        assert!(waited < 600, "the two replicas never both held a lease");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let calls = (0..200).map(|i| {
        let client = replicas[i % 2].0.clone();
        tokio::spawn(async move { (i % 2, client.chat().create(ask(20)).await) })
    });
    let mut served = [0u64; 2];
    for call in calls {
        match call.await.unwrap() {
            (r, Ok(_)) => served[r] += 1,
            (_, Err(e)) => assert_eq!(api_error(e), (402, Some("insufficient_credits".into()))),
        }
    }
    replicas[1].1.ledger.flush().await.unwrap();
    let charged = replicas[0].1.ledger.total_charged().await.unwrap();
    assert!(served[0] > 0 && served[1] > 0, "both replicas serve from their leases: {served:?}");
    assert_eq!(replicas[0].1.ledger.count().await.unwrap(), served[0] + served[1], "one shared ledger");
    assert!(charged <= balance, "the replicas charged {charged} together, the balance is {balance}");
}

#[tokio::test]
async fn stale_balances_fail_readiness_and_refuse_requests_with_503_instead_of_admitting_them() {
    let up = provider("up", None).await;
    let (client, g, _dir) = gateway(&[(&up, 1_000_000, 1_000_000)], 1_000_000).await;
    let base = client.config().api_base().trim_end_matches("/v1").to_string();
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let req = http.get(format!("{base}{path}"));
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    g.meter.require_fresh(std::time::Duration::from_secs(60));
    g.meter.mark_read();
    assert_eq!(get("/health/ready").await.0, 200);
    client.chat().create(ask(10)).await.unwrap();

    // The chain stops answering: no balance read for longer than the bound (on the
    // injected clock: a slow machine cannot make the fresh phases stale).
    g.meter.clock().advance(std::time::Duration::from_secs(61));
    let (status, ready) = get("/health/ready").await;
    assert_eq!(
        (status, &ready["balances"]["ok"], &ready["ledger"]["ok"]),
        (503, &false.into(), &true.into()),
        "{ready}"
    );
    assert_eq!(get("/health/live").await.0, 200, "alive all the same");
    let before = g.meter.balance(VAULT);
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "balances_stale", "{body}");
    assert_eq!(g.meter.balance(VAULT), before, "nothing held or charged");
    assert_eq!(up.requests(), 1, "the refused request never reached a provider");

    g.meter.mark_read();
    assert_eq!(get("/health/ready").await.0, 200);
    client.chat().create(ask(10)).await.unwrap();
}

#[tokio::test]
async fn a_request_holds_what_its_provider_can_cost_so_a_small_balance_is_spent_not_refused() {
    // The balance covers 50 requests at the cheap provider's worst case; the dear one costs
    // 3x. Holding the route's dearest stop would serve only 16 of them.
    let cheap = provider("cheap", None).await;
    let dear = provider("dear", None).await;
    let balance = worst(1_000_000, 20) * 50;
    let (client, g, _dir) =
        gateway(&[(&cheap, 1_000_000, 1_000_000), (&dear, 3_000_000, 3_000_000)], balance).await;
    let served = two_hundred_at_once(&client).await;
    let b = g.meter.balance(VAULT);
    assert!(served >= 50, "the balance covers 50 at the serving provider's worst case: {served} served");
    assert!(b.unsettled <= balance, "charged {} > balance {balance}", b.unsettled);
    assert_eq!((b.held, cheap.requests(), dear.requests()), (0, served, 0));
}

#[tokio::test]
async fn a_failover_to_a_dearer_provider_grows_the_hold_first_or_is_not_tried() {
    let broken = provider("broken", Some(500)).await;
    let dear = provider("dear", None).await;
    // Enough for the dear provider's worst case: served there, charged once at its price.
    let at_worst = worst(3_000_000, 20);
    let (client, g, _dir) =
        gateway(&[(&broken, 1_000_000, 1_000_000), (&dear, 3_000_000, 3_000_000)], at_worst).await;
    let reply = client.chat().create(ask(20)).await.unwrap();
    let at_dear = (reply.usage.unwrap().total_tokens as u64 * 3_000_000).div_ceil(1_000_000);
    assert_eq!(
        g.meter.balance(VAULT),
        compux_relayer::domain::meter::Balance {
            onchain: at_worst,
            unsettled: at_dear,
            held: 0,
            frozen: false
        }
    );

    // Enough for the cheap provider only (its worst case with the default max_tokens, not
    // the dear one's): it fails, and the dear one is not tried: 402 naming both, nothing
    // charged.
    let broken = provider("broken", Some(500)).await;
    let dear = provider("dear", None).await;
    let hi = serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let (cheap_worst, dear_worst) = (worst_of(&hi, 1_000_000, 100), worst_of(&hi, 3_000_000, 100));
    let balance = cheap_worst + 10;
    assert!(balance < dear_worst);
    let (client, g, _dir) =
        gateway(&[(&broken, 1_000_000, 1_000_000), (&dear, 3_000_000, 3_000_000)], balance).await;
    let res = post_hi(&client).await;
    assert_eq!(res.status().as_u16(), 402);
    let body: serde_json::Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 500") && message.contains("not tried"), "{message}");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert_eq!((broken.requests(), dear.requests()), (1, 0));
    assert_eq!(g.meter.balance(VAULT).unsettled, 0, "nothing charged");
}
