//! SIMULATED Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`), following its public reference: `contents` with roles
//! `user` and `model` and non-empty `parts` (`text`, `inlineData`, `functionCall`,
//! `functionResponse`); `systemInstruction`, `tools[].functionDeclarations`,
//! `toolConfig.functionCallingConfig` and `generationConfig`; errors as
//! `{"error": {"code", "message", "status"}}` (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`,
//! `UNAVAILABLE`, `INTERNAL`). With function calling mode `ANY` the reply is a
//! `functionCall`; otherwise text. A stream is a series of partial responses, the last with
//! its `finishReason`, each with the `usageMetadata` so far.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{bytes_of, delay_then_fail, Sim};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message.into(), "status": name}});
    (status, Json(body)).into_response()
}

fn check(body: &Value) -> Result<(), String> {
    let contents = body["contents"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    for (i, c) in contents.iter().enumerate() {
        if !matches!(c["role"].as_str(), Some("user" | "model")) {
            return Err(format!("* GenerateContentRequest.contents[{i}].role: must be 'user' or 'model'"));
        }
        let parts = c["parts"].as_array().filter(|p| !p.is_empty()).ok_or(format!(
            "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty"
        ))?;
        for (j, p) in parts.iter().enumerate() {
            let known = ["text", "inlineData", "functionCall", "functionResponse"]
                .iter()
                .filter(|k| p.get(**k).is_some())
                .count();
            if known != 1 {
                return Err(format!("* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field"));
            }
            if p["inlineData"].is_object()
                && !p["inlineData"]["mimeType"].as_str().is_some_and(|m| m.starts_with("image/"))
            {
                return Err(format!("* GenerateContentRequest.contents[{i}].parts[{j}].inline_data.mime_type: unsupported MIME type"));
            }
        }
    }
    if body["generationConfig"]["temperature"].as_f64().is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err("* GenerateContentRequest.generation_config.temperature: must be between 0 and 2".into());
    }
    Ok(())
}

/// The text bytes of a request's contents and system instruction.
fn prompt_bytes(v: &Value) -> u64 {
    match v {
        Value::Object(o) => {
            ["text", "parts", "contents"].iter().filter_map(|k| o.get(*k)).map(prompt_bytes).sum()
        }
        Value::Array(a) => a.iter().map(prompt_bytes).sum(),
        Value::Null => 0,
        other => bytes_of(other),
    }
}

pub(super) async fn generate(
    State(sim): State<Arc<Sim>>,
    Path(action): Path<String>,
    RawQuery(query): RawQuery,
    Json(body): Json<Value>,
) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = delay_then_fail(&sim).await {
        return error(status, format!("{} was told to fail", sim.opts.name));
    }
    let (model, stream) = match action.split_once(':') {
        Some((m, "generateContent")) => (m.to_string(), false),
        Some((m, "streamGenerateContent")) if query.as_deref() == Some("alt=sse") => (m.to_string(), true),
        Some((_, "streamGenerateContent")) => {
            return error(StatusCode::BAD_REQUEST, "the simulation streams with alt=sse only")
        }
        _ => return error(StatusCode::NOT_FOUND, format!("unknown method {action}")),
    };
    if let Err(e) = check(&body) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let prompt = (prompt_bytes(&body["contents"]) + prompt_bytes(&body["systemInstruction"])).div_ceil(4)
        + 3
        + super::billed_extras(&body, "tools");
    let max = sim.bound(body["generationConfig"]["maxOutputTokens"].as_u64().unwrap_or(u64::MAX));
    let output = sim.opts.completion_tokens.min(max);
    let cached = sim.opts.cached_tokens.min(prompt);
    let usage = |output: u64| {
        let mut u = json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output});
        if cached > 0 {
            u["cachedContentTokenCount"] = json!(cached);
        }
        u
    };
    let config = &body["toolConfig"]["functionCallingConfig"];
    let call = (config["mode"] == "ANY")
        .then(|| {
            config["allowedFunctionNames"][0]
                .as_str()
                .or(body["tools"][0]["functionDeclarations"][0]["name"].as_str())
        })
        .flatten()
        .map(|name| json!({"functionCall": {"name": name, "args": {"query": "simulated"}}}));
    let finish = if call.is_none() && sim.opts.completion_tokens > max { "MAX_TOKENS" } else { "STOP" };
    let text = format!("[{}] simulated reply", sim.opts.name);
    let id = format!("gemini-sim-{}", sim.served.load(Ordering::Relaxed));
    let response = |parts: Value, finish: Option<&str>, output: u64| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        json!({"candidates": [candidate], "usageMetadata": usage(output), "modelVersion": model, "responseId": id})
    };
    if !stream {
        let parts = match &call {
            Some(c) => json!([c]),
            None => json!([{"text": text}]),
        };
        return Json(response(parts, Some(finish), output)).into_response();
    }
    let mut events: Vec<Value> = match &call {
        Some(c) => vec![response(json!([c]), None, output)],
        None => text
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                response(json!([{"text": if i == 0 { w.to_string() } else { format!(" {w}") }}]), None, 1)
            })
            .collect(),
    };
    if sim.opts.cut_streams {
        events.truncate(events.len().div_ceil(2));
    } else {
        events.push(response(json!([{"text": ""}]), Some(finish), output));
    }
    let sse: String = events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect();
    ([("content-type", "text/event-stream")], sse).into_response()
}
