//! Calls to the relayer's HTTP API shared by `keys`, `usage`, `alerts` and `audit prove`:
//! JSON in and out, and the relayer's OpenAI-shaped error turned into a message that says
//! what went wrong.

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// One request to the relayer at `base` (its `/v1` URL) + `path`.
pub struct Call<'a> {
    pub method: reqwest::Method,
    pub base: &'a str,
    pub path: &'a str,
    /// An API key, sent as `Authorization: Bearer`.
    pub key: Option<&'a str>,
    pub query: &'a [(&'a str, String)],
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    pub fn get(base: &'a str, path: &'a str) -> Self {
        Call { method: reqwest::Method::GET, base, path, key: None, query: &[], body: None }
    }

    pub fn send_json(mut self, method: reqwest::Method, body: Value) -> Self {
        self.method = method;
        self.body = Some(body);
        self
    }

    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    pub fn query(mut self, query: &'a [(&'a str, String)]) -> Self {
        self.query = query;
        self
    }

    /// Sends it; the JSON reply, or an error with the relayer's message.
    pub async fn run(self) -> Result<Value> {
        let url = format!("{}/{}", self.base.trim_end_matches('/'), self.path);
        let mut req = reqwest::Client::new().request(self.method, &url).query(self.query);
        if let Some(key) = self.key {
            req = req.bearer_auth(key.trim());
        }
        if let Some(body) = self.body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach the relayer at {url}: is it running (`compux up`)?"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no error message");
            return Err(anyhow!("the relayer refused ({status}): {msg}"));
        }
        Ok(body)
    }
}
