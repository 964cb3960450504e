//! Google's Gemini API: `POST {base_url}/models/{model}:generateContent`, streamed as
//! `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key`.
//!
//! Request: system and developer messages become `systemInstruction`; user turns `user`
//! contents and assistant turns `model` contents (consecutive turns of one role merged);
//! text parts `text`, images (data URLs only: Gemini takes images inline) `inlineData`;
//! assistant tool calls `functionCall` parts, `tool` messages `functionResponse` parts named
//! after the call they answer; `tools` become `functionDeclarations`, `tool_choice`
//! `toolConfig.functionCallingConfig` (AUTO, ANY, NONE, ANY with one allowed name);
//! `max_tokens`, `temperature`, `top_p` and `stop` go to `generationConfig`. Dropped: `n`,
//! `logprobs`, `seed`, penalties, `user`. Gemini gives calls no ids: they are numbered
//! `call_<n>` in reply order.

use axum::body::Bytes;
use serde_json::{json, Map, Value};

use super::{
    call_arguments, chunk, completion, data_url, error_body, openai_error, openai_usage, push_turn, sse_data,
    stop_sequences, stream_end, text_of, url, with_key, Adapter, Call, Endpoint, StreamTranslator,
};
use crate::clock::now_ms;
use crate::domain::catalog::Provider;
use crate::domain::pricing::Tokens;

pub struct Gemini;

impl Adapter for Gemini {
    fn serves(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Chat
    }

    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String> {
        let body = generate_request(call)?;
        let path = match call.stream {
            true => format!("models/{}:streamGenerateContent?alt=sse", call.model),
            false => format!("models/{}:generateContent", call.model),
        };
        Ok(with_key(http.post(url(p, &path)).json(&body), p, "x-goog-api-key"))
    }

    fn reply(&self, v: Value, _: &str) -> Result<Value, String> {
        let candidate = v["candidates"].get(0).ok_or("the reply has no candidates")?;
        let (text, mut calls) = parts(&candidate["content"]["parts"], 0);
        // `index` places a call within a stream's deltas; a whole reply has none.
        calls.iter_mut().filter_map(Value::as_object_mut).for_each(|c| drop(c.remove("index")));
        let finish = finish_reason(&candidate["finishReason"], !calls.is_empty());
        let id = v["responseId"].as_str().map_or_else(|| format!("gemini-{}", now_ms()), str::to_string);
        Ok(completion(id.into(), &v["modelVersion"], text, calls, finish, usage(&v["usageMetadata"])))
    }

    fn error(&self, body: Bytes) -> Bytes {
        error_body(&body, |v| v["error"]["status"].as_str().unwrap_or("UNKNOWN").to_ascii_lowercase())
    }

    fn stream(&self, _: &str) -> Box<dyn StreamTranslator> {
        Box::new(Stream::default())
    }
}

