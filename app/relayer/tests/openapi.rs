//! The OpenAPI document against the server: every request the document allows, the server
//! accepts as well formed. For each operation, property-based cases are generated from the
//! document's own schemas (request bodies, query and path parameters) and sent to a running
//! gateway; none may be refused as malformed (400, 413, 415, 422) or fail (5xx). Answers
//! about the request's meaning stay allowed: an unknown model (404), a bad signature (401),
//! too few credits (402); each answer's status must be one the document lists for the
//! operation, its JSON in the shape it gives. With the route test in `gateway.rs` (every
//! route served is documented and every documented route is served), the document cannot
//! drift from the server without a test failing.

use async_openai::config::Config as _;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value};

mod common;
use common::*;
use compux_relayer::config::{Model, Provider};

/// Ids that exist (receipts, alerts, keys: `seed`): an `id` is often one of them, so the
/// answers behind a 404 are generated and checked too.
static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The base58 address pattern: a regular expression cannot say "decodes to 32 bytes"
/// (the schema's description does), so its strings are real addresses.
const ADDRESS: &str = "^[1-9A-HJ-NP-Za-km-z]{32,44}$";

/// Values the schema at `schema` allows (`doc` resolves `$ref`s). `name` is the property's:
/// a `model` is mostly the one served, so cases get past routing to the checks behind it.
fn values(doc: &Value, schema: &Value, name: &str) -> BoxedStrategy<Value> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        return Union::new(options.iter().map(|o| values(doc, o, name))).boxed();
    }
    if let Some(choices) = schema["enum"].as_array() {
        return proptest::sample::select(choices.clone()).boxed();
    }
    if let Some(types) = schema["type"].as_array() {
        let each = types.iter().map(|t| {
            let mut one = schema.clone();
            one["type"] = t.clone();
            values(doc, &one, name)
        });
        return Union::new(each).boxed();
    }
    if let Some(known) = KNOWN.get().filter(|_| name == "id") {
        let known = proptest::sample::select(known.clone()).prop_map(Value::from);
        return prop_oneof![known, values(doc, schema, "")].boxed();
    }
    let int = |key: &str, default: i64| schema[key].as_i64().unwrap_or(default);
    match schema["type"].as_str() {
        Some("null") => Just(Value::Null).boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        Some("integer") => {
            (int("minimum", -1_000_000)..=int("maximum", 1_000_000)).prop_map(Value::from).boxed()
        }
        Some("number") => {
            let (lo, hi) =
                (schema["minimum"].as_f64().unwrap_or(-10.0), schema["maximum"].as_f64().unwrap_or(10.0));
            (lo..=hi).prop_map(Value::from).boxed()
        }
        Some("string") => strings(schema, name),
        Some("array") => {
            let items = match schema.get("items") {
                Some(items) => values(doc, items, ""),
                None => any_json(),
            };
            let min = int("minItems", 0) as usize;
            proptest::collection::vec(items, min..=min + 3).prop_map(Value::from).boxed()
        }
        Some("object") | None => objects(doc, schema),
        Some(other) => panic!("the document uses type {other}, which this test does not generate"),
    }
}

fn strings(schema: &Value, name: &str) -> BoxedStrategy<Value> {
    match (schema["pattern"].as_str(), schema["format"].as_str()) {
        (Some(ADDRESS), _) => any::<[u8; 32]>()
            .prop_map(|b| Value::from(solana_sdk::pubkey::Pubkey::new_from_array(b).to_string()))
            .boxed(),
        (Some(pattern), _) => {
            let unanchored = pattern.trim_start_matches('^').trim_end_matches('$');
            proptest::string::string_regex(unanchored)
                .expect("a pattern proptest can generate")
                .prop_map(Value::from)
                .boxed()
        }
        (None, Some("date")) => (1970u32..2200, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| Value::from(format!("{y:04}-{m:02}-{d:02}")))
            .boxed(),
        (None, Some("uri")) => {
            "[a-z]{1,12}".prop_map(|p| Value::from(format!("https://example.com/{p}"))).boxed()
        }
        _ if name == "model" => prop_oneof![4 => Just(Value::from(MODEL)), 1 => text(schema)].boxed(),
        _ => text(schema),
    }
}

