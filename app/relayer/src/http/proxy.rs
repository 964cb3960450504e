//! The request path of the OpenAI-compatible API. A request is authenticated, checked,
//! held at its worst-case cost, sent to the cheapest provider serving its model (the next
//! one on a connect error, timeout or 5xx), and charged its real cost at the serving
//! provider's price. The request body goes upstream unchanged, unknown fields included.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::domain::routing::{self, Preferences};
use crate::domain::{bound, pricing};
use crate::error::ApiError;
use crate::http::charge::{usage_of, Served};
use crate::http::gateway::{header, refused, Gateway};
use crate::http::metrics::UpstreamTime;
use crate::http::routes::Slot;
use crate::providers::{self, Attempt, Call, Endpoint, Failure};

/// The largest `max_tokens` accepted; anything above is a client error, not a huge hold.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000;

/// The checked parts of a request; the body itself is forwarded as sent.
struct Request {
    model: String,
    /// The most prompt tokens the request can count (`domain/bound.rs`).
    prompt_bound: u64,
    /// How many generations of up to `max_tokens` each it asks for (`n`, `best_of`, prompts).
    generations: u64,
    max_tokens: Option<u64>,
    stream: bool,
    /// The caller asked for the final usage chunk (`stream_options.include_usage`).
    include_usage: bool,
    prefs: Preferences,
}

/// The request's fields the relayer acts on, and the body to forward; `image_tokens` says
/// what one image of a model may cost.
fn parse(
    body: &Bytes,
    endpoint: Endpoint,
    image_tokens: impl Fn(&str) -> u64,
) -> Result<(Value, Request), ApiError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", None, format!("The request body is not valid JSON: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request("invalid_type", None, "The request body must be a JSON object."));
    }
    let model = v["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_required_parameter",
                Some("model"),
                "`model` (a string) is required.",
            )
        })?
        .to_string();
    let field = endpoint.input();
    let input = v
        .get(field)
        .filter(|m| match m {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_required_parameter",
                Some(field),
                format!("`{field}` (a non-empty string or array) is required."),
            )
        })?;
    if endpoint == Endpoint::Chat && !input.is_array() {
        return Err(ApiError::bad_request("invalid_type", Some("messages"), "`messages` must be an array."));
    }
    // Embeddings generate nothing; the others are bounded by max_tokens or the default.
    let mut max_tokens = (endpoint == Endpoint::Embeddings).then_some(0);
    for &field in endpoint.max_token_fields() {
        match v.get(field) {
            None | Some(Value::Null) => {}
            Some(n) => match n.as_u64() {
                // Both fields set: the larger is held (a host may honour either).
                Some(n) if (1..=MAX_TOKENS_LIMIT).contains(&n) => max_tokens = max_tokens.max(Some(n)),
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_value",
                        Some(field),
                        format!("`{field}` must be an integer from 1 to {MAX_TOKENS_LIMIT}, not {n}."),
                    ))
                }
            },
        }
    }
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_type",
                Some("stream"),
                format!("`stream` must be a boolean, not {other}."),
            ))
        }
    };
    if stream && endpoint == Endpoint::Embeddings {
        return Err(ApiError::bad_request("invalid_value", Some("stream"), "Embeddings are not streamed."));
    }
    let include_usage = match v.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_type",
                Some("stream_options"),
                format!(
                    "`stream_options` must be an object such as {{\"include_usage\": true}}, not {other}."
                ),
            ))
        }
    };
    // The routing preferences are the relayer's, not the provider's: taken out of the body.
    let prefs = match v.as_object_mut().and_then(|o| o.remove("provider")) {
        None | Some(Value::Null) => Preferences::default(),
        Some(p) => serde_json::from_value(p).map_err(|e| {
            ApiError::bad_request(
                "invalid_value",
                Some("provider"),
                format!("Invalid `provider` preferences: {e}."),
            )
        })?,
    };

    let images = image_tokens(&model);
    let b = bound::of(&v, endpoint != Endpoint::Embeddings, endpoint == Endpoint::Completions, images)
        .map_err(|r| ApiError::bad_request(r.code, Some(r.field).filter(|f| !f.is_empty()), r.message))?;
    let (prompt_bound, generations) = (b.prompt_tokens, b.generations);
    Ok((v, Request { model, prompt_bound, generations, max_tokens, stream, include_usage, prefs }))
}

