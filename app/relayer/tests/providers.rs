//! Providers of other protocols behind the one OpenAI-compatible API: the real
//! `async-openai` client (and raw requests for what its types leave out) through the gateway
//! to SIMULATED upstreams that follow each protocol's public reference.

use async_openai::config::Config as _;
use async_openai::types::chat::ChatCompletionStreamOptions;
use compux_relayer::config::{Model, Protocol, Provider};
use serde_json::{json, Value};

mod common;
use common::*;

fn cost(usage: &Value, input: u64, output: u64) -> u64 {
    let (i, o) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    (i * input + o * output).div_ceil(1_000_000)
}

/// POSTs `body` to the gateway's chat completions: (status, charged header, body text).
async fn chat(base: &str, body: Value) -> (u16, Option<u64>, String) {
    let res = post_chat(base, &body).await;
    let charged = res.headers().get("x-compux-credits-charged").map(|v| v.to_str().unwrap().parse().unwrap());
    (res.status().as_u16(), charged, res.text().await.unwrap())
}

/// The JSON of each `data:` event of a stream, `[DONE]` as a string.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_string())))
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}])
}

#[tokio::test]
async fn anthropic_and_gemini_providers_serve_plain_and_streamed_chat_charged_exactly() {
    let sim = provider("native", None).await;
    for (kind, upstream) in [
        (Protocol::Anthropic, "claude-sim-1"),
        (Protocol::Gemini, "gemini-sim-1"),
        (Protocol::Bedrock, "anthropic.claude-sim-v1:0"),
    ] {
        let p = of(kind, &sim, upstream, 3_000_000, 15_000_000);
        let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;

        let reply = client.chat().create(ask(50)).await.unwrap();
        assert_eq!(reply.choices[0].message.content.as_deref(), Some("[native] simulated reply"));
        assert_eq!(reply.model, upstream, "the provider's model id, as OpenAI reports the served model");
        let u = reply.usage.clone().unwrap();
        let first = (u.prompt_tokens as u64 * 3_000_000 + u.completion_tokens as u64 * 15_000_000)
            .div_ceil(1_000_000);
        assert_eq!(u.completion_tokens, 20);
        assert_eq!(g.meter.balance(VAULT).unsettled, first);

        let mut streamed = ask(50);
        streamed.stream_options =
            Some(ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: None });
        use futures_util::StreamExt;
        let mut s = client.chat().create_stream(streamed).await.unwrap();
        let (mut text, mut usage, mut finish) = (String::new(), None, None);
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            for c in &chunk.choices {
                text.push_str(c.delta.content.as_deref().unwrap_or(""));
                finish = c.finish_reason.or(finish);
            }
            usage = chunk.usage.or(usage);
        }
        assert_eq!(text, "[native] simulated reply");
        assert_eq!(finish, Some(async_openai::types::chat::FinishReason::Stop));
        let u = usage.expect("the usage chunk");
        assert_eq!((u.completion_tokens, u.prompt_tokens), (20, reply.usage.as_ref().unwrap().prompt_tokens));
        assert_eq!(g.meter.balance(VAULT).unsettled, 2 * first);
        assert_eq!(g.ledger.count().await.unwrap(), 2);
    }
}

