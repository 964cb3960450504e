//! Anthropic's Messages API served inbound (`POST /v1/messages`), so code written for the
//! Anthropic SDK changes only its base URL. The request is translated to the OpenAI chat
//! request the gateway serves, so it is authenticated, held, routed to a provider of any
//! protocol, charged and receipted exactly like a chat completion; the reply, the stream
//! and the errors are translated back into Anthropic's shape. The key may come as
//! `x-api-key` (the Anthropic SDK's) or as a bearer token.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::providers::{sse_data, sse_event_end};

/// The largest reply body translated back (a chat completion is far smaller).
const MAX_REPLY_BYTES: usize = 64 << 20;

/// Serves one Messages request through `chat`, the gateway's chat completion path.
pub async fn serve<F, Fut>(mut headers: HeaderMap, body: Bytes, chat: F) -> Response
where
    F: FnOnce(HeaderMap, Bytes) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("The request body is not valid JSON: {e}")),
    };
    let chat_body = match to_chat(&request) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if !headers.contains_key("authorization") {
        let key = headers.get("x-api-key").and_then(|k| k.to_str().ok()).map(|k| format!("Bearer {k}"));
        if let Some(v) = key.and_then(|k| HeaderValue::from_str(&k).ok()) {
            headers.insert("authorization", v);
        }
    }
    let res = match chat(headers, Bytes::from(chat_body.to_string())).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    let (mut parts, body) = res.into_parts();
    if parts.status.is_success() && request["stream"] == json!(true) {
        parts.headers.insert("content-type", HeaderValue::from_static("text/event-stream"));
        return Response::from_parts(parts, Body::from_stream(events(body)));
    }
    let bytes = axum::body::to_bytes(body, MAX_REPLY_BYTES).await.unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let out = if parts.status.is_success() {
        to_message(&v)
    } else {
        error_body(parts.status, v["error"]["message"].as_str().unwrap_or("The request failed."))
    };
    parts.headers.remove("content-length");
    parts.headers.insert("content-type", HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(out.to_string()))
}

/// Anthropic's error type for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 504 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(status: StatusCode, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(error_body(status, message))).into_response()
}