/// The `generateContent` request for an OpenAI chat body.
fn generate_request(call: &Call) -> Result<Value, String> {
    let b = call.body;
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // Tool responses name their function; OpenAI's name the call's id.
    let mut call_names: Map<String, Value> = Map::new();
    for (i, m) in b["messages"].as_array().into_iter().flatten().enumerate() {
        let at = |e: String| format!("messages[{i}]: {e}");
        let (role, parts) = match m["role"].as_str() {
            Some("system" | "developer") => {
                system.push(text_of(&m["content"]).ok_or_else(|| at("system content must be text".into()))?);
                continue;
            }
            Some("user") => ("user", user_parts(&m["content"]).map_err(at)?),
            Some("assistant") => {
                let mut parts = Vec::new();
                if let Some(text) = text_of(&m["content"]).filter(|t| !t.is_empty()) {
                    parts.push(json!({"text": text}));
                }
                for c in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = c["function"]["name"].clone();
                    let args = call_arguments(c).map_err(at)?;
                    call_names.insert(c["id"].as_str().unwrap_or_default().to_string(), name.clone());
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                ("model", parts)
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().ok_or_else(|| at("`tool_call_id` is required".into()))?;
                let name =
                    call_names.get(id).ok_or_else(|| at(format!("no earlier tool call has the id {id}")))?;
                let content = text_of(&m["content"]).ok_or_else(|| at("tool content must be text".into()))?;
                // A JSON object answer is passed as it is; anything else as its text.
                let response = serde_json::from_str::<Value>(&content)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"content": content}));
                ("user", vec![json!({"functionResponse": {"name": name, "response": response}})])
            }
            other => return Err(at(format!("role {other:?} is not supported by this provider"))),
        };
        push_turn(&mut contents, role, parts);
    }
    let contents: Vec<Value> =
        contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": [{"text": system.join("\n\n")}]}));
    }
    let mut config = Map::new();
    config.insert("maxOutputTokens".into(), json!(call.max_tokens));
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = b.get(from).filter(|v| v.is_number()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = stop_sequences(&b["stop"]) {
        config.insert("stopSequences".into(), stop);
    }
    out.insert("generationConfig".into(), Value::Object(config));
    if let Some(tools) = b["tools"].as_array() {
        let declarations: Result<Vec<Value>, String> = tools.iter().map(declaration).collect();
        out.insert("tools".into(), json!([{"functionDeclarations": declarations?}]));
    }
    let mode = match &b["tool_choice"] {
        Value::Null => None,
        Value::String(s) if s == "auto" => Some(json!({"mode": "AUTO"})),
        Value::String(s) if s == "required" => Some(json!({"mode": "ANY"})),
        Value::String(s) if s == "none" => Some(json!({"mode": "NONE"})),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o["function"]["name"].as_str().ok_or("`tool_choice.function.name` is required")?;
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
        other => return Err(format!("`tool_choice` {other} is not supported")),
    };
    if let Some(mode) = mode {
        out.insert("toolConfig".into(), json!({"functionCallingConfig": mode}));
    }
    Ok(Value::Object(out))
}

fn user_parts(content: &Value) -> Result<Vec<Value>, String> {
    let parts = match content {
        Value::String(s) => return Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts,
        _ => return Err("content must be a string or an array of parts".into()),
    };
    parts
        .iter()
        .map(|part| match part["type"].as_str() {
            Some("text") => Ok(json!({"text": part["text"]})),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().ok_or("`image_url.url` is required")?;
                match data_url(url)? {
                    // Gemini takes any file inline (PDFs, video, audio, billed by length):
                    // an image part is held as one image, so only images pass.
                    Some((mime, data))
                        if ["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"]
                            .contains(&mime.to_ascii_lowercase().as_str()) =>
                    {
                        Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                    }
                    Some((mime, _)) => {
                        Err(format!("image type {mime} is not supported (png, jpeg, webp, heic, heif)"))
                    }
                    None => Err("this provider takes images inline: send them as data URLs".into()),
                }
            }
            other => Err(format!("content part {other:?} is not supported by this provider")),
        })
        .collect()
}

fn declaration(t: &Value) -> Result<Value, String> {
    if t["type"] != "function" {
        return Err(format!("tool type {} is not supported", t["type"]));
    }
    let f = &t["function"];
    let mut out = json!({"name": f["name"]});
    if let Some(d) = f["description"].as_str() {
        out["description"] = json!(d);
    }
    if let Some(p) = f.get("parameters") {
        out["parameters"] = p.clone();
    }
    Ok(out)
}

/// A candidate's text and its function calls as OpenAI tool calls, numbered from `first`.
fn parts(parts: &Value, first: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in parts.as_array().into_iter().flatten() {
        if p["thought"] == json!(true) {
            continue; // thought summaries have no OpenAI equivalent
        }
        if let Some(t) = p["text"].as_str() {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            let n = first + calls.len();
            calls.push(json!({
                "index": n,
                "id": f["id"].as_str().map_or_else(|| format!("call_{n}"), str::to_string),
                "type": "function",
                "function": {"name": f["name"], "arguments": f["args"].to_string()},
            }));
        }
    }
    (text, calls)
}

fn finish_reason(reason: &Value, called: bool) -> Value {
    match reason.as_str() {
        None => Value::Null,
        Some(_) if called => json!("tool_calls"),
        Some("STOP") => json!("stop"),
        Some("MAX_TOKENS") => json!("length"),
        // SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, ...
        Some(_) => json!("content_filter"),
    }
}

