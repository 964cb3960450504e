//! SIMULATED AWS Bedrock runtime (`POST /model/{modelId}/converse` and
//! `/converse-stream`), following its public reference: requests must carry a valid SigV4
//! signature for service `bedrock` (checked against the credentials in the AWS environment
//! variables, as AWS checks its own; 403 `UnrecognizedClientException` without one,
//! `InvalidSignatureException` when it does not match); `messages` alternate `user` and
//! `assistant`, starting with `user`, each with content blocks (`text`, `image` with a
//! format and bytes, `toolUse`, `toolResult`); `inferenceConfig`, `toolConfig` (tools as
//! `toolSpec` with an `inputSchema.json`; `toolChoice` `auto`, `any` or `tool`). Errors are
//! `{"message": ...}` with the type in `x-amzn-ErrorType`. With `toolChoice` `any` or
//! `tool` the reply is a `toolUse` block; otherwise text. Streams are
//! `application/vnd.amazon.eventstream` messages: `messageStart`, `contentBlockStart` (tool
//! use), `contentBlockDelta`s, `contentBlockStop`, `messageStop`, `metadata` (usage).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{bytes_of, delay_then_fail, messages_answer, Sim};
use crate::providers::bedrock::{credentials_from_env, signature};

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"message": message.into()}).to_string();
    (status, [("x-amzn-errortype", kind), ("content-type", "application/json")], body).into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// `20261129T171500Z` as a time.
fn amz_date(s: &str) -> Option<SystemTime> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3_600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Checks the request's SigV4 signature as AWS would, recomputing it from the request and
/// the credentials in the environment; why not, as AWS's (error type, message) for a 403.
fn check_signature(headers: &HeaderMap, uri: &str, body: &[u8]) -> Result<(), (&'static str, &'static str)> {
    let forbidden = |kind, m| Err((kind, m));
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return forbidden("UnrecognizedClientException", "Missing Authentication Token");
    };
    let Some(credentials) = credentials_from_env() else {
        return forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let field = |name: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_default()
    };
    // Credential=<key id>/<date>/<region>/bedrock/aws4_request
    let scope: Vec<&str> = field("Credential").split('/').collect();
    let [key_id, _, region, "bedrock", "aws4_request"] = scope.as_slice() else {
        return forbidden(
            "InvalidSignatureException",
            "Credential should be scoped to a valid region and the bedrock service.",
        );
    };
    if *key_id != credentials.access_key_id() {
        return forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    let Some(time) = header("x-amz-date").and_then(amz_date) else {
        return forbidden(
            "IncompleteSignatureException",
            "The request must contain a valid x-amz-date header.",
        );
    };
    let added_by_signer = ["host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];
    let signed: Vec<(&str, &str)> = field("SignedHeaders")
        .split(';')
        .filter(|h| !added_by_signer.contains(h))
        .filter_map(|h| Some((h, header(h)?)))
        .collect();
    let url = format!("http://{}{uri}", header("host").unwrap_or_default());
    let expected = signature(&url, &signed, body, &credentials, region, time)
        .ok()
        .and_then(|h| h.into_iter().find(|(k, _)| k == "authorization").map(|(_, v)| v));
    if expected.as_deref() != Some(auth) {
        return forbidden(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    Ok(())
}

fn check(body: &Value) -> Result<(), String> {
    let messages =
        body["messages"].as_array().filter(|m| !m.is_empty()).ok_or("The messages field is required.")?;
    for (i, m) in messages.iter().enumerate() {
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if m["role"].as_str() != Some(want) {
            return Err("A conversation must start with a user message and alternate between user and assistant roles.".into());
        }
        let blocks = m["content"].as_array().filter(|c| !c.is_empty()).ok_or(format!(
            "messages.{i}.content: The content field in the Message object is empty. Add a ContentBlock object to the content field and try again."
        ))?;
        for b in blocks {
            check_block(b).map_err(|e| format!("messages.{i}.content: {e}"))?;
        }
    }
    if body["inferenceConfig"]["maxTokens"].as_u64().is_some_and(|n| n < 1) {
        return Err("inferenceConfig.maxTokens: must be at least 1".into());
    }
    for t in body["toolConfig"]["tools"].as_array().into_iter().flatten() {
        if !t["toolSpec"]["name"].is_string() || !t["toolSpec"]["inputSchema"]["json"].is_object() {
            return Err(
                "toolConfig.tools: each tool needs toolSpec.name and toolSpec.inputSchema.json".into()
            );
        }
    }
    if !body["toolConfig"].is_null() && body["toolConfig"]["tools"].as_array().is_none_or(Vec::is_empty) {
        return Err("toolConfig.tools: at least one tool is required".into());
    }
    Ok(())
}

fn check_block(b: &Value) -> Result<(), String> {
    let kinds = ["text", "image", "toolUse", "toolResult"];
    let present: Vec<&str> = kinds.iter().copied().filter(|k| b.get(*k).is_some()).collect();
    match present.as_slice() {
        ["text"] if b["text"].as_str().is_some_and(|t| !t.is_empty()) => Ok(()),
        ["image"] => match (b["image"]["format"].as_str(), b["image"]["source"]["bytes"].as_str()) {
            (Some("png" | "jpeg" | "gif" | "webp"), Some(_)) => Ok(()),
            _ => Err("image: format must be png, jpeg, gif or webp, with source.bytes".into()),
        },
        ["toolUse"] if b["toolUse"]["toolUseId"].is_string() && b["toolUse"]["name"].is_string() => Ok(()),
        ["toolResult"] if b["toolResult"]["toolUseId"].is_string() => Ok(()),
        _ => {
            Err("each ContentBlock must be exactly one of text, image, toolUse or toolResult, and not empty"
                .into())
        }
    }
}

/// What the simulated model answers: (text or none, tool use or none, output tokens, stop reason).
fn answer(sim: &Sim, body: &Value) -> (String, Option<Value>, u64, &'static str) {
    let max = body["inferenceConfig"]["maxTokens"].as_u64().unwrap_or(u64::MAX);
    let choice = &body["toolConfig"]["toolChoice"];
    let tool = (choice.get("any").is_some() || choice.get("tool").is_some())
        .then(|| {
            let name = choice["tool"]["name"]
                .as_str()
                .or(body["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str())?;
            let id = format!("tooluse_sim{}", sim.served.load(Ordering::Relaxed));
            Some(json!({"toolUseId": id, "name": name, "input": {"query": "simulated"}}))
        })
        .flatten();
    messages_answer(sim, max, tool)
}

/// The bytes of text in the conversation: `text` of blocks and tool results.
fn prompt_bytes(v: &Value) -> u64 {
    match v {
        Value::Object(o) => {
            ["text", "content", "toolResult"].iter().filter_map(|k| o.get(*k)).map(prompt_bytes).sum()
        }
        Value::Array(a) => a.iter().map(prompt_bytes).sum(),
        Value::Null => 0,
        other => bytes_of(other),
    }
}

pub(super) async fn converse(
    State(sim): State<Arc<Sim>>,
    Path((_model, action)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = delay_then_fail(&sim).await {
        let kind = match status.as_u16() {
            429 => "ThrottlingException",
            503 => "ServiceUnavailableException",
            _ => "InternalServerException",
        };
        return error(status, kind, format!("{} was told to fail", sim.opts.name));
    }
    let stream = match action.as_str() {
        "converse" => false,
        "converse-stream" => true,
        _ => return error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation"),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if let Err((kind, why)) = check_signature(&headers, path, &body) {
        return error(StatusCode::FORBIDDEN, kind, why);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "The request body is not valid JSON.",
        );
    };
    if let Err(e) = check(&body) {
        return invalid(e);
    }
    let prompt = (prompt_bytes(&body["messages"]) + prompt_bytes(&body["system"])).div_ceil(4)
        + 3
        + super::billed_extras(&body, "toolConfig");
    // Like Anthropic's, Bedrock's inputTokens excludes what was read from the cache.
    let cached = sim.opts.cached_tokens.min(prompt);
    let usage =
        json!({"inputTokens": prompt - cached, "cacheReadInputTokens": cached, "cacheWriteInputTokens": 0});
    let (text, tool, output, stop) = answer(&sim, &body);
    let mut usage = usage;
    usage["outputTokens"] = json!(output);
    usage["totalTokens"] = json!(prompt + output);
    if stream {
        let events = events(&text, tool, stop, usage);
        // A cut stream: the first third of the messages (part of the text), no messageStop,
        // no metadata.
        let events = if sim.opts.cut_streams { events[..events.len().div_ceil(3)].to_vec() } else { events };
        return ([("content-type", "application/vnd.amazon.eventstream")], events.concat()).into_response();
    }
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"text": text}));
    }
    content.extend(tool.map(|t| json!({"toolUse": t})));
    let reply = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage,
        "metrics": {"latencyMs": sim.opts.latency_ms},
    });
    ([("content-type", "application/json")], reply.to_string()).into_response()
}