/// Anthropic's Messages API, served through the chat completion path (`http/messages.rs`).
pub(super) async fn anthropic_messages(
    State(g): State<Arc<Gateway>>,
    slot: Option<axum::Extension<Slot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let chat = |h, b| proxy(State(g), slot, h, b, Endpoint::Chat);
    crate::http::messages::serve(headers, body, chat).await
}

pub(super) async fn proxy(
    State(g): State<Arc<Gateway>>,
    slot: Option<axum::Extension<Slot>>,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    // In a task of its own: a caller that goes away does not cancel the upstream call, which
    // the provider bills all the same; the reply is recorded and charged whether or not
    // anyone is left to read it.
    // It keeps the request's concurrency slot until the upstream work is done.
    tokio::spawn(serve(g, headers, body, endpoint, slot.map(|s| s.0)))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("the request's task failed: {e}"))))
}

async fn serve(
    g: Arc<Gateway>,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
    slot: Option<Slot>,
) -> Result<Response, ApiError> {
    // Time-ordered (UUIDv7, 74 random bits: still unguessable as a receipt id), so the
    // ledger's unique index grows at its right edge instead of at random pages.
    let request_id = uuid::Uuid::now_v7().to_string();
    let (key_hash, caller) = g.caller(&headers)?;
    let (mut forward, req) = parse(&body, endpoint, |model| g.config.image_tokens_for(model))?;
    let max_tokens = req.max_tokens.unwrap_or(g.config.default_max_tokens);
    let generated = max_tokens.checked_mul(req.generations).ok_or_else(|| {
        ApiError::bad_request("invalid_value", Some("max_tokens"), "`max_tokens` times `n` is too large.")
    })?;
    if req.stream {
        // Usage is always requested upstream, so streams are metered exactly; the extra
        // chunk is removed again when the caller did not ask for it.
        forward["stream_options"]["include_usage"] = Value::Bool(true);
    }

    // Cheapest first for this request's worst case (or as the caller prefers). The hold
    // covers the worst case at the provider tried; before failing over to a dearer one it
    // grows to that one's worst case, or that provider is not tried. A charge never
    // exceeds the hold.
    let mut all = g.candidates(&req.model);
    all.retain(|(p, _, _)| providers::adapter(p.kind).serves(endpoint));
    if all.is_empty() {
        return Err(ApiError::model_not_found(&req.model));
    }
    let candidates: Vec<routing::Stop> = all
        .iter()
        .filter_map(|&(p, price, _)| Some((p, price, pricing::worst(price, req.prompt_bound, generated)?)))
        .collect();
    let route = routing::plan(candidates, &req.prefs, &g.health)?;
    let first = route.first().map_or(0, |(_, _, w)| *w);
    let mut hold = g.admit(&key_hash, &caller, first).await?;

    // Attempts together stop at the longest request the leases allow for (a replica's
    // claim must outlast every request it admitted).
    let admitted = std::time::Instant::now();
    let longest = g.config.request_deadline();
    let mut failures: Vec<(&str, Failure)> = Vec::new();
    for (provider, price, worst) in &route {
        let Some(left) = longest.checked_sub(admitted.elapsed()).filter(|l| !l.is_zero()) else {
            failures.push((&provider.name, Failure::Timeout));
            break;
        };
        if let Err(refused) = hold.extend(*worst) {
            failures.push((&provider.name, Failure::Unaffordable(refused)));
            continue;
        }
        let provider_price = all.iter().find(|c| c.0.name == provider.name).map_or(*price, |c| c.2);
        let served = || Served {
            request_id: request_id.clone(),
            key_hash: key_hash.clone(),
            account: caller.account,
            model: req.model.clone(),
            provider: provider.name.clone(),
            price: *price,
            provider_price,
            prompt_bound: req.prompt_bound,
            shortfalls: g.metrics.shortfall.clone(),
        };
        let started = std::time::Instant::now();
        let model =
            provider.models.iter().find(|m| m.name == req.model).and_then(|m| m.upstream_model.as_deref());
        let call = Call {
            endpoint,
            body: &forward,
            model: model.unwrap_or(&req.model),
            stream: req.stream,
            max_tokens,
            first_byte: std::time::Duration::from_millis(
                provider.first_byte_timeout_ms.unwrap_or(g.config.first_byte_timeout_ms),
            ),
            total: std::time::Duration::from_millis(
                provider.total_timeout_ms.unwrap_or(g.config.total_timeout_ms),
            )
            .min(left),
        };
        let attempt = providers::call(&g.http, provider, &call).await;
        let upstream_time = started.elapsed();
        match &attempt {
            Attempt::Failed(Failure::RateLimited(wait)) => g.health.rate_limited(&provider.name, *wait),
            Attempt::Failed(_) | Attempt::Unanswered(_) => g.health.failed(&provider.name),
            _ => g.health.succeeded(&provider.name, upstream_time),
        }
        let mut res = match attempt {
            Attempt::Served(body) => {
                // Durable before the caller sees the reply; if it cannot be written, the
                // reply is withheld and nothing is charged.
                let usage = usage_of(&body);
                let charged =
                    served().record_and_charge(&g.ledger, hold, usage).await.map_err(ApiError::internal)?;
                let mut body = body;
                if let Some(u) = body.get_mut("usage").and_then(Value::as_object_mut) {
                    // What the request cost, in credit base units, as OpenRouter reports it.
                    u.insert("cost".into(), Value::from(charged));
                }
                let mut res = Json(body).into_response();
                res.headers_mut().insert("x-compux-credits-charged", header(charged));
                res
            }
            Attempt::Streaming(stream) => crate::http::sse::relay(
                g.ledger.clone(),
                served(),
                hold,
                stream,
                req.include_usage,
                slot.clone(),
            ),
            Attempt::ClientError { status, body } => {
                let mut res = (status, body).into_response();
                res.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
                res
            }
            Attempt::Failed(why) => {
                failures.push((&provider.name, why));
                continue;
            }
            Attempt::Unanswered(why) => {
                // The provider has the request and may bill it: charged its hold (the most it
                // can cost), recorded like any other, and said so.
                let charged =
                    served().record_and_charge(&g.ledger, hold, None).await.map_err(ApiError::internal)?;
                let status = match why {
                    Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let e = ApiError::upstream(
                    status,
                    format!(
                        "{} accepted the request and gave no answer ({why}). It may bill the work, so the \
                         request was charged its hold, {charged} credit base units, and not sent to \
                         another provider (that would pay twice). Retry; a smaller max_tokens answers \
                         sooner.",
                        provider.name
                    ),
                );
                let mut res = e.into_response();
                res.headers_mut().insert("x-compux-credits-charged", header(charged));
                res.headers_mut().insert("x-compux-receipt", header(&request_id));
                res
            }
        };
        let status_ok = res.status().is_success();
        res.extensions_mut().insert(UpstreamTime(upstream_time));
        let h = res.headers_mut();
        h.insert("x-compux-request-id", header(&request_id));
        h.insert("x-compux-provider", header(&provider.name));
        if status_ok {
            // The usage record's id: `compux audit prove <receipt>` checks its burn.
            h.insert("x-compux-receipt", header(&request_id));
        }
        return Ok(res);
    }
    drop(hold);
    let tried = failures.iter().filter(|(_, f)| !matches!(f, Failure::Unaffordable(_)));
    let status = if tried.clone().all(|(_, f)| matches!(f, Failure::Timeout)) {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    let why: Vec<String> = failures.iter().map(|(p, f)| format!("{p}: {f}")).collect();
    let why = why.join("; ");
    // A dearer provider left untried for want of credits is what the caller can act on.
    let unaffordable = failures.into_iter().rev().find_map(|(_, f)| match f {
        Failure::Unaffordable(r) => Some(r),
        _ => None,
    });
    Err(match unaffordable {
        Some(r) => {
            let e = refused(r);
            ApiError {
                message: format!("No provider could serve `{}`: {why}. {}", req.model, e.message),
                ..e
            }
        }
        None => ApiError::upstream(
            status,
            format!("No provider could serve `{}`: {why}. Nothing was charged.", req.model),
        ),
    })
}
