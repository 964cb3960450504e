//! The OpenAI-compatible API. A request is authenticated, checked, held at its worst-case
//! cost, sent to the cheapest provider serving its model (the next one on a connect error,
//! timeout or 5xx), and charged its real cost at the serving provider's price. The request
//! body goes upstream unchanged, unknown fields included.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::access::keys::{Caller, Keys, Signed};
use crate::access::limits::RateLimiter;
use crate::config::{Config, Provider};
use crate::domain::ids::KeyHash;
use crate::domain::ids::Source;
use crate::domain::meter::{Budget, Hold, Meter, Refused};
use crate::domain::pricing::{self, Price};
use crate::domain::routing::{self, Health, Preferences};
use crate::error::ApiError;
use crate::http::charge::{usage_of, Served};
use crate::http::metrics::{Metrics, UpstreamTime};
use crate::jobs::tasks::Tasks;
use crate::providers::{self, Attempt, Call, Endpoint, Failure};
use crate::store::ledger::{Dim, Ledger, UsageQuery};

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
    ("GET", "/v1/batches"),
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

/// The largest `max_tokens` accepted; anything above is a client error, not a huge hold.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000;

pub struct Gateway {
    config: Config,
    pub meter: Arc<Meter>,
    pub ledger: Ledger,
    pub health: Health,
    metrics: Metrics,
    http: reqwest::Client,
    /// API keys (hashed) and the credit accounts they spend from.
    pub keys: Arc<Keys>,
    rate: RateLimiter,
    /// The background tasks, supervised (`/metrics` shows them).
    pub tasks: Tasks,
}

impl Gateway {
    pub async fn new(config: Config, meter: Arc<Meter>, ledger: Ledger) -> anyhow::Result<Arc<Gateway>> {
        let http =
            // Per read, not per request: a long stream is fine as long as it keeps flowing.
            reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(config.upstream_timeout_ms))
                .read_timeout(Duration::from_millis(config.upstream_timeout_ms))
                // A provider API answers where it is asked; following a redirect would resend
                // (or, on 301/302, drop) a paid request's body somewhere else. The policy
                // hook also cost about 1.5 % of the relayer's CPU per request.
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
        let market = config.market;
        let configured = config
            .keys
            .iter()
            .map(|k| Ok((KeyHash::parse(&k.sha256).map_err(anyhow::Error::msg)?, k.caller())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let clock = meter.clock().clone();
        let keys = Arc::new(Keys::load(configured, ledger.pool(), market, clock.clone()).await?);
        let tasks = Tasks::default();
        let (k, pool) = (keys.clone(), ledger.pool().clone());
        tasks.supervise("keys", move || Box::pin(k.clone().sync_forever(pool.clone())));
        let cooldown = Duration::from_millis(config.breaker_cooldown_ms);
        let health = Health::new(clock.clone(), config.breaker_threshold, cooldown);
        // Replicas share a Postgres ledger; a SQLite ledger belongs to one process.
        let rate = match ledger.backend() {
            crate::store::db::Backend::Postgres => RateLimiter::shared(clock, ledger.pool().clone()),
            crate::store::db::Backend::Sqlite => RateLimiter::local(clock),
        };
        Ok(Arc::new(Gateway {
            config,
            meter,
            ledger,
            health,
            metrics: Metrics::new(),
            http,
            keys,
            rate,
            tasks,
        }))
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(|g, h, b| proxy(g, h, b, Endpoint::Chat)))
            .route("/v1/completions", post(|g, h, b| proxy(g, h, b, Endpoint::Completions)))
            .route("/v1/embeddings", post(|g, h, b| proxy(g, h, b, Endpoint::Embeddings)))
            .route("/v1/messages", post(anthropic_messages))
            .route("/v1/usage", get(usage))
            .route("/v1/keys/challenge", post(key_challenge))
            .route("/v1/keys", post(key_create))
            .route("/v1/keys/list", post(key_list))
            .route("/v1/keys/revoke", post(key_revoke))
            .route("/v1/receipts", get(receipts))
            .route("/v1/receipts/{id}", get(receipt))
            .route("/v1/batches", get(batches_of))
            .route("/v1/alerts", post(alert_add).get(alert_list))
            .route("/v1/alerts/{id}", axum::routing::delete(alert_remove))
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
            .layer(axum::middleware::from_fn_with_state(self.clone(), observe))
            .with_state(self.clone())
    }

