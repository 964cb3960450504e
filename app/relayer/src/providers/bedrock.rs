//! AWS Bedrock's Converse API (`POST {base_url}/model/{modelId}/converse`, and
//! `/converse-stream` whose reply is the binary `application/vnd.amazon.eventstream`),
//! requests signed with SigV4 (`aws-sigv4`) from the usual AWS environment variables.
//!
//! Request: system and developer messages become `system` blocks; user content parts become
//! `text` and `image` blocks (data URLs only: Bedrock takes image bytes or S3 locations, not
//! URLs); assistant tool calls become `toolUse` blocks and `tool` messages `toolResult`
//! blocks in a user turn; consecutive turns of one role are merged; `max_tokens` (the hold's
//! bound), `temperature`, `top_p` and `stop` go to `inferenceConfig`; `tools` and
//! `tool_choice` to `toolConfig` (`none` sends no tools unless the history has tool blocks,
//! which Bedrock then requires, and no choice); `user` becomes `requestMetadata.user`.
//! Fields with no Converse equivalent (`n`, `logprobs`, `seed`, penalties,
//! `response_format`, `parallel_tool_calls`..) are dropped. Reply, stream and errors come
//! back in OpenAI's shape (docs/providers.md).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;
use axum::body::Bytes;
use serde_json::{json, Map, Value};

use super::{
    call_arguments, chunk, completion, data_url, error_body, openai_error, openai_usage, push_turn, sse,
    stop_sequences, stream_end, text_of, url, Adapter, Call, Endpoint, StreamTranslator,
};
use crate::clock::now_ms;
use crate::domain::catalog::Provider;

/// The region when neither the provider nor `AWS_REGION` / `AWS_DEFAULT_REGION` names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The SigV4 service name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

pub struct Bedrock;

/// The provider's region: its own, else the AWS environment's, else `us-east-1`.
pub fn region(p: &Provider) -> String {
    p.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
pub fn credentials_from_env() -> Option<Credentials> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
    Some(Credentials::new(id, secret, std::env::var("AWS_SESSION_TOKEN").ok(), None, "environment"))
}

/// The SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token` with a
/// session) for a POST of `body` to `url` with `headers`, at `time`.
pub fn signature(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let request = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _) =
        sign(request, &params).map_err(|e| format!("cannot sign the request: {e}"))?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// A model id as one path segment (Bedrock ids hold `:`, inference profile ARNs `/`).
