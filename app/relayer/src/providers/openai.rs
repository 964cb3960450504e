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
        // The bound the relayer holds, in the field this host honours, when the caller did not
        // set it there: without it a host may write until the model's context ends (a host
        // that knows only `max_tokens` ignores `max_completion_tokens`).
        let field = match call.endpoint {
            Endpoint::Chat => p.max_tokens_field.as_deref().unwrap_or("max_tokens"),
            Endpoint::Completions => "max_tokens",
            Endpoint::Embeddings => "",
        };
        let bound = (!field.is_empty() && call.body.get(field).is_none_or(Value::is_null)).then_some(field);
        // The body as sent, its model replaced by the provider's id when they differ.
        if call.body["model"].as_str() == Some(call.model) && bound.is_none() {
            return Ok(req.json(call.body));
        }
        let mut body = call.body.clone();
        body["model"] = Value::String(call.model.to_string());
        if let Some(field) = bound {
            body[field] = Value::from(call.max_tokens);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The JSON body `OpenAi::Compatible` sends for `body` to a provider whose bound field
    /// is `field`, the hold's bound being 64.
    fn sent(body: Value, field: Option<&str>) -> Value {
        let mut p = Provider::new("p", "http://127.0.0.1:9/v1", vec![]);
        p.max_tokens_field = field.map(str::to_string);
        let call = Call::chat(&body, "m", 64);
        let req = OpenAi::Compatible.request(&reqwest::Client::new(), &p, &call).unwrap().build().unwrap();
        serde_json::from_slice(req.body().unwrap().as_bytes().unwrap()).unwrap()
    }

    /// A host that honours only `max_tokens` ignores `max_completion_tokens`: the bound goes
    /// in the field the provider is configured to honour whenever the caller left it out.
    #[test]
    fn the_bound_is_sent_in_the_field_the_host_honours() {
        let m = json!([{"role": "user", "content": "Hi"}]);
        let b = sent(json!({"model": "m", "messages": m}), None);
        assert_eq!(b["max_tokens"], 64);
        let b = sent(json!({"model": "m", "messages": m, "max_completion_tokens": 64}), None);
        assert_eq!((b["max_tokens"].as_u64(), b["max_completion_tokens"].as_u64()), (Some(64), Some(64)));
        let b = sent(json!({"model": "m", "messages": m}), Some("max_completion_tokens"));
        assert_eq!((b.get("max_tokens"), b["max_completion_tokens"].as_u64()), (None, Some(64)));
        let b = sent(json!({"model": "m", "messages": m, "max_tokens": 10}), None);
        assert_eq!(b["max_tokens"], 10, "the caller's own bound, within the hold, is kept");
    }
}
