//! A SIMULATED provider, for the local demo and the tests (this machine has no internet).
//! It answers OpenAI's `/v1/chat/completions` (plain and streamed), `/v1/completions` and
//! `/v1/embeddings`, Anthropic's `/v1/messages` (`anthropic.rs`), Gemini's
//! `/v1beta/models/{model}:generateContent` (`gemini.rs`), AWS Bedrock's
//! `/model/{model}/converse` and `/converse-stream` (`bedrock.rs`) and Azure OpenAI's
//! deployment route, with canned replies
//! whose token counts follow the request, and can be told to fail. Every reply says it is
//! simulated.

mod anthropic;
mod bedrock;
mod gemini;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Shown in every reply, e.g. "sim-cheap (simulated)".
    pub name: String,
    /// Answer every request with this status instead (to test failover).
    pub fail_status: Option<u16>,
    /// Completion tokens per reply, capped by the request's max_tokens.
    pub completion_tokens: u64,
    /// Wait this long before answering (to test timeouts and latency routing).
    pub latency_ms: u64,
    /// And up to this much more, drawn per request (slow requests of many lengths).
    pub latency_spread_ms: u64,
    /// Streams stop half-way, without their terminal event or usage (a broken connection).
    pub cut_streams: bool,
    /// This many prompt tokens (at most the prompt) are reported as read from the
    /// provider's prompt cache, as after an earlier identical prefix.
    pub cached_tokens: u64,
    /// A provider bug: writes `completion_tokens` whatever bound the request sets (what the
    /// relayer does when a provider bills more than the hold is tested with it).
    pub ignores_max_tokens: bool,
}

impl Sim {
    /// The most tokens this provider writes for a request that asks for at most `asked`.
    fn bound(&self, asked: u64) -> u64 {
        if self.opts.ignores_max_tokens {
            u64::MAX
        } else {
            asked
        }
    }
}

struct Sim {
    opts: SimOptions,
    served: AtomicU64,
}

/// How many requests a simulated provider has answered, failures included.
#[derive(Clone)]
pub struct SimHandle {
    pub addr: SocketAddr,
    sim: Arc<Sim>,
}

impl SimHandle {
    pub fn requests(&self) -> u64 {
        self.sim.served.load(Ordering::Relaxed)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL of its Azure OpenAI API (`/openai`, as Azure's).
    pub fn azure_base_url(&self) -> String {
        format!("http://{}/openai", self.addr)
    }

    /// The base URL of its AWS Bedrock runtime API (the endpoint's root, as
    /// `https://bedrock-runtime.<region>.amazonaws.com`).
    pub fn bedrock_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of its Gemini API (`/v1beta`, as Google's).
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }
}

async fn chat(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = failure(&sim).await {
        return f;
    }
    let text: u64 =
        body["messages"].as_array().map_or(0, |m| m.iter().map(|m| content_bytes(&m["content"])).sum());
    let prompt_tokens = text.div_ceil(4) + 3 + billed_extras(&body, "tools");
    let max =
        sim.bound(body["max_completion_tokens"].as_u64().or(body["max_tokens"].as_u64()).unwrap_or(u64::MAX));
    // Each of the `n` choices is written (and billed) in full, as OpenAI bills them.
    let n = body["n"].as_u64().unwrap_or(1).max(1);
    let completion_tokens = sim.opts.completion_tokens.min(max).saturating_mul(n);
    let text = format!("[{}] simulated reply", sim.opts.name);
    let id = format!("chatcmpl-sim-{}", sim.served.load(Ordering::Relaxed));
    let cached = sim.opts.cached_tokens.min(prompt_tokens);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens,
                       "prompt_tokens_details": {"cached_tokens": cached}});
    let call = forced_call(&body).map(|name| {
        let id = format!("call_sim_{}", sim.served.load(Ordering::Relaxed));
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": "{\"query\":\"simulated\"}"}})
    });
    if body["stream"].as_bool() == Some(true) {
        return stream(&id, &body, &text, call, usage, sim.opts.cut_streams);
    }
    let (message, finish) = match call {
        Some(c) => (json!({"role": "assistant", "content": null, "tool_calls": [c]}), "tool_calls"),
        None => (json!({"role": "assistant", "content": text}), "stop"),
    };
    let reply = json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "system_fingerprint": "compux-simulated",
        "choices": (0..n).map(|i| json!({"index": i, "message": message, "finish_reason": finish})).collect::<Vec<_>>(),
        "usage": usage
    });
    Json(reply).into_response()
}