/// The OpenAI chat request for a Messages request.
fn to_chat(v: &Value) -> Result<Value, String> {
    let model = v["model"].as_str().ok_or("model: Field required")?;
    let max_tokens = v["max_tokens"].as_u64().ok_or("max_tokens: Field required (an integer)")?;
    let mut messages = Vec::new();
    match &v["system"] {
        Value::Null => {}
        Value::String(s) => messages.push(json!({"role": "system", "content": s})),
        Value::Array(blocks) => {
            let text: String =
                blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n\n");
            messages.push(json!({"role": "system", "content": text}));
        }
        _ => return Err("system: a string or a list of text blocks".into()),
    }
    let turns = v["messages"].as_array().filter(|m| !m.is_empty()).ok_or("messages: Field required")?;
    for (i, m) in turns.iter().enumerate() {
        let at = |e: String| format!("messages.{i}: {e}");
        match (m["role"].as_str(), &m["content"]) {
            (Some(role @ ("user" | "assistant")), Value::String(s)) => {
                messages.push(json!({"role": role, "content": s}));
            }
            (Some("user"), Value::Array(blocks)) => user_turn(blocks, &mut messages).map_err(at)?,
            (Some("assistant"), Value::Array(blocks)) => messages.push(assistant_turn(blocks)),
            (Some("user" | "assistant"), _) => {
                return Err(at("content: a string or a list of blocks".into()))
            }
            _ => return Err(at("role: Input should be 'user' or 'assistant'".into())),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), json!(max_tokens));
    for key in ["temperature", "top_p"] {
        if let Some(x) = v.get(key).filter(|x| x.is_number()) {
            out.insert(key.into(), x.clone());
        }
    }
    if let Some(stop) = v["stop_sequences"].as_array() {
        out.insert("stop".into(), Value::Array(stop.clone()));
    }
    if v["stream"] == json!(true) {
        out.insert("stream".into(), json!(true));
        // The usage chunk carries what message_delta reports.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = v["tools"].as_array() {
        let functions: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                if let Some(d) = t["description"].as_str() {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(functions));
    }
    let choice = &v["tool_choice"];
    let mapped = match choice["type"].as_str() {
        None => None,
        Some("auto") => Some(json!("auto")),
        Some("any") => Some(json!("required")),
        Some("none") => Some(json!("none")),
        Some("tool") => Some(json!({"type": "function", "function": {"name": choice["name"]}})),
        Some(other) => return Err(format!("tool_choice.type: {other} is not supported")),
    };
    if let Some(c) = mapped {
        out.insert("tool_choice".into(), c);
    }
    if choice["disable_parallel_tool_use"] == json!(true) {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    if let Some(user) = v["metadata"]["user_id"].as_str() {
        out.insert("user".into(), json!(user));
    }
    // The relayer's routing preferences, as on chat completions.
    if let Some(p) = v.get("provider") {
        out.insert("provider".into(), p.clone());
    }
    Ok(Value::Object(out))
}

/// A user turn's blocks: its tool results as `tool` messages (OpenAI wants them right after
/// the assistant's calls), then its text and images as one user message.
fn user_turn(blocks: &[Value], messages: &mut Vec<Value>) -> Result<(), String> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") => {
                let s = &b["source"];
                let url = match s["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        s["media_type"].as_str().unwrap_or_default(),
                        s["data"].as_str().unwrap_or_default()
                    ),
                    Some("url") => s["url"].as_str().unwrap_or_default().to_string(),
                    _ => return Err(format!("content.{j}.source: base64 or url")),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_result") => {
                let content = match &b["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a.iter().filter_map(|x| x["text"].as_str()).collect(),
                    Value::Null => String::new(),
                    _ => return Err(format!("content.{j}.content: a string or text blocks")),
                };
                messages.push(json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}));
            }
            other => return Err(format!("content.{j}.type: {other:?} is not supported")),
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An assistant turn's text and tool uses as one assistant message.
fn assistant_turn(blocks: &[Value]) -> Value {
    let text: String =
        blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
        .collect();
    let mut m =
        json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    m
}

fn stop_reason(finish: &Value) -> Value {
    match finish.as_str() {
        None => Value::Null,
        Some("length") => json!("max_tokens"),
        Some("tool_calls") => json!("tool_use"),
        Some("content_filter") => json!("refusal"),
        Some(_) => json!("end_turn"),
    }
}

/// OpenAI usage in Anthropic's shape (its `input_tokens` excludes cache reads and writes).
fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let details = &u["prompt_tokens_details"];
    let (cached, written) = (n(&details["cached_tokens"]), n(&details["cache_write_tokens"]));
    json!({
        "input_tokens": n(&u["prompt_tokens"]).saturating_sub(cached + written),
        "output_tokens": n(&u["completion_tokens"]),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    })
}

/// An OpenAI chat completion as an Anthropic message.
fn to_message(v: &Value) -> Value {
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for c in message["tool_calls"].as_array().into_iter().flatten() {
        let input: Value =
            serde_json::from_str(c["function"]["arguments"].as_str().unwrap_or("{}")).unwrap_or(json!({}));
        content
            .push(json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": input}));
    }
    json!({
        "id": v["id"], "type": "message", "role": "assistant", "model": v["model"], "content": content,
        "stop_reason": stop_reason(&choice["finish_reason"]), "stop_sequence": null, "usage": usage(&v["usage"]),
    })
}

/// The block a stream has open.
#[derive(PartialEq)]
enum Open {
    None,
    Text,
    Tool,
}

/// OpenAI chunks as Anthropic stream events.
struct Events {
    started: bool,
    open: Open,
    /// The index of the next content block.
    next: usize,
    stop_reason: Value,
    usage: Value,
}

fn event(data: Value) -> String {
    format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or("message"))
}

impl Events {
    fn close(&mut self, out: &mut Vec<String>) {
        if self.open != Open::None {
            out.push(event(json!({"type": "content_block_stop", "index": self.next - 1})));
            self.open = Open::None;
        }
    }