/// Any text of the schema's length bounds.
fn text(schema: &Value) -> BoxedStrategy<Value> {
    let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
    proptest::collection::vec(any::<char>(), min..=min + 12)
        .prop_map(|c| Value::from(c.into_iter().collect::<String>()))
        .boxed()
}

/// Any small JSON value (where the document says nothing of an item).
fn any_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from)
    ]
    .boxed()
}

/// Objects with every required property and a random choice of the optional ones.
fn objects(doc: &Value, schema: &Value) -> BoxedStrategy<Value> {
    let required: Vec<&str> =
        schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            let is_required = required.contains(&name.as_str());
            let key = name.clone();
            let field = values(doc, s, name).prop_map(move |v| Some((key.clone(), v)));
            if is_required {
                field.boxed()
            } else {
                prop_oneof![Just(None), field].boxed()
            }
        })
        .collect();
    fields.prop_map(|pairs| Value::Object(pairs.into_iter().flatten().collect::<Map<_, _>>())).boxed()
}

/// One generated request: its path (parameters filled in), query and body.
#[derive(Debug, Clone)]
struct Case {
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

/// Requests the document allows for the operation `op` at `path`.
fn cases(doc: &Value, path: &str, op: &Value) -> BoxedStrategy<Case> {
    let mut params: Vec<BoxedStrategy<Option<(String, String, String)>>> = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let (name, place) = (p["name"].as_str().unwrap().to_string(), p["in"].as_str().unwrap().to_string());
        let required = p["required"].as_bool().unwrap_or(false) || place == "path";
        let param = values(doc, &p["schema"], &name).prop_map(move |v| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some((place.clone(), name.clone(), text))
        });
        params.push(if required { param.boxed() } else { prop_oneof![Just(None), param].boxed() });
    }
    let body = match op.pointer("/requestBody/content/application~1json/schema") {
        Some(schema) => values(doc, schema, "").prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    let path = path.to_string();
    (params, body)
        .prop_map(move |(params, body)| {
            let mut case = Case { path: path.clone(), query: Vec::new(), body };
            for (place, name, value) in params.into_iter().flatten() {
                if place == "path" {
                    let encoded: String = reqwest::Url::parse("http://x/")
                        .map(|mut u| {
                            u.path_segments_mut().unwrap().push(&value);
                            u.path().trim_start_matches('/').to_string()
                        })
                        .unwrap();
                    case.path = case.path.replace(&format!("{{{name}}}"), &encoded);
                } else {
                    case.query.push((name, value));
                }
            }
            case
        })
        .boxed()
}

/// `v`, or what its `$ref` points to.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            resolve(doc, doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}")))
        }
        None => v,
    }
}

