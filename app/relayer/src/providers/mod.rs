//! The protocols the relayer speaks upstream, one adapter each behind one trait: a request
//! arrives in OpenAI's shape, the adapter writes the provider's request, and turns its reply,
//! its stream and its errors back into OpenAI's shape, so routing, holds, failover and the
//! ledger treat every provider alike (docs/providers.md).

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;

use axum::body::Bytes;
use reqwest::StatusCode;
use serde_json::Value;

use crate::domain::catalog::{Protocol, Provider};
use crate::domain::meter::Refused;

/// The metered OpenAI endpoints. They differ in where the input is and whether they
/// generate tokens; everything else (holds, routing, the ledger) is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// The field holding the input the prompt bound is taken from.
    pub fn input(self) -> &'static str {
        match self {
            Endpoint::Chat => "messages",
            Endpoint::Completions => "prompt",
            Endpoint::Embeddings => "input",
        }
    }

    /// The fields that bound the generated tokens.
    pub fn max_token_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::Chat => &["max_tokens", "max_completion_tokens"],
            Endpoint::Completions => &["max_tokens"],
            Endpoint::Embeddings => &[],
        }
    }
}

/// One attempt at one provider, as the adapter is asked to make it.
pub struct Call<'a> {
    pub endpoint: Endpoint,
    /// The caller's body, in OpenAI's shape (routing preferences removed).
    pub body: &'a Value,
    /// The provider's own id for the model.
    pub model: &'a str,
    pub stream: bool,
    /// The most tokens the reply may generate (the hold's bound).
    pub max_tokens: u64,
    /// From sending to the reply's first byte, and for the whole attempt.
    pub first_byte: std::time::Duration,
    pub total: std::time::Duration,
}

#[cfg(test)]
impl<'a> Call<'a> {
    /// A non-streamed chat call of `body` to `model`, bounded at `max_tokens` (unit tests).
    pub fn chat(body: &'a Value, model: &'a str, max_tokens: u64) -> Call<'a> {
        let second = std::time::Duration::from_secs(1);
        Call {
            endpoint: Endpoint::Chat,
            body,
            model,
            stream: false,
            max_tokens,
            first_byte: second,
            total: second,
        }
    }
}

/// Turns one protocol's streamed events into OpenAI chunk events.
pub trait StreamTranslator: Send {
    /// The next complete upstream event at the start of `buf`, taken out of it, or `None`
    /// until more bytes arrive. Server-sent events unless the protocol frames otherwise.
    fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        let end = sse_event_end(buf)?;
        Some(buf.drain(..end).collect())
    }
    /// The OpenAI server-sent events (`data: ...\n\n`, `data: [DONE]\n\n` at the end) for
    /// one upstream event.
    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>>;
    /// The usage the provider reported before its final event, if its protocol reports it
    /// early (Anthropic's `message_start`): what a stream cut short is charged from.
    fn usage_so_far(&self) -> Option<crate::domain::pricing::Tokens> {
        None
    }
}

/// One upstream protocol.
pub trait Adapter: Sync {
    /// Whether the protocol has an equivalent of `endpoint`.
    fn serves(&self, endpoint: Endpoint) -> bool;
    /// The upstream request, or why the body cannot be expressed in this protocol (a client
    /// error: nothing is sent, nothing charged).
    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String>;
    /// A successful non-streamed reply, in OpenAI's shape (`model`: the provider's id for
    /// it, for protocols whose replies do not say).
    fn reply(&self, body: Value, model: &str) -> Result<Value, String>;
    /// An error reply's body, in OpenAI's shape (`{"error": {...}}`).
    fn error(&self, body: Bytes) -> Bytes;
    /// A translator for one streamed reply of `model`.
    fn stream(&self, model: &str) -> Box<dyn StreamTranslator>;
}

/// The adapter for a provider's protocol.
pub fn adapter(kind: Protocol) -> &'static dyn Adapter {
    match kind {
        Protocol::OpenAi => &openai::OpenAi::Compatible,
        Protocol::Anthropic => &anthropic::Anthropic,
        Protocol::Gemini => &gemini::Gemini,
        Protocol::Azure => &openai::OpenAi::Azure,
        Protocol::Bedrock => &bedrock::Bedrock,
    }
}

/// What came of one attempt at one provider.
pub enum Attempt {
    Served(Value),
    /// A streamed reply whose status was 2xx and whose first bytes arrived: relayed
    /// (translated) as the rest arrives.
    Streaming(Stream),
    /// The provider answered a client error (or the request could not be translated):
    /// passed to the caller in OpenAI's shape, nothing charged.
    ClientError {
        status: StatusCode,
        body: Bytes,
    },
    /// Connect error, 5xx, or the provider refusing or rate-limiting our credentials (401,
    /// 403, 429): the provider did no billable work, so the next one is tried.
    Failed(Failure),
    /// The request reached the provider, which may be working on it (and will bill it), and
    /// no usable reply came: none in time, a broken connection, or a 2xx that cannot be read.
    /// Not failed over (that would pay twice); charged its hold.
    Unanswered(Failure),
}