    fn open(&mut self, kind: Open, block: Value, out: &mut Vec<String>) {
        self.close(out);
        out.push(event(json!({"type": "content_block_start", "index": self.next, "content_block": block})));
        self.open = kind;
        self.next += 1;
    }

    /// The events for one OpenAI event's data.
    fn on(&mut self, data: &str) -> Vec<String> {
        let mut out = Vec::new();
        if data == "[DONE]" {
            self.close(&mut out);
            let u = usage(&self.usage);
            out.push(event(json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": null}, "usage": u})));
            out.push(event(json!({"type": "message_stop"})));
            return out;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { return out };
        if let Some(e) = v.get("error") {
            let message = e["message"].as_str().unwrap_or("the stream failed");
            out.push(event(json!({"type": "error", "error": {"type": "api_error", "message": message}})));
            return out;
        }
        if !self.started {
            self.started = true;
            let message = json!({"id": v["id"], "type": "message", "role": "assistant", "content": [], "model": v["model"],
                                 "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}});
            out.push(event(json!({"type": "message_start", "message": message})));
        }
        if v["usage"].is_object() {
            self.usage = v["usage"].clone();
        }
        let choice = &v["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.open(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            }
            let index = self.next - 1;
            out.push(event(json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            if call["id"].is_string() {
                let block = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
                self.open(Open::Tool, block, &mut out);
            }
            if let Some(args) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
                let index = self.next.saturating_sub(1);
                let delta = json!({"type": "input_json_delta", "partial_json": args});
                out.push(event(json!({"type": "content_block_delta", "index": index, "delta": delta})));
            }
        }
        if !choice["finish_reason"].is_null() {
            self.stop_reason = stop_reason(&choice["finish_reason"]);
        }
        out
    }
}

/// The gateway's OpenAI stream, translated event by event.
fn events(body: Body) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut upstream = body.into_data_stream();
        let mut state = Events {
            started: false,
            open: Open::None,
            next: 0,
            stop_reason: Value::Null,
            usage: Value::Null,
        };
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(piece)) = upstream.next().await {
            buf.extend_from_slice(&piece);
            while let Some(end) = sse_event_end(&buf) {
                let raw: Vec<u8> = buf.drain(..end).collect();
                for e in state.on(&sse_data(&raw)) {
                    let _ = tx.send(Bytes::from(e)).await;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_request_becomes_a_chat_request() {
        let v = json!({
            "model": "claude-sonnet", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a cat"}, {"type": "text", "text": "And?"}]},
            ],
            "stop_sequences": ["END"], "stream": true,
            "tools": [{"name": "look", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        });
        let c = to_chat(&v).unwrap();
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,AAA");
        assert_eq!(m[2]["tool_calls"][0]["function"], json!({"name": "look", "arguments": "{\"x\":1}"}));
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "t1", "content": "a cat"}));
        assert_eq!(m[4]["content"][0]["text"], "And?");
        assert_eq!((c["stop"].clone(), c["tool_choice"].clone()), (json!(["END"]), json!("required")));
        assert_eq!(
            (c["parallel_tool_calls"].clone(), c["stream_options"]["include_usage"].clone()),
            (json!(false), json!(true))
        );
        assert!(to_chat(&json!({"model": "m", "messages": []})).unwrap_err().contains("max_tokens"));
    }

    #[test]
    fn an_openai_stream_becomes_the_messages_event_sequence() {
        let mut e = Events {
            started: false,
            open: Open::None,
            next: 0,
            stop_reason: Value::Null,
            usage: Value::Null,
        };
        let chunks = [
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"look","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#,
            "[DONE]",
        ];
        let out: Vec<String> = chunks.iter().flat_map(|c| e.on(c)).collect();
        let kinds: Vec<&str> =
            out.iter().map(|e| e.lines().next().unwrap().trim_start_matches("event: ")).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(out[7].contains(r#""stop_reason":"tool_use""#) && out[7].contains(r#""output_tokens":4"#));
    }
}