    /// The caller's key hash, the credit account it spends from and its limits.
    fn caller(&self, headers: &HeaderMap) -> Result<(KeyHash, Caller), ApiError> {
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110).
            .and_then(|v| v.split_once(' '))
            .and_then(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer").then_some(key))
            .ok_or_else(ApiError::invalid_key)?;
        let hash = KeyHash::of(key.trim());
        let caller = self.keys.caller(&hash).ok_or_else(ApiError::invalid_key)?;
        Ok((hash, caller))
    }

    /// Holds `worst` for the caller: its requests-per-minute limit, its daily budget, and
    /// the first of its account's credit sources that can cover it.
    async fn admit(
        self: &Arc<Self>,
        key_hash: &KeyHash,
        caller: &Caller,
        worst: u64,
    ) -> Result<Hold, ApiError> {
        if let Some(age) = self.meter.stale() {
            return Err(ApiError::balances_stale(age));
        }
        if let Some(n) = caller.limits.requests_per_minute {
            self.rate
                .admit(key_hash, n)
                .await
                .map_err(ApiError::internal)?
                .map_err(|wait| ApiError::rate_limited(n, wait.0.as_millis() as u64))?;
        }
        let budget = caller.limits.credits_per_day.map(|per_day| Budget {
            key: key_hash,
            per_day,
            day: self.meter.clock().today(),
        });
        self.meter.hold(caller.account, worst, budget).map_err(refused)
    }

    /// Providers serving `model`, with the caller's and the provider's own price at each for
    /// the current UTC hour.
    fn candidates(&self, model: &str) -> Vec<(&Provider, Price, Price)> {
        let hour = (self.meter.clock().now_ms().div_euclid(3_600_000) % 24) as usize;
        self.config
            .providers
            .iter()
            .filter_map(|p| {
                let m = p.models.iter().find(|m| m.name == model)?;
                Some((p, m.price_at(hour), m.provider_price_at(hour)))
            })
            .collect()
    }
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
    let app = gateway.router();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok((addr, server))
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
    let ok = balances["ok"] == true && ledger["ok"] == true;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(
            json!({"status": if ok { "ready" } else { "not_ready" }, "balances": balances, "ledger": ledger}),
        ),
    )
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

/// The checked parts of a request; the body itself is forwarded as sent.
struct Request {
    model: String,
    prompt_bound: u64,
    max_tokens: Option<u64>,
    stream: bool,
    /// The caller asked for the final usage chunk (`stream_options.include_usage`).
    include_usage: bool,
    prefs: Preferences,
}