/// `usageMetadata` in OpenAI's shape: Gemini's `promptTokenCount` already includes the
/// cached part (`cachedContentTokenCount`); thinking tokens are billed as output.
fn usage(u: &Value) -> Value {
    // No usage reported is not zero usage: `null`, so the request is charged its hold.
    if !u.is_object() {
        return Value::Null;
    }
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    // Gemini reports no cache writes (explicit caches are billed through their own API).
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    openai_usage(prompt, n("cachedContentTokenCount"), 0, completion)
}

/// `streamGenerateContent?alt=sse`: every event is a partial response; the one with a
/// `finishReason` ends the stream (its `usageMetadata` is the total).
#[derive(Default)]
struct Stream {
    id: String,
    model: String,
    created: i64,
    started: bool,
    calls: usize,
    usage: Value,
}

impl StreamTranslator for Stream {
    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>> {
        let Ok(v) = serde_json::from_str::<Value>(&sse_data(event)) else { return Vec::new() };
        if v.get("error").is_some() {
            let status = v["error"]["status"].as_str().unwrap_or("unknown").to_ascii_lowercase();
            let message = v["error"]["message"].as_str().unwrap_or("the provider's stream failed");
            return vec![super::sse(&openai_error(&status, message))];
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            self.id = v["responseId"].as_str().map_or_else(|| format!("gemini-{}", now_ms()), str::to_string);
            self.model = v["modelVersion"].as_str().unwrap_or_default().to_string();
            self.created = now_ms() / 1000;
            out.push(chunk(
                &self.id,
                &self.model,
                self.created,
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ));
        }
        if v.get("usageMetadata").is_some() {
            self.usage = v["usageMetadata"].clone();
        }
        let candidate = &v["candidates"][0];
        let (text, calls) = parts(&candidate["content"]["parts"], self.calls);
        self.calls += calls.len();
        if !text.is_empty() {
            out.push(chunk(&self.id, &self.model, self.created, json!({"content": text}), Value::Null));
        }
        if !calls.is_empty() {
            out.push(chunk(&self.id, &self.model, self.created, json!({"tool_calls": calls}), Value::Null));
        }
        if !candidate["finishReason"].is_null() {
            let finish = finish_reason(&candidate["finishReason"], self.calls > 0);
            out.push(chunk(&self.id, &self.model, self.created, json!({}), finish));
            out.extend(stream_end(&self.id, &self.model, self.created, usage(&self.usage)));
        }
        out
    }

    fn usage_so_far(&self) -> Option<Tokens> {
        Tokens::of_usage(&usage(&self.usage)).filter(|_| !self.usage.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_becomes_a_generate_content_request() {
        let body = json!({
            "model": "gemini-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Where is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "locate", "arguments": "{\"q\":\"x\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_0", "content": "{\"city\": \"Paris\"}"},
            ],
            "max_tokens": 10, "temperature": 1.5, "top_p": 0.9, "stop": ["END"],
            "tools": [{"type": "function", "function": {"name": "locate", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "locate"}},
        });
        let call = Call::chat(&body, "gemini-2.5-flash", 10);
        let out = generate_request(&call).unwrap();
        assert_eq!(out["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
        let c = out["contents"].as_array().unwrap();
        assert_eq!(c[0]["parts"][1], json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}));
        assert_eq!(
            c[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "locate", "args": {"q": "x"}}}]})
        );
        assert_eq!(
            c[2]["parts"][0],
            json!({"functionResponse": {"name": "locate", "response": {"city": "Paris"}}})
        );
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 10, "temperature": 1.5, "topP": 0.9, "stopSequences": ["END"]})
        );
        assert_eq!(out["tools"][0]["functionDeclarations"][0]["name"], "locate");
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["locate"]}})
        );
        let url = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
        let call = Call { body: &url, ..call };
        assert!(generate_request(&call).unwrap_err().contains("data URLs"));
    }

    #[test]
    fn a_reply_with_a_function_call_and_cached_usage_takes_openai_shape() {
        let reply = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "locate", "args": {"q": "x"}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7, "totalTokenCount": 107, "cachedContentTokenCount": 60},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1",
        });
        let out = Gemini.reply(reply, "m").unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["id"], "call_0");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"q\":\"x\"}");
        assert_eq!(out["usage"]["prompt_tokens"], 100);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 60);
    }
}