#[tokio::test]
async fn tool_calls_and_images_cross_every_protocol_both_ways() {
    let sim = provider("native", None).await;
    for (kind, upstream) in [
        (Protocol::Anthropic, "claude-sim-1"),
        (Protocol::Gemini, "gemini-sim-1"),
        (Protocol::Bedrock, "anthropic.claude-sim-v1:0"),
        (Protocol::OpenAi, "gpt-sim-1"),
    ] {
        let p = of(kind, &sim, upstream, 1_000_000, 2_000_000);
        let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
        let base = client.config().api_base().to_string();
        let image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let ask = json!({
            "model": MODEL, "max_tokens": 40, "tools": weather_tool(), "tool_choice": "required",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": image}},
            ]}],
        });

        let (status, charged, body) = chat(&base, ask.clone()).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"query": "simulated"})
        );
        assert_eq!(charged, Some(cost(&v["usage"], 1_000_000, 2_000_000)));

        // The tool's answer goes back as a `tool` message; the model answers in text.
        let mut next = ask.clone();
        next["tool_choice"] = json!("auto");
        let messages = next["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 C"}));
        let (status, _, body) = chat(&base, next).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"]["content"],
            "[native] simulated reply"
        );

        // Streamed: the call's id and name first, then its arguments in pieces, then the usage.
        let mut streamed = ask.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let (status, _, body) = chat(&base, streamed).await;
        assert_eq!(status, 200);
        let e = events(&body);
        let calls: Vec<&Value> =
            e.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
        assert_eq!(calls[0]["function"]["name"], "weather");
        let args: String = calls.iter().map(|c| c["function"]["arguments"].as_str().unwrap()).collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"query": "simulated"}));
        assert!(e.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert_eq!(e.last().unwrap(), "[DONE]");
        let usage = &e[e.len() - 2]["usage"];
        let before = g.meter.balance(VAULT).unsettled;
        assert!(before > 0 && usage["completion_tokens"].as_u64() == Some(20));
        assert_eq!(g.ledger.count().await.unwrap(), 3);
    }
}