fn parse(body: &Bytes, endpoint: Endpoint) -> Result<(Value, Request), ApiError> {
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
    let prompt_bound = pricing::prompt_token_bound(input);
    // Embeddings generate nothing; the others are bounded by max_tokens or the default.
    let mut max_tokens = (endpoint == Endpoint::Embeddings).then_some(0);
    for &field in endpoint.max_token_fields() {
        match v.get(field) {
            None | Some(Value::Null) => {}
            Some(n) => match n.as_u64() {
                Some(n) if (1..=MAX_TOKENS_LIMIT).contains(&n) => max_tokens = Some(n),
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
    let include_usage = v["stream_options"]["include_usage"].as_bool() == Some(true);
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

    Ok((v, Request { model, prompt_bound, max_tokens, stream, include_usage, prefs }))
}

/// A hold refused, as the caller sees it.
fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Insufficient { available, needed } => ApiError::insufficient_credits(available, needed),
        Refused::Frozen { facility, needed, .. } => ApiError::credits_frozen(&facility, needed),
        Refused::DailyLimit { limit, used, needed } => ApiError::daily_limit(limit, used, needed),
    }
}

fn header(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or_else(|_| HeaderValue::from_static("-"))
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
    let text = g.metrics.render(held, unsettled, &providers, &g.tasks.states());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// `group_by` (comma-separated: day, key, model, provider; all four by default, `none` for
/// one total), `from` and `to` (UTC days, YYYY-MM-DD, inclusive).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    settled: Option<bool>,
}

fn usage_query(p: UsageParams) -> Result<UsageQuery, ApiError> {
    let group_by = match p.group_by.as_deref() {
        None => Dim::ALL.to_vec(),
        Some("none") | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|d| {
                serde_json::from_value::<Dim>(Value::String(d.trim().to_string())).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_value",
                        Some("group_by"),
                        format!("`group_by` takes day, key, model and provider (comma-separated) or none, not {d:?}."),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let day = |v: Option<String>, param: &'static str| match v {
        Some(d) if !is_day(&d) => Err(ApiError::bad_request(
            "invalid_value",
            Some(param),
            format!("`{param}` must be a UTC day, YYYY-MM-DD, not {d:?}."),
        )),
        other => Ok(other),
    };
    Ok(UsageQuery {
        group_by,
        from: day(p.from, "from")?,
        to: day(p.to, "to")?,
        settled: p.settled.unwrap_or(false),
    })
}

fn is_day(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// A request's receipt: its record as a Merkle leaf, the batch that burned it (once cut)
/// and the proof. Public: a receipt id is unguessable, and whoever holds it may verify it.
async fn receipt(
    State(g): State<Arc<Gateway>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    g.ledger.flush().await.map_err(ApiError::internal)?;
    match crate::store::batches::receipt(g.ledger.pool(), &id).await.map_err(ApiError::internal)? {
        Some(r) => Ok(Json(json!(r))),
        None => Err(ApiError::not_found("receipt_not_found", format!("No usage record has the id {id:?}."))),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptParams {
    from: Option<String>,
    to: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<u32>,
}

/// The most receipts one page holds.
const RECEIPTS_PAGE: u32 = 10_000;

/// The key's account's receipts for a period, oldest first, a page at a time (`next` is the
/// cursor for the following page, absent on the last).
async fn receipts(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    params: Result<axum::extract::Query<ReceiptParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, caller) = g.caller(&headers)?;
    let p = params.map_err(|e| ApiError::bad_request("invalid_value", None, format!("{e}.")))?.0;
    let period =
        usage_query(UsageParams { group_by: Some("none".into()), from: p.from, to: p.to, settled: None })?;
    let limit = p.limit.unwrap_or(1_000);
    if !(1..=RECEIPTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_value",
            Some("limit"),
            format!("`limit` must be from 1 to {RECEIPTS_PAGE}."),
        ));
    }
    let after = match p.after.as_deref() {
        None => None,
        Some(cursor) => {
            // `<ms>:<request id>`, as `next` writes it (request ids are UUIDs).
            let id_ok = |id: &str| id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
            let parsed = cursor.split_once(':').filter(|(_, id)| id_ok(id));
            Some(parsed.and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id))).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_value",
                    Some("after"),
                    "`after` takes the `next` of the previous page.",
                )
            })?)
        }
    };
    g.ledger.flush().await.map_err(ApiError::internal)?;
    let page = crate::store::batches::list(
        g.ledger.pool(),
        &caller.account,
        period.from.as_deref(),
        period.to.as_deref(),
        after,
        limit,
    )
    .await
    .map_err(ApiError::internal)?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|l| format!("{}:{}", l.created_at_ms, l.receipt)))
        .flatten();
    Ok(Json(json!({"object": "list", "account": caller.account.to_string(), "data": page, "next": next})))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchParams {
    source: String,
}

/// Every settlement batch of a credit source, in `seq` order, with its transaction
/// signature: what an auditor replays into the on-chain `usage_chain`.
async fn batches_of(
    State(g): State<Arc<Gateway>>,
    params: Result<axum::extract::Query<BatchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = params.map_err(|e| {
        ApiError::bad_request("invalid_value", Some("source"), format!("{e}: `source` is required."))
    })?;
    let list = crate::store::batches::of_source(g.ledger.pool(), &params.source)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"object": "list", "source": params.source, "data": list})))
}

/// Registers a low-balance webhook for the key's account; the signing secret is returned
/// this once.
async fn alert_add(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, caller) = g.caller(&headers)?;
    let new: crate::jobs::alerts::NewAlert = json_body(&body)?;
    let (alert, secret) = crate::jobs::alerts::add(g.ledger.pool(), caller.account, new).await?;
    Ok(Json(
        json!({"id": alert.id, "account": alert.account.to_string(), "url": alert.url, "below": alert.below, "secret": secret}),
    ))
}