fn path_segment(model: &str) -> String {
    model
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Adapter for Bedrock {
    fn serves(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Chat
    }

    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String> {
        let body = serde_json::to_vec(&converse_request(call)?).map_err(|e| e.to_string())?;
        let action = if call.stream { "converse-stream" } else { "converse" };
        let url = url(p, &format!("model/{}/{action}", path_segment(call.model)));
        let accept = if call.stream { "application/vnd.amazon.eventstream" } else { "application/json" };
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let mut req = http.post(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        // Without credentials the request goes unsigned: Bedrock answers 403, which fails
        // over like any refusal of the marketplace's own credentials.
        if let Some(credentials) = credentials_from_env() {
            for (k, v) in signature(&url, &headers, &body, &credentials, &region(p), SystemTime::now())? {
                req = req.header(k, v);
            }
        }
        Ok(req.body(body))
    }

    fn reply(&self, v: Value, model: &str) -> Result<Value, String> {
        let content =
            v["output"]["message"]["content"].as_array().ok_or("the reply has no output message")?;
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in content {
            if let Some(t) = block["text"].as_str() {
                text.push_str(t);
            } else if let Some(u) = block.get("toolUse") {
                calls.push(json!({
                    "id": u["toolUseId"],
                    "type": "function",
                    "function": {"name": u["name"], "arguments": u["input"].to_string()},
                }));
            } // reasoningContent and other blocks have no OpenAI equivalent
        }
        let id = format!("bedrock-{}", now_ms());
        Ok(completion(
            id.into(),
            &json!(model),
            text,
            calls,
            finish_reason(&v["stopReason"]),
            usage(&v["usage"]),
        ))
    }

    fn error(&self, body: Bytes) -> Bytes {
        // Bedrock's error body is `{"message": ...}` (the type is in a header).
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match v["message"].as_str().or(v["Message"].as_str()) {
            Some(m) => Bytes::from(openai_error("invalid_request_error", m).to_string()),
            None => error_body(&body, |_| "api_error".to_string()),
        }
    }

    fn stream(&self, model: &str) -> Box<dyn StreamTranslator> {
        Box::new(Stream { model: model.to_string(), ..Stream::default() })
    }
}

/// The Converse request for an OpenAI chat body.
fn converse_request(call: &Call) -> Result<Value, String> {
    let b = call.body;
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let mut tool_blocks = false;
    for (i, m) in b["messages"].as_array().into_iter().flatten().enumerate() {
        let at = |e: String| format!("messages[{i}]: {e}");
        let (role, blocks) = match m["role"].as_str() {
            Some("system" | "developer") => {
                let text = text_of(&m["content"]).ok_or_else(|| at("system content must be text".into()))?;
                system.push(json!({"text": text}));
                continue;
            }
            Some("user") => ("user", user_blocks(&m["content"]).map_err(at)?),
            Some("assistant") => ("assistant", assistant_blocks(m).map_err(at)?),
            Some("tool") => {
                let content = text_of(&m["content"]).ok_or_else(|| at("tool content must be text".into()))?;
                let id = m["tool_call_id"].as_str().ok_or_else(|| at("`tool_call_id` is required".into()))?;
                let result = json!({"toolResult": {"toolUseId": id, "content": [{"text": content}]}});
                ("user", vec![result])
            }
            other => return Err(at(format!("role {other:?} is not supported by this provider"))),
        };
        tool_blocks |= blocks.iter().any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some());
        push_turn(&mut turns, role, blocks);
    }
    let messages: Vec<Value> =
        turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = json!({"maxTokens": call.max_tokens});
    if let Some(t) = b.get("temperature").filter(|v| v.is_number()) {
        inference["temperature"] = t.clone();
    }
    if let Some(p) = b.get("top_p").filter(|v| v.is_number()) {
        inference["topP"] = p.clone();
    }
    if let Some(stop) = stop_sequences(&b["stop"]) {
        inference["stopSequences"] = stop;
    }
    out.insert("inferenceConfig".into(), inference);
    let choice = match &b["tool_choice"] {
        Value::Null => None,
        Value::String(s) if s == "auto" => Some(json!({"auto": {}})),
        Value::String(s) if s == "required" => Some(json!({"any": {}})),
        Value::String(s) if s == "none" => Some(Value::Null),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o["function"]["name"].as_str().ok_or("`tool_choice.function.name` is required")?;
            Some(json!({"tool": {"name": name}}))
        }
        other => return Err(format!("`tool_choice` {other} is not supported")),
    };
    if let Some(tools) = b["tools"].as_array() {
        let none = choice == Some(Value::Null);
        if !none || tool_blocks {
            let tools: Result<Vec<Value>, String> = tools.iter().map(tool).collect();
            let mut config = json!({"tools": tools?});
            if let Some(c) = choice.filter(|c| !c.is_null()) {
                config["toolChoice"] = c;
            }
            out.insert("toolConfig".into(), config);
        }
    }
    if let Some(user) = b["user"].as_str() {
        out.insert("requestMetadata".into(), json!({"user": user}));
    }
    Ok(Value::Object(out))
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, String> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts.iter().map(user_part).collect(),
        _ => Err("content must be a string or an array of parts".into()),
    }
}

fn user_part(part: &Value) -> Result<Value, String> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"text": part["text"]})),
        Some("image_url") => {
            let url = part["image_url"]["url"].as_str().ok_or("`image_url.url` is required")?;
            let Some((media_type, base64)) = data_url(url)? else {
                return Err(
                    "this provider (AWS Bedrock) takes images as data, not URLs: send a data URL".into()
                );
            };
            let format = match media_type {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => return Err(format!("image type {other} is not supported (png, jpeg, gif, webp)")),
            };
            Ok(json!({"image": {"format": format, "source": {"bytes": base64}}}))
        }
        other => Err(format!("content part {other:?} is not supported by this provider")),
    }
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    if !m["content"].is_null() {
        let text = text_of(&m["content"]).ok_or("assistant content must be text")?;
        if !text.is_empty() {
            blocks.push(json!({"text": text}));
        }
    }
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let input = call_arguments(call)?;
        blocks.push(
            json!({"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": input}}),
        );
    }
    Ok(blocks)
}

fn tool(t: &Value) -> Result<Value, String> {
    if t["type"] != "function" {
        return Err(format!("tool type {} is not supported", t["type"]));
    }
    let f = &t["function"];
    let schema = f.get("parameters").cloned().unwrap_or(json!({"type": "object"}));
    let mut spec = json!({"name": f["name"], "inputSchema": {"json": schema}});
    if let Some(d) = f["description"].as_str() {
        spec["description"] = json!(d);
    }
    Ok(json!({"toolSpec": spec}))
}

fn finish_reason(stop: &Value) -> Value {
    match stop.as_str() {
        None => Value::Null,
        Some("max_tokens" | "model_context_window_exceeded") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("guardrail_intervened" | "content_filtered") => json!("content_filter"),
        Some(_) => json!("stop"), // end_turn, stop_sequence
    }
}

