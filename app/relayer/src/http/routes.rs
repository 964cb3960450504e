//! The routes: one table (`ROUTES`, documented by `api/openapi.json`), the server, and the
//! layer every request passes through (request id, metrics, access log), with the
//! service's own endpoints (models, readiness, metrics).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::gateway::{header, Gateway};
use crate::http::metrics::UpstreamTime;
use crate::http::{account, proxy};
use crate::providers::Endpoint;

/// Every route the gateway serves, as (method, path); `api/openapi.json` documents exactly
/// these (a test holds the two together).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/keys/challenge"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/keys/list"),
    ("POST", "/v1/keys/revoke"),
    ("GET", "/v1/receipts"),
    ("GET", "/v1/receipts/{id}"),
    ("GET", "/v1/settlement/batches"),
    ("GET", "/v1/settlement/accounts"),
    ("POST", "/v1/alerts"),
    ("GET", "/v1/alerts"),
    ("DELETE", "/v1/alerts/{id}"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
];

/// The OpenAPI 3.1 document of the routes above.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

/// The route table: every route the gateway serves, with the request id, metrics and
/// access log around each.
pub fn router(g: &Arc<Gateway>) -> Router {
    let model_routes = Router::new()
        .route("/v1/chat/completions", post(|g, s, h, b| proxy::proxy(g, s, h, b, Endpoint::Chat)))
        .route("/v1/completions", post(|g, s, h, b| proxy::proxy(g, s, h, b, Endpoint::Completions)))
        .route("/v1/embeddings", post(|g, s, h, b| proxy::proxy(g, s, h, b, Endpoint::Embeddings)))
        .route("/v1/messages", post(proxy::anthropic_messages))
        // Layers run last-added first: the key, then a slot, then the body.
        .route_layer(axum::middleware::from_fn_with_state(g.clone(), one_slot))
        .route_layer(axum::middleware::from_fn_with_state(g.clone(), before_the_body));
    Router::new()
        .merge(model_routes)
        .route("/v1/models", get(models))
        .route("/v1/usage", get(account::usage))
        .route("/v1/keys/challenge", post(account::key_challenge))
        .route("/v1/keys", post(account::key_create))
        .route("/v1/keys/list", post(account::key_list))
        .route("/v1/keys/revoke", post(account::key_revoke))
        .route("/v1/receipts", get(account::receipts))
        .route("/v1/receipts/{id}", get(account::receipt))
        .route("/v1/settlement/batches", get(account::batches_of))
        .route("/v1/settlement/accounts", get(account::settlement_accounts))
        .route("/v1/alerts", post(account::alert_add).get(account::alert_list))
        .route("/v1/alerts/{id}", axum::routing::delete(account::alert_remove))
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/health/ready", get(ready))
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], OPENAPI) }))
        // Unknown paths and methods answer in OpenAI's error shape too, as OpenAI does.
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::not_found(
                "unknown_url",
                format!("Invalid URL ({method} {}): see GET /openapi.json.", uri.path()),
            )
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::method_not_allowed(format!(
                "{method} is not served at {}: see GET /openapi.json.",
                uri.path()
            ))
        })
        .layer(axum::middleware::from_fn_with_state(g.clone(), observe))
        .with_state(g.clone())
}

/// Starts the gateway on the configured address; returns where it listens.
pub async fn serve(gateway: Arc<Gateway>) -> std::io::Result<SocketAddr> {
    let (addr, _server) = serve_until(gateway, std::future::pending()).await?;
    Ok(addr)
}

/// Serves until `stop` completes, then stops accepting and lets every request in flight,
/// streams included, finish; the task ends when the last one has.
pub async fn serve_until(
    gateway: Arc<Gateway>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(gateway.config.listen).await?;
    let addr = listener.local_addr()?;
    let app = router(&gateway);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok((addr, server))
}

/// The model routes: the key is checked before a slot is taken and the body is read, so a
/// caller without one can neither make the relayer read megabytes nor hold its slots.
/// Anthropic's clients send it as `x-api-key`, taken as the bearer token here.
async fn before_the_body(
    State(g): State<Arc<Gateway>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let anthropic = req.uri().path() == "/v1/messages";
    if anthropic && !req.headers().contains_key("authorization") {
        let key = req.headers().get("x-api-key").and_then(|k| k.to_str().ok()).map(|k| format!("Bearer {k}"));
        if let Some(v) = key.and_then(|k| axum::http::HeaderValue::from_str(&k).ok()) {
            req.headers_mut().insert("authorization", v);
        }
    }
    match g.caller(req.headers()) {
        Ok(_) => next.run(req).await,
        Err(e) if anthropic => crate::http::messages::error(e.status, &e.message),
        Err(e) => e.into_response(),
    }
}