/// Whether `v` has the shape `schema` gives: its types and enumerations, required
/// properties and no undocumented ones, the properties' and items' own shapes, one of
/// `oneOf` (what the document uses to describe its answers; enough to catch an answer it
/// does not describe).
fn conforms(doc: &Value, schema: &Value, v: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        return match options.iter().any(|o| conforms(doc, o, v).is_ok()) {
            true => Ok(()),
            false => Err(format!("{v} is none of {}", schema["oneOf"])),
        };
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(v) {
            return Err(format!("{v} is not one of {}", schema["enum"]));
        }
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    };
    let ok = match &schema["type"] {
        Value::String(t) => type_ok(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(type_ok),
        _ => true,
    };
    if !ok {
        return Err(format!("{v} is not {}", schema["type"]));
    }
    for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if v.get(name).is_none() {
            return Err(format!("`{name}` is missing from {v}"));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, property) in properties.into_iter().flatten() {
        if let Some(field) = v.get(name) {
            conforms(doc, property, field).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    // The other way: an object the document describes carries nothing it leaves out,
    // unless it says the object is open (`additionalProperties`, e.g. a provider's reply
    // passed through), so a field the server adds cannot go undocumented.
    if let (Some(properties), Some(object)) = (properties, v.as_object()) {
        if schema.get("additionalProperties").is_none() {
            if let Some(extra) = object.keys().find(|k| !properties.contains_key(*k)) {
                return Err(format!("`{extra}` is sent but not documented in {v}"));
            }
        }
    }
    if let (Some(items), Some(elements)) = (schema.get("items"), v.as_array()) {
        for (i, element) in elements.iter().enumerate() {
            conforms(doc, items, element).map_err(|e| format!("[{i}]: {e}"))?;
        }
    }
    Ok(())
}

/// Things for the generated requests to find: a receipt in a settlement batch, one not yet
/// in one, an alert, and keys of `wallet` to revoke. Returns their ids.
async fn seed(
    base: &str,
    g: &compux_relayer::Gateway,
    wallet: &solana_sdk::signature::Keypair,
) -> Vec<String> {
    let mut known = Vec::new();
    let http = reqwest::Client::new();
    for _ in 0..8 {
        let mut body = serde_json::json!({"signature": ""});
        sign(&http, base, "/v1/keys", wallet, &mut body).await;
        let created: Value =
            http.post(format!("{base}/v1/keys")).json(&body).send().await.unwrap().json().await.unwrap();
        known.push(created["id"].as_str().unwrap().to_string());
    }
    for batched in [true, false] {
        let body = serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
        let res = post_chat(&format!("{base}/v1"), &body).await;
        known.push(res.headers()["x-compux-receipt"].to_str().unwrap().to_string());
        if batched {
            use compux_relayer::store::batches::{cut, Cut};
            g.ledger.flush().await.unwrap();
            let c = Cut {
                source: VAULT,
                account: ACCOUNT,
                seq: 1,
                min_window_end: 0,
                max_records: 10,
                prev_chain: None,
                until_ms: None,
            };
            cut(g.ledger.pool(), c).await.unwrap().expect("a batch of the first record");
        }
    }
    let alert = http
        .post(format!("{base}/v1/alerts"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": "https://example.com/hook", "below": 1000}))
        .send()
        .await
        .unwrap();
    known.push(alert.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    known
}

/// Fills `body`'s owner, challenge and signature with a fresh challenge for the request to
/// `path` with `body`'s parameters, signed by `wallet`.
async fn sign(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    wallet: &solana_sdk::signature::Keypair,
    body: &mut Value,
) {
    use solana_sdk::signer::Signer;
    let owner = wallet.pubkey().to_string();
    let action = match path {
        "/v1/keys" => "create",
        "/v1/keys/list" => "list",
        _ => "revoke",
    };
    let mut ask = serde_json::json!({"owner": owner, "action": action});
    for param in ["limits", "id"] {
        if let Some(v) = body.get(param) {
            ask[param] = v.clone();
        }
    }
    let res = http.post(format!("{base}/v1/keys/challenge")).json(&ask).send();
    let issued: Value = res.await.unwrap().json().await.unwrap();
    // An id no key can have gets no challenge: the request goes unsigned (401).
    let Some(challenge) = issued["challenge"].as_str().map(String::from) else { return };
    body["signature"] = Value::from(wallet.sign_message(challenge.as_bytes()).to_string());
    body["owner"] = Value::from(owner);
    body["challenge"] = Value::from(challenge);
}

/// Statuses a well-formed request may get: about its meaning, never its form.
fn well_formed(status: u16) -> bool {
    !matches!(status, 400 | 405 | 411 | 413 | 415 | 422) && status < 500
}

#[test]
fn every_request_the_document_allows_the_server_accepts_and_answers_as_documented() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let wallet = solana_sdk::signature::Keypair::new();
    let (base, doc, _keep) = runtime.block_on(async {
        let up = provider("up", None).await;
        let mut config = config(vec![Provider::new(
            "up",
            up.base_url(),
            vec![Model::priced(MODEL, 1_000_000, 1_000_000)],
        )]);
        // Wallet-issued keys need a market to derive their credit accounts in.
        config.market = Some(solana_sdk::pubkey::Pubkey::new_unique());
        // Hundreds of generated alerts are well formed: the per-account cap is a state's
        // refusal, tested in gateway.rs, not the document's.
        config.alerts.max_per_account = usize::MAX;
        config.keys_per_wallet = usize::MAX;
        let (client, g, dir) = start(config, u64::MAX / 4).await;
        let base = client.config().api_base().trim_end_matches("/v1").to_string();
        let doc: Value = reqwest::get(format!("{base}/openapi.json")).await.unwrap().json().await.unwrap();
        KNOWN.set(seed(&base, &g, &wallet).await).unwrap();
        (base.clone(), doc, (up, g, dir))
    });
    let http = reqwest::Client::new();
    let cases_per_operation = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48);
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut runner =
                TestRunner::new(RunnerConfig { cases: cases_per_operation, ..RunnerConfig::default() });
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let result = runner.run(&cases(&doc, path, op), |case| {
                let mut req = http
                    .request(method.clone(), format!("{base}{}", case.path))
                    .query(&case.query)
                    .bearer_auth(KEY)
                    .header("x-api-key", KEY);
                let mut body = case.body.clone();
                if let Some(b) = body.as_mut().filter(|_| case.path != "/v1/keys/challenge") {
                    if b.get("signature").is_some() {
                        // A wallet-signed request: signed for real, so the checks behind the
                        // signature (a key's limits, the id revoked) are reached too.
                        runtime.block_on(sign(&http, &base, &case.path, &wallet, b));
                    }
                }
                if let Some(body) = &body {
                    req = req.json(body);
                }
                let (status, content_type, answer) = runtime.block_on(async {
                    let res = req.send().await.unwrap();
                    let status = res.status().as_u16();
                    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok());
                    let content_type =
                        content_type.unwrap_or_default().split(';').next().unwrap().to_string();
                    (status, content_type, res.text().await.unwrap_or_default())
                });
                let request = format!(
                    "{method} {} (query {:?}) with {}",
                    case.path,
                    case.query,
                    body.as_ref().map_or("no body".into(), |b| b.to_string())
                );
                prop_assert!(well_formed(status), "{request}: {status} {answer}");
                // And the answer is one the document lists, in the shape it gives.
                let documented = op["responses"].get(status.to_string()).or(op["responses"].get("default"));
                prop_assert!(documented.is_some(), "{request}: {status} is not documented: {answer}");
                let documented = resolve(&doc, documented.unwrap());
                let content = documented["content"].as_object().filter(|c| !c.is_empty());
                if let Some(content) = content {
                    prop_assert!(
                        content.contains_key(&content_type),
                        "{request}: {status} answers {content_type:?}, the document lists {:?}",
                        content.keys().collect::<Vec<_>>()
                    );
                }
                if let (Some(schema), "application/json") =
                    (documented.pointer("/content/application~1json/schema"), content_type.as_str())
                {
                    let body: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
                    if let Err(why) = conforms(&doc, schema, &body) {
                        prop_assert!(
                            false,
                            "{request}: {status} {answer} is not the documented shape: {why}"
                        );
                    }
                }
                Ok::<(), TestCaseError>(())
            });
            if let Err(e) = result {
                panic!("the document allows a request the server refuses: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations checked");
}

/// Postgres' text cannot hold a NUL character (SQLite's can): one in an id, a cursor or a
/// challenge must get the same answer on both backends, never a database error (the
/// property test above found `DELETE /v1/alerts/%00` answering 503 on Postgres).
#[tokio::test]
async fn a_nul_character_in_any_id_gets_an_answer_not_a_database_error() {
    let up = provider("up", None).await;
    let (client, _g, _dir) = gateway(&[(&up, 1_000_000, 1_000_000)], 1_000_000).await;
    let base = client.config().api_base().trim_end_matches("/v1").to_string();
    let http = reqwest::Client::new();
    let signed = serde_json::json!({"owner": solana_sdk::pubkey::Pubkey::new_unique().to_string(),
                                    "challenge": "a\u{0}b", "signature": "1", "id": "key_\u{0}"});
    let requests = [
        http.delete(format!("{base}/v1/alerts/%00")),
        http.get(format!("{base}/v1/receipts/%00")),
        http.get(format!("{base}/v1/receipts?after=1:%00")),
        http.get(format!("{base}/v1/settlement/batches?source=%00")),
        http.post(format!("{base}/v1/keys/revoke")).json(&signed),
        http.post(format!("{base}/v1/keys/list")).json(&signed),
    ];
    for req in requests {
        let res = req.bearer_auth(KEY).send().await.unwrap();
        let (url, status) = (res.url().to_string(), res.status().as_u16());
        let body = res.text().await.unwrap();
        assert!(status < 500, "{url}: {status} {body}");
    }
}