async fn alert_list(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (_, caller) = g.caller(&headers)?;
    let list = crate::jobs::alerts::list(g.ledger.pool(), Some(&caller.account))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"object": "list", "data": list})))
}

async fn alert_remove(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, caller) = g.caller(&headers)?;
    if !crate::jobs::alerts::remove(g.ledger.pool(), &caller.account, &id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("alert_not_found", format!("This account has no alert {id:?}.")));
    }
    Ok(Json(json!({"deleted": id})))
}

async fn usage(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    params: Result<axum::extract::Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, caller) = g.caller(&headers)?;
    let params = params.map_err(|e| ApiError::bad_request("invalid_value", None, format!("{e}.")))?;
    let query = usage_query(params.0)?;
    let account = caller.account;
    let rows = g.ledger.usage(&account, &query).await.map_err(ApiError::internal)?;
    let sources: Vec<Value> = g
        .meter
        .sources(account)
        .into_iter()
        .map(|source| {
            let b = g.meter.balance(source);
            let kind = match source {
                Source::Vault(_) => "credit_vault",
                Source::Facility(_) => "facility",
            };
            json!({"source": source.to_string(), "kind": kind, "onchain": b.onchain, "unsettled": b.unsettled,
                   "held": b.held, "available": b.available(), "frozen": b.frozen})
        })
        .collect();
    Ok(Json(json!({"object": "list", "account": account.to_string(), "balance": sources, "data": rows})))
}

/// A JSON body, or a 400 in OpenAI's shape.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", None, format!("Invalid request body: {e}")))
}

async fn key_challenge(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: Value = json_body(&body)?;
    let owner = req["owner"].as_str().unwrap_or_default();
    Ok(Json(json!({"challenge": g.keys.challenge(g.ledger.pool(), owner).await?})))
}

async fn key_create(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    let (id, key, account) = g.keys.create(g.ledger.pool(), &signed).await?;
    Ok(Json(json!({"id": id, "key": key, "account": account.to_string()})))
}

async fn key_list(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    Ok(Json(json!({"object": "list", "data": g.keys.list(g.ledger.pool(), &signed).await?})))
}

async fn key_revoke(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    g.keys.revoke(g.ledger.pool(), &signed).await?;
    Ok(Json(json!({"revoked": signed.id})))
}

/// Anthropic's Messages API, served through the chat completion path (`http/messages.rs`).
async fn anthropic_messages(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    crate::http::messages::serve(headers, body, |h, b| proxy(State(g), h, b, Endpoint::Chat)).await
}

async fn proxy(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    // Time-ordered (UUIDv7, 74 random bits: still unguessable as a receipt id), so the
    // ledger's unique index grows at its right edge instead of at random pages.
    let request_id = uuid::Uuid::now_v7().to_string();
    let (key_hash, caller) = g.caller(&headers)?;
    let (mut forward, req) = parse(&body, endpoint)?;
    let max_tokens = req.max_tokens.unwrap_or(g.config.default_max_tokens);
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
        .filter_map(|&(p, price, _)| Some((p, price, pricing::worst(price, req.prompt_bound, max_tokens)?)))
        .collect();
    let route = routing::plan(candidates, &req.prefs, &g.health)?;
    let first = route.first().map_or(0, |(_, _, w)| *w);
    let mut hold = g.admit(&key_hash, &caller, first).await?;

    let mut failures: Vec<(&str, Failure)> = Vec::new();
    for (provider, price, worst) in &route {
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
        };
        let attempt = providers::call(&g.http, provider, &call).await;
        let upstream_time = started.elapsed();
        match &attempt {
            Attempt::Failed(_) => g.health.failed(&provider.name),
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
            Attempt::Streaming(stream) => {
                crate::http::sse::relay(g.ledger.clone(), served(), hold, stream, req.include_usage)
            }
            Attempt::ClientError { status, body } => {
                let mut res = (status, body).into_response();
                res.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
                res
            }
            Attempt::Failed(why) => {
                failures.push((&provider.name, why));
                continue;
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