/// One event-stream message of `event` carrying `payload`.
fn frame(event: &str, payload: Value) -> Vec<u8> {
    let string = |s: &str| HeaderValue::String(s.to_string().into());
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(":event-type", string(event)))
        .add_header(Header::new(":content-type", string("application/json")))
        .add_header(Header::new(":message-type", string("event")));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).expect("an event-stream message encodes");
    out
}

/// The stream's messages, in order.
fn events(text: &str, tool: Option<Value>, stop: &str, usage: Value) -> Vec<Vec<u8>> {
    let mut out = vec![frame("messageStart", json!({"role": "assistant"}))];
    let mut index = 0;
    if !text.is_empty() {
        for (i, word) in text.split(' ').enumerate() {
            let piece = if i == 0 { word.to_string() } else { format!(" {word}") };
            out.push(frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"text": piece}}),
            ));
        }
        out.push(frame("contentBlockStop", json!({"contentBlockIndex": index})));
        index += 1;
    }
    if let Some(t) = tool {
        let start = json!({"toolUse": {"toolUseId": t["toolUseId"], "name": t["name"]}});
        out.push(frame("contentBlockStart", json!({"contentBlockIndex": index, "start": start})));
        let input = t["input"].to_string();
        let (a, b) = input.split_at(input.len() / 2);
        for piece in [a, b] {
            let delta = json!({"toolUse": {"input": piece}});
            out.push(frame("contentBlockDelta", json!({"contentBlockIndex": index, "delta": delta})));
        }
        out.push(frame("contentBlockStop", json!({"contentBlockIndex": index})));
    }
    out.push(frame("messageStop", json!({"stopReason": stop})));
    out.push(frame("metadata", json!({"usage": usage, "metrics": {"latencyMs": 1}})));
    out
}

#[cfg(test)]
mod tests {
    use super::amz_date;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn amz_dates_are_read_as_utc() {
        assert_eq!(amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        // 2015-08-30T12:36:00Z, the date of AWS's SigV4 examples.
        assert_eq!(amz_date("20150830T123600Z"), Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160)));
        assert_eq!(amz_date("2015-08-30"), None);
    }
}