/// Bedrock's usage in OpenAI's shape: its `inputTokens` excludes cache reads and writes,
/// OpenAI's `prompt_tokens` includes them (cache reads also in `cached_tokens`).
fn usage(u: &Value) -> Value {
    // No usage reported is not zero usage: `null`, so the request is charged its hold.
    if !u.is_object() {
        return Value::Null;
    }
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (read, written) = (n("cacheReadInputTokens"), n("cacheWriteInputTokens"));
    openai_usage(n("inputTokens") + read + written, read, written, n("outputTokens"))
}

/// The value of a string header of an event-stream message.
fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    let h = m.headers().iter().find(|h| h.name().as_str() == name)?;
    h.value().as_string().ok().map(|s| s.as_str())
}

/// The ConverseStream events (`messageStart`, `contentBlockStart`/`Delta`/`Stop`,
/// `messageStop`, `metadata`, and exceptions), framed by the event-stream encoding, as
/// OpenAI chunks.
#[derive(Default)]
struct Stream {
    id: String,
    model: String,
    created: i64,
    /// Tool calls so far, by the content block that carries each.
    tools: Vec<u64>,
}

/// The most an event-stream message may be (its prelude says how long it is).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl Stream {
    fn chunk(&self, delta: Value, finish: Value) -> Vec<u8> {
        chunk(&self.id, &self.model, self.created, delta, finish)
    }
}

