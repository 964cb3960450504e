//! OpenAI-compatible providers (OpenAI, vLLM, Together, Fireworks, GPU clouds): the body goes
//! upstream as sent, unknown fields included, with only the model id replaced when the
//! provider names the model differently. Azure OpenAI speaks the same protocol at its own
//! URLs (`{base_url}/deployments/{deployment}/chat/completions?api-version=...`) with an
//! `api-key` header.

use axum::body::Bytes;
use serde_json::Value;

use super::{api_key, url, with_key, Adapter, Call, Endpoint, StreamTranslator};
use crate::domain::catalog::Provider;

/// OpenAI's protocol, at the URLs of the host that serves it.
pub enum OpenAi {
    /// OpenAI and compatible hosts: `{base_url}/chat/completions`, a bearer token.
    Compatible,
    /// Azure OpenAI: `{base_url}/deployments/{deployment}/chat/completions?api-version=`,
    /// the key in `api-key`.
    Azure,
}

/// Azure's GA `api-version` when this adapter was written.
pub const AZURE_API_VERSION: &str = "2024-10-21";

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
        let req = match self {
            OpenAi::Compatible => {
                let req = http.post(url(p, call.endpoint.path()));
                match api_key(p) {
                    Some(key) => req.bearer_auth(key),
                    None => req,
                }
            }
            OpenAi::Azure => {
                let version = p.api_version.as_deref().unwrap_or(AZURE_API_VERSION);
                let path = format!("deployments/{}/{}", call.model, call.endpoint.path());
                with_key(http.post(url(p, &path)).query(&[("api-version", version)]), p, "api-key")
            }
        };
        // The body as sent, its model replaced by the provider's id when they differ.
        if call.body["model"].as_str() == Some(call.model) {
            return Ok(req.json(call.body));
        }
        let mut body = call.body.clone();
        body["model"] = Value::String(call.model.to_string());
        Ok(req.json(&body))
    }

    fn reply(&self, body: Value, _: &str) -> Result<Value, String> {
        Ok(body)
    }

    fn error(&self, body: Bytes) -> Bytes {
        body
    }

    fn stream(&self, _: &str) -> Box<dyn StreamTranslator> {
        Box::new(PassThrough)
    }
}

/// OpenAI's events are already what the caller expects; comments and keep-alives (events
/// without data) are dropped.
struct PassThrough;

impl StreamTranslator for PassThrough {
    fn event(&mut self, event: &[u8]) -> Vec<Vec<u8>> {
        if !event.split(|b| *b == b'\n').any(|line| line.starts_with(b"data:")) {
            return Vec::new();
        }
        vec![event.to_vec()]
    }
}