/// A request's concurrency slot: held by its reply's body and by the task that serves it
/// upstream, so neither a caller that hangs up nor a reply still being read frees it early.
#[derive(Clone)]
pub(crate) struct Slot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// Every model route: a slot of `max_concurrent_requests`, taken before the body is read
/// and held until the reply's body (a stream's last event) is done.
async fn one_slot(
    State(g): State<Arc<Gateway>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(permit) = g.slots.clone().try_acquire_owned() else {
        return ApiError::overloaded(g.config.slots()).into_response();
    };
    let slot = Slot { _permit: Arc::new(permit) };
    let mut req = req;
    req.extensions_mut().insert(slot.clone());
    next.run(req).await.map(|inner| axum::body::Body::new(Slotted { inner, _slot: slot }))
}

/// A reply's body that holds its request's slot until it is dropped (sent or abandoned);
/// its length is the inner body's, so a sized reply keeps its `content-length`.
struct Slotted {
    inner: axum::body::Body,
    _slot: Slot,
}

impl http_body::Body for Slotted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Every response gets a request id (handlers set theirs; errors get one here) and is
/// counted, with the relayer's own share of its latency.
async fn observe(
    State(g): State<Arc<Gateway>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only known routes become metric labels: a caller probing paths must not grow them.
    let path = req.uri().path();
    let route = match ROUTES.iter().find(|(_, p)| *p == path) {
        Some((_, p)) => p,
        None if path.starts_with("/v1/receipts/") => "/v1/receipts/{id}",
        None if path.starts_with("/v1/alerts/") => "/v1/alerts/{id}",
        None => "unmatched",
    }
    .to_string();
    let started = std::time::Instant::now();
    let mut res = next.run(req).await;
    if !res.headers().contains_key("x-compux-request-id") {
        res.headers_mut().insert("x-compux-request-id", header(uuid::Uuid::new_v4()));
    }
    if route != "/metrics" {
        let h = res.headers();
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (provider, status) = (text("x-compux-provider"), res.status().as_u16());
        let upstream = res.extensions().get::<UpstreamTime>().map(|u| u.0);
        let elapsed = started.elapsed();
        g.metrics.observe(&route, status, provider, elapsed, upstream);
        // One structured line per request (the access log); streams log when their reply
        // starts, and the ledger has their final charge.
        tracing::info!(
            target: "compux_relayer::access",
            request_id = text("x-compux-request-id"),
            route = route.as_str(),
            status,
            provider,
            credits_charged = text("x-compux-credits-charged"),
            duration_us = elapsed.as_micros() as u64,
            upstream_us = upstream.map_or(0, |u| u.as_micros() as u64),
            "request"
        );
    }
    res
}

async fn metrics(State(g): State<Arc<Gateway>>) -> Response {
    let (held, unsettled) = g.meter.totals();
    let providers: Vec<(String, bool)> =
        g.config.providers.iter().map(|p| (p.name.clone(), g.health.available(&p.name))).collect();
    let stuck = g.meter.settlement_troubles().iter().filter(|(_, t)| t.stuck()).count();
    let text = g.metrics.render(held, unsettled, stuck, &providers, &g.tasks.states());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Ready to serve: balances fresh enough for the hard cap (so the chain answers), and the
/// ledger takes writes. 503 with the failing check otherwise, for load balancers.
async fn ready(State(g): State<Arc<Gateway>>) -> (StatusCode, Json<Value>) {
    let balances = match g.meter.stale() {
        None => json!({"ok": true}),
        Some(age) => json!({"ok": false, "age_secs": age.map(|a| a.as_secs()),
            "message": "on-chain balances are older than max_balance_age_secs: is the chain reachable?"}),
    };
    let ledger = match g.ledger.probe_write().await {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "message": format!("the ledger does not take writes: {e:#}")}),
    };
    let stuck: Vec<Value> = g
        .meter
        .settlement_troubles()
        .into_iter()
        .filter(|(_, t)| t.stuck())
        .map(|(source, t)| {
            json!({"source": source.to_string(), "seq": t.seq, "attempts": t.attempts,
                                  "since_ms": t.since_ms, "error": t.error})
        })
        .collect();
    // A batch that cannot land degrades the relayer without taking it out of service: one
    // account draining its own vault must not stop every other account's requests.
    let settlement = json!({"ok": stuck.is_empty(), "stuck": stuck});
    let ok = balances["ok"] == true && ledger["ok"] == true;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = match (ok, settlement["ok"] == true) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    (status, Json(json!({"status": word, "balances": balances, "ledger": ledger, "settlement": settlement})))
}

async fn models(State(g): State<Arc<Gateway>>) -> Json<Value> {
    let mut data: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeMap::<&str, Vec<Value>>::new();
    for p in &g.config.providers {
        for m in &p.models {
            seen.entry(&m.name).or_default().push(json!({
                "provider": p.name,
                "input_per_1m": m.price.input_per_1m,
                "output_per_1m": m.price.output_per_1m,
                "hour_multipliers_bps": m.hour_multipliers_bps,
            }));
        }
    }
    for (name, prices) in seen {
        data.push(json!({
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "compux",
            // Credit base units (10^-6 credit) per 1M tokens, at each provider serving it.
            "pricing": {"unit": "credit base units per 1M tokens", "providers": prices},
        }));
    }
    Json(json!({"object": "list", "data": data}))
}
