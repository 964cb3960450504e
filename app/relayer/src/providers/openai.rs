//! OpenAI-compatible providers (OpenAI, vLLM, Together, Fireworks, GPU clouds): the body goes
//! upstream as sent, unknown fields included, with only the model id replaced when the
//! provider names the model differently. Azure OpenAI speaks the same protocol at its own
//! URLs (`{base_url}/deployments/{deployment}/chat/completions?api-version=...`) with an
//! `api-key` header.

use axum::body::Bytes;
use serde_json::Value;

use super::{api_key, sse_data, url, Adapter, Call, Endpoint, StreamTranslator};
use crate::domain::catalog::Provider;

pub struct OpenAi;

impl Adapter for OpenAi {
    fn serves(&self, _: Endpoint) -> bool {
        true
    }

    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String> {
        let req = with_model(http.post(url(p, call.endpoint.path())), call);
        Ok(match api_key(p) {
            Some(key) => req.bearer_auth(key),
            None => req,
        })
    }

    fn reply(&self, body: Value) -> Result<Value, String> {
        Ok(body)
    }

    fn error(&self, body: Bytes) -> Bytes {
        body
    }

    fn stream(&self) -> Box<dyn StreamTranslator> {
        Box::new(PassThrough)
    }
}

/// `req` with the caller's body, its model replaced by the provider's id when they differ.
fn with_model(req: reqwest::RequestBuilder, call: &Call) -> reqwest::RequestBuilder {
    if call.body["model"].as_str() == Some(call.model) {
        return req.json(call.body);
    }
    let mut body = call.body.clone();
    body["model"] = Value::String(call.model.to_string());
    req.json(&body)
}

/// Azure's GA `api-version` when this adapter was written.
pub const AZURE_API_VERSION: &str = "2024-10-21";

pub struct Azure;

impl Adapter for Azure {
    fn serves(&self, _: Endpoint) -> bool {
        true
    }

    fn request(
        &self,
        http: &reqwest::Client,
        p: &Provider,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, String> {
        let version = p.api_version.as_deref().unwrap_or(AZURE_API_VERSION);
        let path = format!("deployments/{}/{}", call.model, call.endpoint.path());
        let req = with_model(http.post(url(p, &path)).query(&[("api-version", version)]), call);
        Ok(match api_key(p) {
            Some(key) => req.header("api-key", key),
            None => req,
        })
    }

    fn reply(&self, body: Value) -> Result<Value, String> {
        OpenAi.reply(body)
    }

    fn error(&self, body: Bytes) -> Bytes {
        OpenAi.error(body)
    }

    fn stream(&self) -> Box<dyn StreamTranslator> {
        OpenAi.stream()
    }
}

/// OpenAI's events are already what the caller expects; comments and keep-alives (events
/// without data) are dropped.
struct PassThrough;

impl StreamTranslator for PassThrough {
    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>> {
        if sse_data(event).is_empty() {
            return Vec::new();
        }
        vec![event.to_vec()]
    }
}
