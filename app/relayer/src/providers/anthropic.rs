//! Anthropic's Messages API (`POST {base_url}/messages`, `x-api-key`, `anthropic-version`).
//!
//! Request: system and developer messages become `system`; user content parts become text
//! and image blocks (data URLs as base64 sources, other URLs as URL sources); assistant tool
//! calls become `tool_use` blocks and `tool` messages `tool_result` blocks in a user turn;
//! consecutive turns of one role are merged; `max_tokens` (required by Anthropic) is the
//! hold's bound; `stop` becomes `stop_sequences`, `tools` and `tool_choice` are mapped,
//! `parallel_tool_calls: false` disables parallel tool use, `user` becomes
//! `metadata.user_id`; `temperature` above Anthropic's maximum of 1 is lowered to 1. Fields
//! with no Anthropic equivalent (`n`, `logprobs`, `seed`, penalties, `response_format`..)
//! are dropped. Reply, stream and errors come back in OpenAI's shape (docs/providers.md).

use axum::body::Bytes;
use serde_json::{json, Map, Value};

use super::{
    call_arguments, chunk, completion, data_url, error_body, openai_error, openai_usage, push_turn, sse,
    sse_data, stop_sequences, stream_end, text_of, url, with_key, Adapter, Call, Endpoint, StreamTranslator,
};
use crate::clock::now_ms;
use crate::domain::catalog::Provider;
use crate::domain::pricing::Tokens;

/// The API version the adapter is written against.
pub const VERSION: &str = "2023-06-01";

pub struct Anthropic;

impl Adapter for Anthropic {
    fn serves(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Chat
    }

    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String> {
        let body = messages_request(call)?;
        let req = http.post(url(p, "messages")).header("anthropic-version", VERSION).json(&body);
        Ok(with_key(req, p, "x-api-key"))
    }

    fn reply(&self, v: Value, _: &str) -> Result<Value, String> {
        if v["type"] != "message" {
            return Err(format!("expected a message, got {}", v["type"]));
        }
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in v["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
                Some("tool_use") => tool_calls.push(json!({
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": block["input"].to_string()},
                })),
                _ => {} // thinking and other blocks have no OpenAI equivalent
            }
        }
        let finish = finish_reason(&v["stop_reason"]);
        Ok(completion(v["id"].clone(), &v["model"], text, tool_calls, finish, usage(&v["usage"])))
    }

    fn error(&self, body: Bytes) -> Bytes {
        error_body(&body, |v| v["error"]["type"].as_str().unwrap_or("api_error").to_string())
    }

    fn stream(&self, _: &str) -> Box<dyn StreamTranslator> {
        Box::new(Stream::default())
    }
}

/// The Messages request for an OpenAI chat body.
fn messages_request(call: &Call) -> Result<Value, String> {
    let b = call.body;
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in b["messages"].as_array().into_iter().flatten().enumerate() {
        let (role, blocks) = match m["role"].as_str() {
            Some("system" | "developer") => {
                system.push(
                    text_of(&m["content"]).ok_or(format!("messages[{i}]: system content must be text"))?,
                );
                continue;
            }
            Some("user") => ("user", user_blocks(&m["content"]).map_err(|e| format!("messages[{i}]: {e}"))?),
            Some("assistant") => {
                ("assistant", assistant_blocks(m).map_err(|e| format!("messages[{i}]: {e}"))?)
            }
            Some("tool") => {
                let content =
                    text_of(&m["content"]).ok_or(format!("messages[{i}]: tool content must be text"))?;
                let id =
                    m["tool_call_id"].as_str().ok_or(format!("messages[{i}]: `tool_call_id` is required"))?;
                ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})])
            }
            other => return Err(format!("messages[{i}]: role {other:?} is not supported by this provider")),
        };
        push_turn(&mut turns, role, blocks);
    }
    let messages: Vec<Value> =
        turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    let mut out = Map::new();
    out.insert("model".into(), json!(call.model));
    out.insert("max_tokens".into(), json!(call.max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = b["temperature"].as_f64() {
        out.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = b.get("top_p").filter(|v| v.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    if let Some(stop) = stop_sequences(&b["stop"]) {
        out.insert("stop_sequences".into(), stop);
    }
    if call.stream {
        out.insert("stream".into(), json!(true));
    }
    if let Some(tools) = b["tools"].as_array() {
        let tools: Result<Vec<Value>, String> = tools.iter().map(tool).collect();
        out.insert("tools".into(), Value::Array(tools?));
    }
    let mut choice = match &b["tool_choice"] {
        Value::Null => None,
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o["function"]["name"].as_str().ok_or("`tool_choice.function.name` is required")?;
            Some(json!({"type": "tool", "name": name}))
        }
        other => return Err(format!("`tool_choice` {other} is not supported")),
    };
    if b["parallel_tool_calls"] == json!(false) && out.contains_key("tools") {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(user) = b["user"].as_str() {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(out))
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, String> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts.iter().map(user_part).collect(),
        _ => Err("content must be a string or an array of parts".into()),
    }
}

fn user_part(part: &Value) -> Result<Value, String> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"type": "text", "text": part["text"]})),
        Some("image_url") => {
            let url = part["image_url"]["url"].as_str().ok_or("`image_url.url` is required")?;
            Ok(json!({"type": "image", "source": image_source(url)?}))
        }
        other => Err(format!("content part {other:?} is not supported by this provider")),
    }
}

