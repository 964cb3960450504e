//! Relaying a streamed (server-sent events) chat completion: each upstream event is
//! translated to OpenAI chunks by the provider's adapter and passed on as it arrives; the
//! usage chunk (always requested upstream) is read for metering and dropped unless the
//! caller asked for it; the usage record is committed before the final `[DONE]` is sent.
//! A stream that ends without its terminal event ends in an error event instead of `[DONE]`.
//! Cut by the relayer's own deadline (silent too long, or past the attempt's total), the
//! provider was still working and bills it: it is charged its hold. Broken by the provider,
//! it is charged for what was delivered: the usage the provider reported so far, or the
//! prompt bound, and at least a token per delivered byte of output; never more than the
//! hold. A caller that stops reading never stalls the upstream read: after `STALL` it is
//! left behind and the stream is read to its end and charged as billed.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::domain::meter::Hold;
use crate::domain::pricing::Tokens;
use crate::http::charge::{usage_of, Served};
use crate::providers::{sse_data, Stream};
use crate::store::ledger::Ledger;

enum Event {
    Done,
    /// The usage chunk: `usage` set and no choices.
    Usage(Tokens),
    /// Any other chunk; it may still carry usage (some providers put it on the last one).
    Chunk {
        usage: Option<Tokens>,
        delivered: usize,
    },
}

fn classify(event: &[u8]) -> Event {
    let data = sse_data(event);
    if data == "[DONE]" {
        return Event::Done;
    }
    let Ok(v) = serde_json::from_str::<Value>(&data) else {
        return Event::Chunk { usage: None, delivered: 0 };
    };
    match usage_of(&v) {
        Some(u) if v["choices"].as_array().is_some_and(Vec::is_empty) => Event::Usage(u),
        usage => Event::Chunk { usage, delivered: generated_bytes(&v) },
    }
}

/// The generated text a chunk carries: its content (a completion's `text`), its reasoning
/// and its tool calls' arguments.
fn generated_bytes(chunk: &Value) -> usize {
    let choice = &chunk["choices"][0];
    let delta = &choice["delta"];
    let text = |v: &Value| v.as_str().map_or(0, str::len);
    let calls = delta["tool_calls"].as_array().into_iter().flatten();
    text(&delta["content"])
        + text(&delta["reasoning_content"])
        + text(&choice["text"])
        + calls.map(|c| text(&c["function"]["arguments"])).sum::<usize>()
}

/// How long a caller that stops reading may hold the stream up before it is left behind.
const STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// What a stream the provider broke is charged for: the usage it reported so far (its
/// output at least what was delivered), or the prompt bound; the delivered output at a
/// token a byte (no tokenizer makes fewer bytes than tokens).
fn delivered_usage(reported: Option<Tokens>, prompt_bound: u64, delivered: usize) -> Tokens {
    let output = delivered as u64;
    match reported {
        Some(t) => Tokens { output: t.output.max(output), ..t },
        None => Tokens::plain(prompt_bound, output),
    }
}

/// The usage chunk with `usage.cost`: the credits (base units) the request was charged.
fn with_cost(event: &[u8], charged: u64) -> Option<Bytes> {
    let data = sse_data(event);
    let mut v: Value = serde_json::from_str(&data).ok()?;
    v["usage"]["cost"] = Value::from(charged);
    Some(Bytes::from(format!("data: {v}\n\n")))
}

const INTERRUPTED: &str = r#"{"error": {"message": "The provider's stream broke before it finished; you were charged for what was delivered.", "type": "upstream_error", "param": null, "code": "stream_interrupted"}}"#;

const TIMED_OUT: &str = r#"{"error": {"message": "The provider's stream went silent past the relayer's deadline while it was still working, and it bills that work: you were charged the request's hold.", "type": "upstream_error", "param": null, "code": "stream_timed_out"}}"#;

/// Streams `upstream` to the caller and settles the request when it ends.
pub(crate) fn relay(
    ledger: Ledger,
    served: Served,
    hold: Hold,
    stream: Stream,
    include_usage: bool,
    slot: Option<crate::http::routes::Slot>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        // The request's concurrency slot, held while the upstream stream is read.
        let _slot = slot;
        let Stream { first, rest, mut translator } = stream;
        let mut body = futures_util::stream::iter([Ok(first)]).chain(rest.bytes_stream());
        let mut buf: Vec<u8> = Vec::new();
        let mut usage = None;
        let mut delivered = 0;
        let mut usage_chunk: Option<Vec<u8>> = None;
        // Keep reading after the caller leaves (or stops reading): the provider bills what it
        // generated.
        let caller = std::sync::Mutex::new(Some(tx));
        let send = |bytes: Bytes| {
            let tx = caller.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let caller = &caller;
            async move {
                let Some(tx) = tx else { return };
                if !matches!(tokio::time::timeout(STALL, tx.send(bytes)).await, Ok(Ok(()))) {
                    *caller.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
        };
        let mut done = false;
        let mut timed_out = false;
        while let Some(piece) = body.next().await {
            let piece = match piece {
                Ok(piece) => piece,
                Err(e) => {
                    timed_out = e.is_timeout();
                    break;
                }
            };
            buf.extend_from_slice(&piece);
            while let Some(upstream_event) = translator.next_event(&mut buf) {
                for event in translator.event(&upstream_event) {
                    match classify(&event) {
                        Event::Done => done = true,
                        Event::Usage(u) => {
                            usage = Some(u);
                            // Sent at the end, with what the request cost.
                            usage_chunk = include_usage.then_some(event);
                        }
                        Event::Chunk { usage: u, delivered: n } => {
                            usage = u.or(usage);
                            delivered += n;
                            send(Bytes::from(event)).await;
                        }
                    }
                    if done {
                        break;
                    }
                }
                if done {
                    break;
                }
            }
            if done {
                break;
            }
        }
        if timed_out {
            // Our deadline, not the provider's failure: it was working, and bills it.
            usage = None;
        } else if !done {
            let reported = usage.or(translator.usage_so_far());
            usage = Some(delivered_usage(reported, served.prompt_bound, delivered));
        }
        // The record is durable before the final chunk goes out.
        match served.record_and_charge(&ledger, hold, usage).await {
            Ok(charged) => {
                if let Some(chunk) = usage_chunk.and_then(|c| with_cost(&c, charged)) {
                    send(chunk).await;
                }
                let end = match (done, timed_out) {
                    (true, _) => "data: [DONE]\n\n".to_string(),
                    (false, true) => format!("data: {TIMED_OUT}\n\n"),
                    (false, false) => format!("data: {INTERRUPTED}\n\n"),
                };
                send(Bytes::from(end)).await;
            }
            Err(e) => {
                let err = serde_json::json!({"error": {"message": format!("The relayer could not record this request's usage: {e:#}"), "type": "server_error", "param": null, "code": "relayer_unavailable"}});
                send(Bytes::from(format!("data: {err}\n\n"))).await;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut().insert("content-type", HeaderValue::from_static("text/event-stream"));
    res.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    res
}
