//! A caller's own account, by API key: usage and balances, receipts, settlement batches,
//! low-balance alerts; and API keys, by wallet signature.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::access::keys::{Action, Limits, Signed};
use crate::domain::ids::Source;
use crate::error::ApiError;
use crate::http::gateway::Gateway;
use crate::store::ledger::{Dim, UsageQuery};

/// `group_by` (comma-separated: day, key, model, provider; all four by default, `none` for
/// one total), `from` and `to` (UTC days, YYYY-MM-DD, inclusive).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageParams {
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
pub(super) async fn receipt(
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
pub(super) struct ReceiptParams {
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
pub(super) async fn receipts(
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
pub(super) struct BatchParams {
    source: String,
}

/// Every settlement batch of a credit source, in `seq` order, with its transaction
/// signature: what an auditor replays into the on-chain `usage_chain`.
pub(super) async fn batches_of(
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

/// Every credit source the relayer charged: what it charged, what of it is not batched yet,
/// and what its batches known to be on chain burned (`compux audit --relayer` checks it
/// against the chain). Public, like the batches: burns are public on chain anyway.
pub(super) async fn settlement_accounts(State(g): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    let charged = g.ledger.charged_by_source().await.map_err(ApiError::internal)?;
    let settled: std::collections::HashMap<Source, (u64, u64)> =
        crate::store::batches::settled_by_source(g.ledger.pool())
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(source, amount, seq)| (source, (amount, seq)))
            .collect();
    let data: Vec<SourceSettlement> = charged
        .iter()
        .map(|charges| {
            let (settled, settled_seq) = settled.get(&charges.source).copied().unwrap_or_default();
            SourceSettlement { charges, settled, settled_seq }
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// One row of `GET /v1/settlement/accounts`: the ledger's charges of a source and what its
/// landed batches burned.
#[derive(serde::Serialize)]
struct SourceSettlement<'a> {
    #[serde(flatten)]
    charges: &'a crate::store::ledger::SourceCharges,
    settled: u64,
    settled_seq: u64,
}

/// Registers a low-balance webhook for the key's account; the signing secret is returned
/// this once.
pub(super) async fn alert_add(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = g.manager(&headers)?;
    let new: crate::jobs::alerts::NewAlert = json_body(&body)?;
    let (alert, secret) =
        crate::jobs::alerts::add(g.ledger.pool(), caller.account, new, &g.config.alerts).await?;
    Ok(Json(
        json!({"id": alert.id, "account": alert.account.to_string(), "url": alert.url, "below": alert.below, "secret": secret}),
    ))
}

pub(super) async fn alert_list(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = g.manager(&headers)?;
    let list = crate::jobs::alerts::list(g.ledger.pool(), Some(&caller.account))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"object": "list", "data": list})))
}

pub(super) async fn alert_remove(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = g.manager(&headers)?;
    if !crate::jobs::alerts::remove(g.ledger.pool(), &caller.account, &id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("alert_not_found", format!("This account has no alert {id:?}.")));
    }
    Ok(Json(json!({"deleted": id})))
}

pub(super) async fn usage(
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
            // A batch of this source that cannot land: its credits are charged, not burned.
            let stuck = g.meter.settlement_trouble(source).filter(|t| t.stuck()).map(
                |t| json!({"seq": t.seq, "attempts": t.attempts, "since_ms": t.since_ms, "error": t.error}),
            );
            json!({"source": source.to_string(), "kind": kind, "onchain": b.onchain, "unsettled": b.unsettled,
                   "held": b.held, "available": b.available(), "frozen": b.frozen, "settlement_stuck": stuck})
        })
        .collect();
    Ok(Json(json!({"object": "list", "account": account.to_string(), "balance": sources, "data": rows})))
}

/// A JSON body, or a 400 in OpenAI's shape.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", None, format!("Invalid request body: {e}")))
}

/// `POST /v1/keys/challenge`: the wallet, the action the challenge is for, and that
/// action's parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeRequest {
    owner: String, // a wallet, parsed below
    action: String,
    #[serde(default)]
    limits: Limits,
    id: Option<String>,
}

pub(super) async fn key_challenge(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: ChallengeRequest = json_body(&body)?;
    let owner = req.owner.parse().map_err(|_| {
        ApiError::bad_request("invalid_value", Some("owner"), "`owner` must be a base58 wallet address.")
    })?;
    let action = Action::parse(&req.action, req.limits, req.id)?;
    // The host the caller addressed, as a wallet shows the site asking; anything else
    // than a plain host name is not echoed into a message someone signs.
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let plain =
        |h: &&str| h.len() <= 255 && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let domain = g.config.key_domain.as_deref().or(host.filter(plain)).unwrap_or("compux relayer");
    Ok(Json(json!({"challenge": g.keys.challenge(g.ledger.pool(), owner, &action, domain).await?})))
}

pub(super) async fn key_create(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    let exists = async |account| match g.config.require_credit_account {
        true => crate::jobs::balances::credit_account_exists(&g.config.rpc_url, account).await,
        false => Ok(true),
    };
    let (id, key, account) = g.keys.create(g.ledger.pool(), &signed, exists).await?;
    Ok(Json(json!({"id": id, "key": key, "account": account.to_string()})))
}

pub(super) async fn key_list(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    Ok(Json(json!({"object": "list", "data": g.keys.list(g.ledger.pool(), &signed).await?})))
}

pub(super) async fn key_revoke(State(g): State<Arc<Gateway>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let signed: Signed = json_body(&body)?;
    g.keys.revoke(g.ledger.pool(), &signed).await?;
    Ok(Json(json!({"revoked": signed.id})))
}