/// A data URL (`data:image/png;base64,...`) as a base64 source, any other URL as a URL source.
fn image_source(url: &str) -> Result<Value, String> {
    match data_url(url)? {
        Some((media_type, base64)) => Ok(json!({"type": "base64", "media_type": media_type, "data": base64})),
        None => Ok(json!({"type": "url", "url": url})),
    }
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    match &m["content"] {
        Value::Null => {}
        content => {
            let text = text_of(content).ok_or("assistant content must be text")?;
            if !text.is_empty() {
                blocks.push(json!({"type": "text", "text": text}));
            }
        }
    }
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let input = call_arguments(call)?;
        blocks.push(
            json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}),
        );
    }
    Ok(blocks)
}

fn tool(t: &Value) -> Result<Value, String> {
    if t["type"] != "function" {
        return Err(format!("tool type {} is not supported", t["type"]));
    }
    let f = &t["function"];
    let mut out = json!({"name": f["name"], "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
    if let Some(d) = f["description"].as_str() {
        out["description"] = json!(d);
    }
    Ok(out)
}

fn finish_reason(stop: &Value) -> Value {
    match stop.as_str() {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"), // end_turn, stop_sequence, pause_turn
    }
}

/// Anthropic's usage in OpenAI's shape: its `input_tokens` excludes cache reads and writes,
/// OpenAI's `prompt_tokens` includes them (cache reads also in `cached_tokens`).
fn usage(u: &Value) -> Value {
    // No usage reported is not zero usage: `null`, so the request is charged its hold.
    if !u.is_object() {
        return Value::Null;
    }
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (read, written) = (n("cache_read_input_tokens"), n("cache_creation_input_tokens"));
    openai_usage(n("input_tokens") + read + written, read, written, n("output_tokens"))
}

/// The Messages stream (`message_start`, `content_block_start`/`delta`/`stop`,
/// `message_delta`, `message_stop`, `ping`, `error`) as OpenAI chunks.
#[derive(Default)]
struct Stream {
    id: String,
    model: String,
    created: i64,
    usage: Value,
    /// Tool calls so far, by the content block that carries each.
    tools: Vec<u64>,
}

impl Stream {
    fn chunk(&self, delta: Value, finish: Value) -> Vec<u8> {
        chunk(&self.id, &self.model, self.created, delta, finish)
    }

    fn tool_index(&self, block: &Value) -> Option<usize> {
        let block = block.as_u64()?;
        self.tools.iter().position(|b| *b == block)
    }
}

impl StreamTranslator for Stream {
    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>> {
        let Ok(v) = serde_json::from_str::<Value>(&sse_data(event)) else { return Vec::new() };
        match v["type"].as_str() {
            Some("message_start") => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_string();
                self.model = m["model"].as_str().unwrap_or_default().to_string();
                self.created = now_ms() / 1000;
                self.usage = m["usage"].clone();
                vec![self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)]
            }
            Some("content_block_start") => {
                let block = &v["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        self.tools.push(v["index"].as_u64().unwrap_or_default());
                        let call = json!({"index": self.tools.len() - 1, "id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": ""}});
                        vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)]
                    }
                    Some("text") if block["text"].as_str().is_some_and(|t| !t.is_empty()) => {
                        vec![self.chunk(json!({"content": block["text"]}), Value::Null)]
                    }
                    _ => Vec::new(),
                }
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => vec![self.chunk(json!({"content": d["text"]}), Value::Null)],
                    Some("input_json_delta") => match self.tool_index(&v["index"]) {
                        Some(i) => {
                            let call = json!({"index": i, "function": {"arguments": d["partial_json"]}});
                            vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)]
                        }
                        None => Vec::new(),
                    },
                    _ => Vec::new(), // thinking and signature deltas
                }
            }
            Some("message_delta") => {
                // Its usage is cumulative: it replaces what message_start said.
                if let Some(u) = v["usage"].as_object() {
                    for (k, n) in u {
                        self.usage[k] = n.clone();
                    }
                }
                match v["delta"]["stop_reason"] {
                    Value::Null => Vec::new(),
                    ref stop => vec![self.chunk(json!({}), finish_reason(stop))],
                }
            }
            Some("message_stop") => stream_end(&self.id, &self.model, self.created, usage(&self.usage)),
            Some("error") => {
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                let message = v["error"]["message"].as_str().unwrap_or("the provider's stream failed");
                vec![sse(&openai_error(kind, message))]
            }
            _ => Vec::new(), // ping, content_block_stop, and events added later
        }
    }

    fn usage_so_far(&self) -> Option<Tokens> {
        Tokens::of_usage(&usage(&self.usage)).filter(|_| !self.id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Value, String> {
        messages_request(&Call::chat(&body, "claude-x", 64))
    }

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let body = json!({
            "model": "claude-sonnet",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "user", "content": "And now?"},
            ],
            "temperature": 1.5,
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "look", "description": "Looks", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "user": "u-1",
            "seed": 7,
        });
        let out = chat(body).unwrap();
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["max_tokens"], 64);
        assert_eq!(out["system"], "Be brief.");
        assert_eq!(out["temperature"], 1.0);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        assert_eq!(
            out["tools"],
            json!([{"name": "look", "description": "Looks", "input_schema": {"type": "object"}}])
        );
        assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
        assert!(out.get("seed").is_none());
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "the tool result and the next user message merge into one user turn");
        assert_eq!(
            m[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
        );
        assert_eq!(
            m[1]["content"],
            json!([{"type": "tool_use", "id": "call_1", "name": "look", "input": {"x": 1}}])
        );
        assert_eq!(m[2]["role"], "user");
        assert_eq!(
            m[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"})
        );
        assert_eq!(m[2]["content"][1], json!({"type": "text", "text": "And now?"}));
    }

    #[test]
    fn what_cannot_be_expressed_is_refused_with_the_reason() {
        let bad_role = json!({"messages": [{"role": "function", "content": "x"}]});
        assert!(chat(bad_role).unwrap_err().contains("role"));
        let bad_part = json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]});
        assert!(chat(bad_part).unwrap_err().contains("input_audio"));
        let bad_args = json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}]});
        assert!(chat(bad_args).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_reply_and_its_usage_take_openai_shape() {
        let reply = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"x": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
        });
        let out = Anthropic.reply(reply, "m").unwrap();
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me look.");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"],
            json!({"name": "look", "arguments": "{\"x\":1}"})
        );
        assert_eq!(out["usage"]["prompt_tokens"], 130);
        assert_eq!(out["usage"]["completion_tokens"], 5);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cache_write_tokens"], 20);
    }

    #[test]
    fn a_stream_with_text_and_a_tool_call_becomes_openai_chunks() {
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":12,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"look","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let mut s = Anthropic.stream("m");
        let out: Vec<String> = events
            .iter()
            .flat_map(|e| s.event(format!("event: x\ndata: {e}\n\n").as_bytes()))
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        let data: Vec<Value> = out
            .iter()
            .filter_map(|e| serde_json::from_str(e.trim().strip_prefix("data: ").unwrap()).ok())
            .collect();
        assert_eq!(data[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(data[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(data[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(data[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"x\":");
        assert_eq!(data[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(data[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            data[6]["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21, "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
        );
        assert_eq!(out.last().unwrap(), "data: [DONE]\n\n");
        assert_eq!(out.len(), 8);
    }
}