/// The configured latency, then the configured failure if any.
async fn failure(sim: &Sim) -> Option<Response> {
    let status = delay_then_fail(sim).await?;
    let err = json!({"error": {"message": format!("{} was told to fail", sim.opts.name), "type": "server_error", "param": null, "code": null}});
    Some((status, Json(err)).into_response())
}

/// The configured latency, then the status to fail with, if any.
async fn delay_then_fail(sim: &Sim) -> Option<StatusCode> {
    let spread = match sim.opts.latency_spread_ms {
        0 => 0,
        ms => (uuid::Uuid::new_v4().as_u128() % u128::from(ms)) as u64,
    };
    if sim.opts.latency_ms + spread > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(sim.opts.latency_ms + spread)).await;
    }
    Some(StatusCode::from_u16(sim.opts.fail_status?).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The rest of a Messages-style answer (Anthropic's and Bedrock's share their stop reasons)
/// once the forced `tool` use, if any, is known: (text or none, tool, output tokens, stop
/// reason) for a reply of at most `max` tokens.
fn messages_answer(sim: &Sim, max: u64, tool: Option<Value>) -> (String, Option<Value>, u64, &'static str) {
    let max = sim.bound(max);
    let output = sim.opts.completion_tokens.min(max);
    let stop = match (&tool, sim.opts.completion_tokens > max) {
        (Some(_), _) => "tool_use",
        (None, true) => "max_tokens",
        (None, false) => "end_turn",
    };
    let text = if tool.is_some() { String::new() } else { format!("[{}] simulated reply", sim.opts.name) };
    (text, tool, output, stop)
}

/// The bytes of a message's text: a string, or its text parts.
fn content_bytes(content: &Value) -> u64 {
    match content {
        Value::String(s) => s.len() as u64,
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).map(|t| t.len() as u64).sum(),
        _ => 0,
    }
}

/// Prompt tokens a provider bills beyond the messages' text: the tool definitions under
/// `tools_key` (about four bytes a token, as text) and every image, in any protocol's shape
/// (OpenAI's `image_url` and Anthropic's `image` parts, Gemini's `inlineData`, Bedrock's
/// `image` blocks), at SIM_IMAGE_TOKENS each whatever its bytes.
pub(crate) fn billed_extras(body: &Value, tools_key: &str) -> u64 {
    fn text(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.len() as u64,
            Value::Array(a) => a.iter().map(text).sum(),
            Value::Object(o) => o.values().map(text).sum(),
            _ => 0,
        }
    }
    fn images(v: &Value) -> u64 {
        match v {
            Value::Object(o)
                if matches!(o.get("type").and_then(Value::as_str), Some("image_url" | "image"))
                    || o.contains_key("inlineData")
                    || o.get("image").is_some_and(Value::is_object) =>
            {
                1
            }
            Value::Object(o) => o.values().map(images).sum(),
            Value::Array(a) => a.iter().map(images).sum(),
            _ => 0,
        }
    }
    text(&body[tools_key]).div_ceil(4) + images(body) * SIM_IMAGE_TOKENS
}

/// What the simulated providers bill for one image, in prompt tokens: OpenAI's price of a
/// 1024x1024 high-detail image (85 + 6 tiles of 170).
pub const SIM_IMAGE_TOKENS: u64 = 1_105;

fn bytes_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(bytes_of).sum(),
        _ => 1,
    }
}

async fn completion(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = failure(&sim).await {
        return f;
    }
    let prompt_tokens = bytes_of(&body["prompt"]).div_ceil(4) + 1;
    // Legacy completions default to 16 tokens; each prompt gets `best_of` (at least `n`)
    // generations, all billed.
    let prompts = match &body["prompt"] {
        Value::Array(a) if a.first().is_some_and(|x| !x.is_number()) => a.len() as u64,
        _ => 1,
    };
    let per_prompt = body["best_of"].as_u64().unwrap_or(1).max(body["n"].as_u64().unwrap_or(1)).max(1);
    let completion_tokens =
        sim.opts.completion_tokens.min(body["max_tokens"].as_u64().unwrap_or(16)) * per_prompt * prompts;
    let id = format!("cmpl-sim-{}", sim.served.load(Ordering::Relaxed));
    let text = format!(" [{}] simulated completion", sim.opts.name);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    let reply = |choices: Value, usage: Value| {
        json!({"id": id, "object": "text_completion", "created": 0, "model": body["model"],
               "system_fingerprint": "compux-simulated", "choices": choices, "usage": usage})
    };
    let choice = |text: &str, finish: Value| json!([{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]);
    if body["stream"].as_bool() != Some(true) {
        return Json(reply(choice(&text, json!("length")), usage)).into_response();
    }
    // Streamed as the legacy completions reference has it: text pieces, the finish reason,
    // the usage chunk (empty choices) when asked for, then [DONE].
    let mut out = String::new();
    for word in text.split_inclusive(' ') {
        out += &format!("data: {}\n\n", reply(choice(word, Value::Null), Value::Null));
    }
    out += &format!("data: {}\n\n", reply(choice("", json!("length")), Value::Null));
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        out += &format!("data: {}\n\n", reply(json!([]), usage));
    }
    out += "data: [DONE]\n\n";
    ([("content-type", "text/event-stream")], out).into_response()
}

