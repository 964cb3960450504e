//! Relaying a streamed (server-sent events) chat completion: chunks pass through as they
//! arrive; the usage chunk (always requested upstream) is read for metering and dropped
//! unless the caller asked for it; the usage record is committed before the final
//! `[DONE]` is sent.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::domain::meter::Hold;
use crate::http::charge::{usage_of, Served};
use crate::providers::StreamTranslator;
use crate::store::ledger::Ledger;

enum Event {
    Done,
    /// The usage chunk: `usage` set and no choices.
    Usage((u64, u64)),
    /// Any other chunk; it may still carry usage (some providers put it on the last one).
    Chunk(Option<(u64, u64)>),
}

fn classify(event: &[u8]) -> Event {
    let text = String::from_utf8_lossy(event);
    let data: String = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
    if data == "[DONE]" {
        return Event::Done;
    }
    let Ok(v) = serde_json::from_str::<Value>(&data) else { return Event::Chunk(None) };
    match usage_of(&v) {
        Some(u) if v["choices"].as_array().is_some_and(Vec::is_empty) => Event::Usage(u),
        u => Event::Chunk(u),
    }
}

fn find_event_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// Streams `upstream` to the caller and settles the request when it ends.
pub(crate) fn relay(
    ledger: Ledger,
    served: Served,
    hold: Hold,
    upstream: reqwest::Response,
    mut translator: Box<dyn StreamTranslator>,
    include_usage: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut body = upstream.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut usage = None;
        // Keep reading after the caller leaves: the provider bills what it generated.
        let send = |bytes: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(bytes).await;
            }
        };
        let mut done = false;
        while let Some(piece) = body.next().await {
            let Ok(piece) = piece else { break };
            buf.extend_from_slice(&piece);
            while let Some(end) = find_event_end(&buf) {
                let upstream_event: Vec<u8> = buf.drain(..end).collect();
                for event in translator.event(&upstream_event) {
                    match classify(&event) {
                        Event::Done => done = true,
                        Event::Usage(u) => {
                            usage = Some(u);
                            if include_usage {
                                send(Bytes::from(event)).await;
                            }
                        }
                        Event::Chunk(u) => {
                            usage = u.or(usage);
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
        // The record is durable before the final chunk goes out.
        match served.record_and_charge(&ledger, hold, usage).await {
            Ok(_) if done => send(Bytes::from_static(b"data: [DONE]\n\n")).await,
            Ok(_) => {}
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
