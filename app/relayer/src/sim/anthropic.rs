//! SIMULATED Anthropic Messages API (`POST /v1/messages`), following its public reference:
//! the `anthropic-version` header and `model`, `max_tokens` and `messages` are required;
//! roles are `user` and `assistant`; content is a string or blocks (`text`, `image` with a
//! base64 or URL source, `tool_use`, `tool_result`); errors are
//! `{"type": "error", "error": {"type", "message"}}` with Anthropic's types (a configured
//! failure of 529 is `overloaded_error`). With `tool_choice` `any` or `tool` the reply is a
//! `tool_use` block; otherwise text. Streams send the documented event sequence:
//! `message_start`, `content_block_start`, `ping`, `content_block_delta`s,
//! `content_block_stop`, `message_delta` (stop reason, cumulative usage), `message_stop`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{bytes_of, delay_then_fail, messages_answer, Sim};

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message.into()}});
    (status, Json(body)).into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// Why `body` is not a valid Messages request, if it is not.
fn check(body: &Value) -> Result<(), String> {
    if !body["model"].is_string() {
        return Err("model: Field required".into());
    }
    if body["max_tokens"].as_u64().is_none_or(|n| n < 1) {
        return Err("max_tokens: Field required (an integer of at least 1)".into());
    }
    let messages = body["messages"].as_array().filter(|m| !m.is_empty()).ok_or("messages: Field required")?;
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
            return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant'"));
        }
        match &m["content"] {
            Value::String(_) => {}
            Value::Array(blocks) => {
                for (j, b) in blocks.iter().enumerate() {
                    check_block(b).map_err(|e| format!("messages.{i}.content.{j}: {e}"))?;
                }
            }
            _ => return Err(format!("messages.{i}.content: Input should be a string or a list of blocks")),
        }
    }
    for (i, t) in body["tools"].as_array().into_iter().flatten().enumerate() {
        if !t["name"].is_string() || !t["input_schema"].is_object() {
            return Err(format!("tools.{i}: `name` and `input_schema` are required"));
        }
    }
    if body["temperature"].as_f64().is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err("temperature: Input should be less than or equal to 1".into());
    }
    Ok(())
}

fn check_block(b: &Value) -> Result<(), String> {
    match b["type"].as_str() {
        Some("text") if b["text"].as_str().is_some_and(|t| !t.is_empty()) => Ok(()),
        Some("text") => Err("text content blocks must be non-empty".into()),
        Some("image") => match b["source"]["type"].as_str() {
            Some("base64") => match b["source"]["media_type"].as_str() {
                Some("image/jpeg" | "image/png" | "image/gif" | "image/webp") if b["source"]["data"].is_string() => Ok(()),
                _ => Err("source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'".into()),
            },
            Some("url") if b["source"]["url"].is_string() => Ok(()),
            _ => Err("source: an image source is base64 or url".into()),
        },
        Some("tool_use") if b["id"].is_string() && b["name"].is_string() && b["input"].is_object() => Ok(()),
        Some("tool_result") if b["tool_use_id"].is_string() => Ok(()),
        other => Err(format!("Input tag {other:?} found using 'type' does not match any of the expected tags")),
    }
}

/// The bytes of text in a prompt: strings, and the `text` and `content` of blocks.
fn prompt_bytes(v: &Value) -> u64 {
    match v {
        Value::Object(o) => ["text", "content"].iter().filter_map(|k| o.get(*k)).map(prompt_bytes).sum(),
        Value::Array(a) => a.iter().map(prompt_bytes).sum(),
        Value::Null => 0,
        other => bytes_of(other),
    }
}

/// What the simulated model answers: (text or none, tool call or none, output tokens, stop reason).
fn answer(sim: &Sim, body: &Value) -> (String, Option<Value>, u64, &'static str) {
    let max = body["max_tokens"].as_u64().unwrap_or(1);
    let forced = matches!(body["tool_choice"]["type"].as_str(), Some("any" | "tool"));
    let tool = forced
        .then(|| {
            let name = body["tool_choice"]["name"].as_str().or(body["tools"][0]["name"].as_str())?;
            Some(json!({"type": "tool_use", "id": format!("toolu_sim_{}", sim.served.load(Ordering::Relaxed)), "name": name, "input": {"query": "simulated"}}))
        })
        .flatten();
    messages_answer(sim, max, tool)
}

pub(super) async fn messages(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = delay_then_fail(&sim).await {
        let kind = match status.as_u16() {
            529 => "overloaded_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        return error(status, kind, format!("{} was told to fail", sim.opts.name));
    }
    if !headers.contains_key("anthropic-version") {
        return invalid("anthropic-version: header is required");
    }
    if let Err(e) = check(&body) {
        return invalid(e);
    }
    let prompt = (prompt_bytes(&body["messages"]) + prompt_bytes(&body["system"])).div_ceil(4)
        + 3
        + super::billed_extras(&body, "tools");
    // Anthropic's input_tokens excludes what was read from the cache.
    let cached = sim.opts.cached_tokens.min(prompt);
    let input = prompt - cached;
    let (text, tool, output, stop) = answer(&sim, &body);
    let id = format!("msg_sim_{}", sim.served.load(Ordering::Relaxed));
    if body["stream"].as_bool() == Some(true) {
        let events = stream(&id, &body["model"], &text, tool, (input, cached), output, stop);
        // A cut stream: message_start and the first half of the rest, no message_stop.
        let events = if sim.opts.cut_streams { events[..events.len().div_ceil(2)].to_vec() } else { events };
        return ([("content-type", "text/event-stream")], events.concat()).into_response();
    }
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(tool);
    Json(json!({
        "id": id, "type": "message", "role": "assistant", "model": body["model"], "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached},
    }))
    .into_response()
}

/// The stream's events, in order.
fn stream(
    id: &str,
    model: &Value,
    text: &str,
    tool: Option<Value>,
    (input, cached): (u64, u64),
    output: u64,
    stop: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut event =
        |data: Value| out.push(format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or("")));
    let usage = json!({"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached});
    event(
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "content": [],
                 "model": model, "stop_reason": null, "stop_sequence": null, "usage": usage}}),
    );
    let mut index = 0;
    if !text.is_empty() {
        event(
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        event(json!({"type": "ping"}));
        for (i, word) in text.split(' ').enumerate() {
            let piece = if i == 0 { word.to_string() } else { format!(" {word}") };
            event(
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            );
        }
        event(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if let Some(t) = tool {
        let start = json!({"type": "tool_use", "id": t["id"], "name": t["name"], "input": {}});
        event(json!({"type": "content_block_start", "index": index, "content_block": start}));
        let args = t["input"].to_string();
        let (a, b) = args.split_at(args.len() / 2);
        for piece in [a, b] {
            event(
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
            );
        }
        event(json!({"type": "content_block_stop", "index": index}));
    }
    event(
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}}),
    );
    event(json!({"type": "message_stop"}));
    out
}
