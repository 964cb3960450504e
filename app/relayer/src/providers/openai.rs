//! OpenAI-compatible providers (OpenAI, vLLM, Together, Fireworks, GPU clouds): the body goes
//! upstream as sent, unknown fields included, with only the model id replaced when the
//! provider names the model differently.

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
        let req = http.post(url(p, call.endpoint.path()));
        let mut req = if call.body["model"].as_str() == Some(call.model) {
            req.json(call.body)
        } else {
            let mut body = call.body.clone();
            body["model"] = Value::String(call.model.to_string());
            req.json(&body)
        };
        if let Some(key) = api_key(p) {
            req = req.bearer_auth(key);
        }
        Ok(req)
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