async fn embedding(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = failure(&sim).await {
        return f;
    }
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(a) if a.iter().all(|x| !x.is_number()) => a.clone(),
        other => vec![other.clone()],
    };
    let prompt_tokens: u64 = inputs.iter().map(|i| bytes_of(i).div_ceil(4).max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            // A deterministic 8-dimensional vector from the input's bytes (simulated).
            let seed = bytes_of(x) as f64;
            let v: Vec<f64> = (0..8).map(|k| ((seed + k as f64) * 0.37).sin()).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Json(json!({"object": "list", "model": body["model"], "data": data,
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}))
    .into_response()
}

/// The reply as server-sent events, word by word, then (when asked) the usage chunk with
/// empty `choices`, then `[DONE]`, as OpenAI streams.
/// Azure OpenAI's chat route (SIMULATED): an `api-version` query and an `api-key` header
/// are required, as Azure's reference has them; the deployment names the model.
async fn azure_chat(
    State(sim): State<Arc<Sim>>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
    Json(mut body): Json<Value>,
) -> Response {
    if !query.unwrap_or_default().split('&').any(|q| q.starts_with("api-version=") && q.len() > 12) {
        let err = json!({"error": {"code": "404", "message": "Resource not found"}});
        return (StatusCode::NOT_FOUND, Json(err)).into_response();
    }
    if headers.get("api-key").is_none_or(|k| k.is_empty()) {
        let err = json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    body["model"] = Value::String(deployment);
    chat(State(sim), Json(body)).await
}

/// The function a request forces the model to call (`tool_choice` `required`: the first
/// tool; or one named), if any.
fn forced_call(body: &Value) -> Option<String> {
    let name = match &body["tool_choice"] {
        Value::String(s) if s == "required" => &body["tools"][0]["function"]["name"],
        Value::Object(o) => &o["function"]["name"],
        _ => return None,
    };
    name.as_str().map(str::to_string)
}

fn stream(id: &str, request: &Value, text: &str, call: Option<Value>, usage: Value, cut: bool) -> Response {
    let chunk = |choices: Value, usage: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": request["model"],
                       "system_fingerprint": "compux-simulated", "choices": choices, "usage": usage});
        format!("data: {c}\n\n")
    };
    let mut out = chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        Value::Null,
    );
    let finish = match call {
        Some(c) => {
            // The call's id and name first, then its arguments in two pieces.
            let args = c["function"]["arguments"].as_str().unwrap_or("{}").to_string();
            let start = json!({"index": 0, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": ""}});
            out += &chunk(
                json!([{"index": 0, "delta": {"tool_calls": [start]}, "finish_reason": null}]),
                Value::Null,
            );
            let (a, b) = args.split_at(args.len() / 2);
            for piece in [a, b] {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                out += &chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]), Value::Null);
            }
            "tool_calls"
        }
        None => {
            let words: Vec<&str> = text.split(' ').collect();
            for (i, word) in words.iter().enumerate() {
                if cut && i >= words.len().div_ceil(2) {
                    // The connection breaks: no more words, no finish, no usage, no [DONE].
                    return ([("content-type", "text/event-stream")], out).into_response();
                }
                let piece = if i == 0 { word.to_string() } else { format!(" {word}") };
                out += &chunk(
                    json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
                    Value::Null,
                );
            }
            "stop"
        }
    };
    out += &chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}]), Value::Null);
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        out += &chunk(json!([]), usage);
    }
    out += "data: [DONE]\n\n";
    ([("content-type", "text/event-stream")], out).into_response()
}

/// Starts a simulated provider on `addr` (port 0 for any).
pub async fn spawn(opts: SimOptions, addr: SocketAddr) -> std::io::Result<SimHandle> {
    let sim = Arc::new(Sim { opts, served: AtomicU64::new(0) });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completion))
        .route("/v1/embeddings", post(embedding))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1beta/models/{action}", post(gemini::generate))
        .route("/model/{model}/{action}", post(bedrock::converse))
        .route("/openai/deployments/{deployment}/chat/completions", post(azure_chat))
        .with_state(sim.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim })
}