impl StreamTranslator for Stream {
    fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        // Each message starts with its total length (big-endian u32).
        let total = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let total = if (16..=MAX_MESSAGE).contains(&total) { total } else { buf.len() };
        (buf.len() >= total).then(|| buf.drain(..total).collect())
    }

    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>> {
        let message = match read_message_from(event) {
            Ok(m) => m,
            Err(e) => {
                return vec![sse(&openai_error(
                    "api_error",
                    &format!("unreadable event from the provider: {e}"),
                ))]
            }
        };
        let Ok(v) = serde_json::from_slice::<Value>(message.payload()) else { return Vec::new() };
        if header(&message, ":message-type") == Some("exception") {
            let kind = header(&message, ":exception-type").unwrap_or("internalServerException");
            let text = v["message"].as_str().unwrap_or("the provider's stream failed");
            return vec![sse(&openai_error(kind, text))];
        }
        match header(&message, ":event-type") {
            Some("messageStart") => {
                self.id = format!("bedrock-{}", now_ms());
                self.created = now_ms() / 1000;
                vec![self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)]
            }
            Some("contentBlockStart") => match v["start"].get("toolUse") {
                Some(u) => {
                    self.tools.push(v["contentBlockIndex"].as_u64().unwrap_or_default());
                    let call = json!({"index": self.tools.len() - 1, "id": u["toolUseId"], "type": "function", "function": {"name": u["name"], "arguments": ""}});
                    vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)]
                }
                None => Vec::new(),
            },
            Some("contentBlockDelta") => {
                let d = &v["delta"];
                if let Some(t) = d["text"].as_str() {
                    return vec![self.chunk(json!({"content": t}), Value::Null)];
                }
                let block = v["contentBlockIndex"].as_u64();
                match (d["toolUse"]["input"].as_str(), self.tools.iter().position(|b| Some(*b) == block)) {
                    (Some(input), Some(i)) => {
                        let call = json!({"index": i, "function": {"arguments": input}});
                        vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)]
                    }
                    _ => Vec::new(), // reasoning deltas
                }
            }
            Some("messageStop") => vec![self.chunk(json!({}), finish_reason(&v["stopReason"]))],
            Some("metadata") => stream_end(&self.id, &self.model, self.created, usage(&v["usage"])),
            _ => Vec::new(), // contentBlockStop and events added later
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    use super::*;

    fn converse(body: Value) -> Result<Value, String> {
        converse_request(&Call::chat(&body, "m", 64))
    }

    /// The request from the Converse API reference's tool-use example, written from an
    /// OpenAI chat body: system, an image, a tool call and its result, tools and a choice.
    #[test]
    fn a_chat_request_becomes_a_converse_request() {
        let body = json!({
            "model": "claude-sonnet",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is the most popular song on WZPZ?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "top_song", "arguments": "{\"sign\":\"WZPZ\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "Elemental Hotel"},
                {"role": "user", "content": "And who sings it?"},
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["END"],
            "tools": [{"type": "function", "function": {"name": "top_song", "description": "Gets the most popular song played on a radio station.", "parameters": {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]}}}],
            "tool_choice": "required",
            "user": "u-1",
            "seed": 7,
        });
        let out = converse(body).unwrap();
        assert_eq!(out["system"], json!([{"text": "Be brief."}]));
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 64, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]})
        );
        assert_eq!(out["toolConfig"]["toolChoice"], json!({"any": {}}));
        assert_eq!(
            out["toolConfig"]["tools"][0]["toolSpec"],
            json!({"name": "top_song", "description": "Gets the most popular song played on a radio station.",
                   "inputSchema": {"json": {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]}}})
        );
        assert_eq!(out["requestMetadata"], json!({"user": "u-1"}));
        assert!(out.get("seed").is_none());
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "the tool result and the next user message merge into one user turn");
        assert_eq!(
            m[0]["content"][1],
            json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
        );
        assert_eq!(
            m[1]["content"],
            json!([{"toolUse": {"toolUseId": "tooluse_1", "name": "top_song", "input": {"sign": "WZPZ"}}}])
        );
        assert_eq!(
            m[2]["content"],
            json!([{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "Elemental Hotel"}]}}, {"text": "And who sings it?"}])
        );
    }

    #[test]
    fn what_cannot_be_expressed_is_refused_with_the_reason() {
        let url = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]});
        assert!(converse(url).unwrap_err().contains("data URL"));
        let bmp = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}]}]});
        assert!(converse(bmp).unwrap_err().contains("image/bmp"));
        let none = json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none",
                          "tools": [{"type": "function", "function": {"name": "f"}}]});
        assert!(converse(none).unwrap().get("toolConfig").is_none(), "tool_choice none sends no tools");
    }

    /// The reply from the Converse API reference's tool-use example.
    #[test]
    fn a_reply_and_its_usage_take_openai_shape() {
        let reply = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "I'll look it up."},
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}},
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 375, "outputTokens": 36, "totalTokens": 411, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
            "metrics": {"latencyMs": 2270},
        });
        let out = Bedrock.reply(reply, "claude-sonnet").unwrap();
        let choice = &out["choices"][0];
        assert_eq!(out["model"], "claude-sonnet");
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "I'll look it up.");
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
        assert_eq!(choice["message"]["tool_calls"][0]["function"]["arguments"], "{\"sign\":\"WZPZ\"}");
        assert_eq!(out["usage"]["prompt_tokens"], 495);
        assert_eq!(
            out["usage"]["prompt_tokens_details"],
            json!({"cached_tokens": 100, "cache_write_tokens": 20})
        );
    }

    fn frame(event: &str, payload: Value) -> Vec<u8> {
        let m = Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(":event-type", HeaderValue::String(event.to_string().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn an_event_stream_split_anywhere_becomes_openai_chunks() {
        let wire: Vec<u8> = [
            frame("messageStart", json!({"role": "assistant"})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}})),
            frame("contentBlockStop", json!({"contentBlockIndex": 0})),
            frame(
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "top_song"}}}),
            ),
            frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"sign\":"}}})),
            frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"WZPZ\"}"}}})),
            frame("contentBlockStop", json!({"contentBlockIndex": 1})),
            frame("messageStop", json!({"stopReason": "tool_use"})),
            frame("metadata", json!({"usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21}, "metrics": {"latencyMs": 5}})),
        ]
        .concat();
        // Delivered in 7-byte pieces, as a network may cut it.
        let mut s = Bedrock.stream("claude-sonnet");
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(7) {
            buf.extend_from_slice(piece);
            while let Some(event) = s.next_event(&mut buf) {
                out.extend(s.event(&event).into_iter().map(|b| String::from_utf8(b).unwrap()));
            }
        }
        assert!(buf.is_empty());
        let data: Vec<Value> = out
            .iter()
            .filter_map(|e| serde_json::from_str(e.trim().strip_prefix("data: ").unwrap()).ok())
            .collect();
        assert_eq!(data[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(data[0]["model"], "claude-sonnet");
        assert_eq!(data[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(data[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
        assert_eq!(data[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"sign\":");
        assert_eq!(data[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(data[6]["usage"]["prompt_tokens"], 12);
        assert_eq!(data[6]["usage"]["completion_tokens"], 9);
        assert_eq!(out.last().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn an_exception_in_the_stream_becomes_an_error_event() {
        let m = Message::new(json!({"message": "Too many requests"}).to_string().into_bytes())
            .add_header(Header::new(":exception-type", HeaderValue::String("throttlingException".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("exception".into())));
        let mut wire = Vec::new();
        write_message_to(&m, &mut wire).unwrap();
        let mut s = Bedrock.stream("m");
        let out = s.event(&wire);
        let v: Value =
            serde_json::from_str(String::from_utf8_lossy(&out[0]).trim().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(v["error"]["type"], "throttlingException");
        assert_eq!(v["error"]["message"], "Too many requests");
    }

    #[test]
    fn model_ids_are_one_path_segment() {
        assert_eq!(
            path_segment("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(
            path_segment("arn:aws:bedrock:us-east-1:1:x/y"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy"
        );
    }
}