/// A stream under way: its first bytes, the rest, and the translator for its protocol.
pub struct Stream {
    pub first: Bytes,
    pub rest: reqwest::Response,
    pub translator: Box<dyn StreamTranslator>,
}

/// Why a provider could not serve an attempt.
#[derive(Debug)]
pub enum Failure {
    Timeout,
    Connect(String),
    Status(StatusCode),
    /// 429 to the marketplace's own credentials, with the provider's Retry-After if any.
    RateLimited(Option<std::time::Duration>),
    BadBody(String),
    /// Not tried: the attempt could cost more than the caller's credits allow.
    Unaffordable(Refused),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Connect(e) => write!(f, "{e}"),
            Failure::Status(s) => write!(f, "HTTP {s}"),
            Failure::RateLimited(_) => f.write_str("rate-limited the marketplace (HTTP 429)"),
            Failure::BadBody(e) => write!(f, "unreadable reply: {e}"),
            Failure::Unaffordable(r) => {
                write!(f, "not tried, it could cost more than the credits allow ({r})")
            }
        }
    }
}

/// The OpenAI error body for a request the adapter could not translate.
fn untranslatable(message: &str) -> Bytes {
    let e = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "unsupported_by_provider"}});
    Bytes::from(e.to_string())
}

/// Sends `call` to `p` in its protocol and reads the start of the answer.
pub async fn call(http: &reqwest::Client, p: &Provider, call: &Call<'_>) -> Attempt {
    let adapter = adapter(p.kind);
    let req = match adapter.request(http, p, call) {
        Ok(r) => r,
        Err(why) => {
            return Attempt::ClientError { status: StatusCode::BAD_REQUEST, body: untranslatable(&why) }
        }
    };
    let res = match tokio::time::timeout(call.first_byte, req.timeout(call.total).send()).await {
        Ok(Ok(r)) => r,
        // Never connected (refused, unreachable, TLS, the connect deadline): never sent.
        Ok(Err(e)) if e.is_connect() => return Attempt::Failed(Failure::Connect(e.to_string())),
        Ok(Err(e)) if e.is_timeout() => return Attempt::Unanswered(Failure::Timeout),
        // Sent, then the connection broke: the provider may have the work.
        Ok(Err(e)) => return Attempt::Unanswered(Failure::Connect(e.to_string())),
        Err(_) => return Attempt::Unanswered(Failure::Timeout),
    };
    let status = res.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        // The provider sees only the marketplace's key: its limit is ours, not the caller's.
        let wait = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        return Attempt::Failed(Failure::RateLimited(wait));
    }
    // A provider refusing the marketplace's own credentials (401, 403) is the provider's
    // failure, not the caller's: fail over, and never tell the caller its key is wrong. So
    // is a redirect (redirects are not followed: a misconfigured base URL).
    if status.is_server_error()
        || status.is_redirection()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
    {
        return Attempt::Failed(Failure::Status(status));
    }
    if call.stream && status.is_success() {
        // Nothing has reached the caller until the first bytes arrive: a stream that fails
        // before them fails over like any other failure.
        let mut rest = res;
        return match rest.chunk().await {
            Ok(Some(first)) => {
                Attempt::Streaming(Stream { first, rest, translator: adapter.stream(call.model) })
            }
            Ok(None) => {
                Attempt::Unanswered(Failure::BadBody("the stream ended before its first event".into()))
            }
            // Accepted (2xx), then silent or broken: the provider has the work.
            Err(e) if e.is_timeout() => Attempt::Unanswered(Failure::Timeout),
            Err(e) => Attempt::Unanswered(Failure::Connect(e.to_string())),
        };
    }
    let bytes = match res.bytes().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() && status.is_success() => return Attempt::Unanswered(Failure::Timeout),
        Err(e) if status.is_success() => return Attempt::Unanswered(Failure::Connect(e.to_string())),
        Err(e) if e.is_timeout() => return Attempt::Failed(Failure::Timeout),
        Err(e) => return Attempt::Failed(Failure::Connect(e.to_string())),
    };
    if !status.is_success() {
        return Attempt::ClientError { status, body: adapter.error(bytes) };
    }
    // A 2xx is work done (a prompt blocked by the provider's safety filter is billed too):
    // a reply that cannot be read or translated is charged its hold, never failed over.
    match serde_json::from_slice(&bytes).map_err(|e| e.to_string()).and_then(|v| adapter.reply(v, call.model))
    {
        Ok(body) => Attempt::Served(body),
        Err(e) => Attempt::Unanswered(Failure::BadBody(e)),
    }
}