#[tokio::test]
async fn what_a_provider_cannot_express_is_a_400_naming_it_and_costs_nothing() {
    let sim = provider("anthropic", None).await;
    let p = of(Protocol::Anthropic, &sim, "claude-sim-1", 1_000_000, 2_000_000);
    let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
    let base = client.config().api_base().to_string();
    let audio = json!({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]});
    let (status, _, body) = chat(&base, audio).await;
    assert_eq!(status, 400, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    // Audio has no price in the catalog: refused before any adapter sees it.
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    assert!(e["error"]["message"].as_str().unwrap().contains("input_audio"));
    // The provider's own validation errors come back in OpenAI's shape too.
    let hot = json!({"model": MODEL, "messages": [{"role": "user", "content": ""}]});
    let (status, _, body) = chat(&base, hot).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["type"], "invalid_request_error");
    assert_eq!(sim.requests(), 1, "the untranslatable request never reached the provider");
    assert_eq!((g.meter.balance(VAULT).unsettled, g.meter.balance(VAULT).held), (0, 0));
    // Anthropic has no embeddings: a model served only there is not found for them.
    let res = reqwest::Client::new()
        .post(format!("{base}/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": MODEL, "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn an_overloaded_anthropic_provider_fails_over_to_an_openai_one_charged_once_at_its_price() {
    let overloaded = provider("anthropic", Some(529)).await;
    let openai = provider("openai", None).await;
    let providers = vec![
        of(Protocol::Anthropic, &overloaded, "claude-sim-1", 1_000_000, 2_000_000),
        of(Protocol::OpenAi, &openai, "gpt-sim-1", 2_000_000, 4_000_000),
    ];
    let (client, g, _dir) = start(config(providers), 10_000_000).await;
    let base = client.config().api_base().to_string();
    let (status, charged, body) = chat(
        &base,
        json!({"model": MODEL, "max_tokens": 30, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("[openai]"));
    assert_eq!(v["model"], "gpt-sim-1", "the OpenAI provider got its own model id");
    assert_eq!((overloaded.requests(), openai.requests()), (1, 1));
    let expected = cost(&v["usage"], 2_000_000, 4_000_000);
    assert_eq!(charged, Some(expected));
    assert_eq!(g.meter.balance(VAULT).unsettled, expected, "charged once, at the serving provider's price");
    assert_eq!(g.ledger.count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_failing_anthropic_provider_fails_over_to_bedrock_serving_the_same_model_charged_once_at_its_price()
{
    let failing = provider("anthropic", Some(529)).await;
    let bedrock = provider("bedrock", None).await;
    let providers = vec![
        of(Protocol::Anthropic, &failing, "claude-sonnet-4-5", 1_000_000, 2_000_000),
        of(Protocol::Bedrock, &bedrock, "anthropic.claude-sonnet-4-5-v1:0", 2_000_000, 4_000_000),
    ];
    let (client, g, _dir) = start(config(providers), 10_000_000).await;
    let base = client.config().api_base().to_string();
    for stream in [false, true] {
        let before = g.meter.balance(VAULT).unsettled;
        let ask = json!({"model": MODEL, "max_tokens": 30, "stream": stream, "stream_options": {"include_usage": true},
                         "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, body) = chat(&base, ask).await;
        assert_eq!(status, 200, "{body}");
        let usage = if stream {
            let e = events(&body);
            assert_eq!(e.last().unwrap(), "[DONE]");
            let text: String =
                e.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
            assert_eq!(text, "[bedrock] simulated reply");
            e[e.len() - 2]["usage"].clone()
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], "[bedrock] simulated reply");
            assert_eq!(v["model"], "anthropic.claude-sonnet-4-5-v1:0");
            v["usage"].clone()
        };
        let expected = cost(&usage, 2_000_000, 4_000_000);
        assert_eq!(
            g.meter.balance(VAULT).unsettled - before,
            expected,
            "stream {stream}: charged once, at Bedrock's price"
        );
    }
    assert_eq!((failing.requests(), bedrock.requests()), (2, 2));
    assert_eq!(g.ledger.count().await.unwrap(), 2);
}

#[tokio::test]
async fn the_simulated_bedrock_checks_sigv4_signatures_as_aws_does() {
    use compux_relayer::providers::bedrock::{credentials_from_env, signature};
    aws_credentials();
    let sim = provider("bedrock", None).await;
    let url = format!("{}/model/anthropic.claude-sim-v1%3A0/converse", sim.bedrock_base_url());
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).to_string();
    let headers = [("content-type", "application/json")];
    let creds = credentials_from_env().unwrap();
    let signed =
        signature(&url, &headers, body.as_bytes(), &creds, "us-east-1", std::time::SystemTime::now())
            .unwrap();
    let send = |body: String, signed: Vec<(String, String)>| {
        let mut req = reqwest::Client::new().post(&url).header("content-type", "application/json");
        for (k, v) in signed {
            req = req.header(k, v);
        }
        req.body(body).send()
    };
    let ok = send(body.clone(), signed.clone()).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200, "{}", ok.text().await.unwrap());
    let tampered = send(body.replace("hi", "ho"), signed).await.unwrap();
    assert_eq!(tampered.status().as_u16(), 403);
    assert_eq!(tampered.headers()["x-amzn-errortype"], "InvalidSignatureException");
    let unsigned = send(body, Vec::new()).await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    assert_eq!(unsigned.headers()["x-amzn-errortype"], "UnrecognizedClientException");
}

#[tokio::test]
async fn a_stream_the_provider_breaks_ends_in_an_error_event_and_is_charged_for_what_was_delivered() {
    use compux_relayer::sim::{self, SimOptions};
    let cut = |name: &str| SimOptions {
        name: name.into(),
        completion_tokens: 20,
        cut_streams: true,
        ..Default::default()
    };
    let anthropic = sim::spawn(cut("anthropic"), any_port()).await.unwrap();
    let openai = sim::spawn(cut("openai"), any_port()).await.unwrap();
    let gemini = sim::spawn(cut("gemini"), any_port()).await.unwrap();
    let bedrock = sim::spawn(cut("bedrock"), any_port()).await.unwrap();
    for (kind, sim, upstream) in [
        (Protocol::Anthropic, &anthropic, "claude-sim-1"),
        (Protocol::Gemini, &gemini, "gemini-sim-1"),
        (Protocol::Bedrock, &bedrock, "anthropic.claude-sim-v1:0"),
        (Protocol::OpenAi, &openai, "gpt-sim-1"),
    ] {
        let p = of(kind, sim, upstream, 1_000_000, 2_000_000);
        let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
        let base = client.config().api_base().to_string();
        let ask = json!({"model": MODEL, "max_tokens": 50, "stream": true, "stream_options": {"include_usage": true},
                         "messages": [{"role": "user", "content": "Say hello"}]});
        let (status, _, body) = chat(&base, ask).await;
        assert_eq!(status, 200);
        let e = events(&body);
        assert!(!e.iter().any(|v| v == "[DONE]"), "{kind:?}: a cut stream does not end cleanly: {body}");
        assert_eq!(e.last().unwrap()["error"]["code"], "stream_interrupted", "{kind:?}");
        let text: String = e.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert!(
            !text.is_empty() && !text.ends_with("reply"),
            "{kind:?}: part of the reply arrived: {text:?}"
        );
        let charged = g.meter.balance(VAULT).unsettled;
        // The delivered output at a token a byte: never less than the tokens it took.
        let delivered_tokens = text.len() as u64;
        assert_eq!(g.ledger.count().await.unwrap(), 1, "{kind:?}: the cut request has its record");
        let input = (("Say hello".len() as u64).div_ceil(4)) + 3;
        if matches!(kind, Protocol::Anthropic | Protocol::Gemini) {
            // Anthropic and Gemini report the input as they go: the input is charged exactly.
            assert_eq!(charged, (input * 1_000_000 + delivered_tokens * 2_000_000).div_ceil(1_000_000));
        } else {
            // OpenAI and Bedrock report usage only at the end: the input is charged at its bound.
            assert!(
                charged > (input * 1_000_000 + delivered_tokens * 2_000_000).div_ceil(1_000_000),
                "{charged}"
            );
        }
    }
}

#[tokio::test]
async fn cache_reads_are_charged_at_their_own_price_from_every_protocol_and_each_reply_states_its_cost() {
    use compux_relayer::sim::{self, SimOptions};
    let warm = |name: &str| SimOptions {
        name: name.into(),
        completion_tokens: 20,
        cached_tokens: 8,
        ..Default::default()
    };
    let anthropic = sim::spawn(warm("anthropic"), any_port()).await.unwrap();
    let openai = sim::spawn(warm("openai"), any_port()).await.unwrap();
    let gemini = sim::spawn(warm("gemini"), any_port()).await.unwrap();
    let bedrock = sim::spawn(warm("bedrock"), any_port()).await.unwrap();
    for (kind, sim) in [
        (Protocol::Anthropic, &anthropic),
        (Protocol::Gemini, &gemini),
        (Protocol::Bedrock, &bedrock),
        (Protocol::OpenAi, &openai),
    ] {
        let mut p = of(kind, sim, "m-1", 3_000_000, 15_000_000);
        p.models[0].price.cached_input_per_1m = Some(300_000);
        let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
        let base = client.config().api_base().to_string();
        let long = "a long shared prefix that the provider has cached ".repeat(2);
        let ask = json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": long}]});
        let (status, charged, body) = chat(&base, ask.clone()).await;
        assert_eq!(status, 200, "{body}");
        let u = serde_json::from_str::<Value>(&body).unwrap()["usage"].clone();
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 8, "{kind:?}: {u}");
        let (prompt, output) =
            (u["prompt_tokens"].as_u64().unwrap(), u["completion_tokens"].as_u64().unwrap());
        let exact = ((prompt - 8) * 3_000_000 + 8 * 300_000 + output * 15_000_000).div_ceil(1_000_000);
        assert_eq!(charged, Some(exact), "{kind:?}: the cached part at a tenth");
        assert!(
            exact < (prompt * 3_000_000 + output * 15_000_000).div_ceil(1_000_000),
            "cheaper than uncached"
        );
        assert_eq!(u["cost"], exact, "{kind:?}: the reply states its cost");

        let mut streamed = ask;
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let (_, _, body) = chat(&base, streamed).await;
        let e = events(&body);
        let usage = &e[e.len() - 2]["usage"];
        assert_eq!(usage["cost"], exact, "{kind:?}: the usage chunk states the cost: {body}");
        assert_eq!(g.meter.balance(VAULT).unsettled, 2 * exact);
    }
}

#[tokio::test]
async fn the_anthropic_messages_api_is_served_metered_and_receipted_through_any_provider() {
    // Anthropic's shape in, a Gemini provider behind: translated both ways, twice.
    let sim = provider("native", None).await;
    let p = of(Protocol::Gemini, &sim, "gemini-sim-1", 1_000_000, 2_000_000);
    let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
    let base = client.config().api_base().to_string();
    let http = reqwest::Client::new();
    let send = |key: &str, body: Value| {
        http.post(format!("{base}/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let hello = json!({"model": MODEL, "max_tokens": 50, "system": "Be brief.", "messages": [{"role": "user", "content": "Say hello"}]});
    let res = send(KEY, hello).await.unwrap();
    assert_eq!(res.status(), 200);
    let receipt = res.headers()["x-compux-receipt"].to_str().unwrap().to_string();
    let charged: u64 = res.headers()["x-compux-credits-charged"].to_str().unwrap().parse().unwrap();
    let m: Value = res.json().await.unwrap();
    assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(m["content"], json!([{"type": "text", "text": "[native] simulated reply"}]));
    assert_eq!(
        (m["stop_reason"].as_str(), m["usage"]["output_tokens"].as_u64()),
        (Some("end_turn"), Some(20))
    );
    let expected =
        (m["usage"]["input_tokens"].as_u64().unwrap() * 1_000_000 + 20 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(charged, expected, "charged like a chat completion");
    assert_eq!(g.meter.balance(VAULT).unsettled, expected);
    assert!(g.ledger.request_ids().await.unwrap().contains(&receipt), "receipted: the record exists");

    // Streamed, with a forced tool: the documented event sequence, the call's input in pieces.
    let weather = json!({"model": MODEL, "max_tokens": 50, "stream": true, "tool_choice": {"type": "any"},
                         "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
                         "messages": [{"role": "user", "content": "Weather?"}]});
    let text = send(KEY, weather).await.unwrap().text().await.unwrap();
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    assert!(text.contains(r#""type":"tool_use""#) && text.contains(r#""name":"weather""#), "{text}");
    assert!(text.contains("input_json_delta") && text.contains(r#""stop_reason":"tool_use""#), "{text}");
    assert_eq!(g.ledger.count().await.unwrap(), 2, "the stream was metered too");

    // Errors in Anthropic's shape, nothing charged.
    let before = g.meter.balance(VAULT).unsettled;
    let res =
        send(KEY, json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})).await.unwrap();
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );
    let res = send(
        "sk-wrong",
        json!({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["type"], "authentication_error");
    assert_eq!(g.meter.balance(VAULT).unsettled, before);
}

#[tokio::test]
async fn an_azure_deployment_is_reached_at_its_url_with_its_api_key_and_version() {
    // This test's own variable: no other test reads it.
    std::env::set_var("COMPUX_TEST_AZURE_KEY", "azure-secret");
    let sim = provider("azure", None).await;
    let mut model = Model::priced(MODEL, 1_000_000, 2_000_000);
    model.upstream_model = Some("my-gpt-deployment".into());
    let mut p = Provider::new("azure (simulated)", sim.azure_base_url(), vec![model]);
    (p.kind, p.api_key_env) = (Protocol::Azure, Some("COMPUX_TEST_AZURE_KEY".into()));
    let (client, g, _dir) = start(config(vec![p.clone()]), 10_000_000).await;
    let reply = client.chat().create(ask(50)).await.unwrap();
    assert_eq!(reply.model, "my-gpt-deployment", "the deployment in the URL served it");
    assert_eq!(reply.choices[0].message.content.as_deref(), Some("[azure] simulated reply"));
    let u = reply.usage.unwrap();
    let expected =
        (u.prompt_tokens as u64 * 1_000_000 + u.completion_tokens as u64 * 2_000_000).div_ceil(1_000_000);
    assert_eq!(g.meter.balance(VAULT).unsettled, expected);

    // Without its key Azure refuses (401): the marketplace's credentials failed, not the
    // caller's key, so the provider is failed over (none left: 502 naming it), uncharged.
    p.api_key_env = Some("COMPUX_TEST_AZURE_KEY_NEVER_SET".into());
    let (client, g, _dir) = start(config(vec![p]), 10_000_000).await;
    let res = post_chat(
        client.config().api_base(),
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status().as_u16(), 502);
    let e: Value = res.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("HTTP 401"), "{e}");
    assert_eq!((g.meter.balance(VAULT).unsettled, g.meter.balance(VAULT).held), (0, 0));
}