/// The value of environment variable `var`, the provider's API key, if set.
fn api_key(p: &Provider) -> Option<String> {
    p.api_key_env.as_deref().and_then(|var| std::env::var(var).ok())
}

/// `req` with the provider's API key, if it has one, in header `name`.
fn with_key(req: reqwest::RequestBuilder, p: &Provider, name: &str) -> reqwest::RequestBuilder {
    match api_key(p) {
        Some(key) => req.header(name, key),
        None => req,
    }
}

/// `base_url` joined with `path`.
fn url(p: &Provider, path: &str) -> String {
    format!("{}/{}", p.base_url.trim_end_matches('/'), path)
}

/// The server-sent event `data: <v>`.
fn sse(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

/// Where the first complete server-sent event in `buf` ends: events end with a blank line,
/// `\n\n` or `\r\n\r\n` (Google's streams use the latter).
pub(crate) fn sse_event_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| match &buf[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\r', b'\n', b'\r', b'\n', ..] => Some(i + 4),
        _ => None,
    })
}

/// The data of one server-sent event (its `data:` lines joined).
pub(crate) fn sse_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect()
}

/// The text of a message content that is a string or an array of text parts.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            parts.iter().map(|p| (p["type"] == "text").then(|| p["text"].as_str()).flatten()).collect()
        }
        _ => None,
    }
}

/// A `data:<media type>;base64,<data>` URL's parts; `None` for any other URL.
fn data_url(url: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(data) = url.strip_prefix("data:") else { return Ok(None) };
    data.split_once(";base64,").map(Some).ok_or_else(|| "an image data URL must be base64".to_string())
}

/// The OpenAI chunk event of `delta` (and `finish`) in a stream `id` of `model`.
fn chunk(id: &str, model: &str, created: i64, delta: Value, finish: Value) -> Vec<u8> {
    sse(&serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
    }))
}

/// The OpenAI usage chunk (no choices) and `[DONE]` that end a stream.
fn stream_end(id: &str, model: &str, created: i64, usage: Value) -> Vec<Vec<u8>> {
    let last = serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": created,
                                   "model": model, "choices": [], "usage": usage});
    vec![sse(&last), b"data: [DONE]\n\n".to_vec()]
}

/// An OpenAI error object of `kind` (its type and code).
fn openai_error(kind: &str, message: &str) -> Value {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
}

/// A provider's error body as an OpenAI error: its `error.message` (or the whole body) with
/// the kind `kind_of` reads from it.
fn error_body(body: &[u8], kind_of: impl Fn(&Value) -> String) -> Bytes {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .map_or_else(|| format!("The provider answered: {}", String::from_utf8_lossy(body)), str::to_string);
    Bytes::from(openai_error(&kind_of(&v), &message).to_string())
}

/// OpenAI's usage object from a protocol's counts: every prompt token (cache reads and
/// writes included), the reads and writes apart, and the output.
fn openai_usage(prompt: u64, cache_read: u64, cache_write: u64, completion: u64) -> Value {
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
    })
}

/// An OpenAI tool call's arguments (a JSON string) as the object the protocols send.
fn call_arguments(call: &Value) -> Result<Value, String> {
    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
    serde_json::from_str(arguments).map_err(|e| format!("tool call arguments are not JSON: {e}"))
}

/// OpenAI's `stop` (a string or a list) as a list of stop sequences.
fn stop_sequences(stop: &Value) -> Option<Value> {
    match stop {
        Value::String(s) => Some(Value::Array(vec![Value::String(s.clone())])),
        Value::Array(a) => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// Appends a turn of `role`, merged into the last one when it has the same role (both
/// Anthropic and Gemini want turns to alternate).
fn push_turn(turns: &mut Vec<(String, Vec<Value>)>, role: &str, parts: Vec<Value>) {
    match turns.last_mut() {
        Some((last, existing)) if last == role => existing.extend(parts),
        _ => turns.push((role.to_string(), parts)),
    }
}

/// An OpenAI chat completion of one choice: `text` (null when only tools were called) and
/// the tool `calls`.
fn completion(
    id: Value,
    model: &Value,
    text: String,
    calls: Vec<Value>,
    finish: Value,
    usage: Value,
) -> Value {
    let mut message = serde_json::json!({"role": "assistant", "content": text, "refusal": null});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": crate::clock::now_ms() / 1000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": usage,
    })
}
