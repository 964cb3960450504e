//! `compux keys`: API keys for the relayer, issued to the wallet that signs a challenge.

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use solana_sdk::signature::Signer;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum Keys {
    /// Get a new API key for the wallet's credit account (shown once; store it).
    Create {
        /// The relayer's OpenAI-compatible base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
        relayer: String,
    },
    /// List the wallet's keys (ids, accounts, revoked or not; never the keys).
    List {
        #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
        relayer: String,
    },
    /// Revoke one of the wallet's keys; it stops working at once.
    Revoke {
        /// The key's id (see `compux keys list`).
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
        relayer: String,
    },
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let res = http
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the relayer at {url}"))?;
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = v["error"]["message"].as_str().unwrap_or("no error message");
        return Err(anyhow!("the relayer refused ({status}): {msg}"));
    }
    Ok(v)
}

/// A challenge from the relayer, signed by the wallet.
async fn signed(ctx: &Ctx, http: &reqwest::Client, relayer: &str) -> Result<Value> {
    let wallet = ctx.wallet()?;
    let owner = wallet.pubkey().to_string();
    let c = post(http, &format!("{relayer}/keys/challenge"), json!({"owner": owner})).await?;
    let challenge = c["challenge"].as_str().ok_or_else(|| anyhow!("the relayer sent no challenge"))?;
    let signature = wallet.sign_message(challenge.as_bytes()).to_string();
    Ok(json!({"owner": owner, "challenge": challenge, "signature": signature}))
}

pub async fn run(ctx: &Ctx, k: Keys) -> Result<()> {
    let http = reqwest::Client::new();
    match k {
        Keys::Create { relayer } => {
            let relayer = relayer.trim_end_matches('/');
            let issued = post(&http, &format!("{relayer}/keys"), signed(ctx, &http, relayer).await?).await?;
            ctx.emit(issued.clone(), || {
                format!(
                    "API key (shown once; store it): {}\n  id {}  spends from credit account {}",
                    issued["key"].as_str().unwrap_or_default(),
                    issued["id"].as_str().unwrap_or_default(),
                    issued["account"].as_str().unwrap_or_default()
                )
            });
        }
        Keys::List { relayer } => {
            let relayer = relayer.trim_end_matches('/');
            let list =
                post(&http, &format!("{relayer}/keys/list"), signed(ctx, &http, relayer).await?).await?;
            ctx.emit(list.clone(), || {
                let rows: Vec<String> = list["data"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|k| {
                                format!(
                                    "  {}  {}  {}",
                                    k["id"].as_str().unwrap_or_default(),
                                    k["account"].as_str().unwrap_or_default(),
                                    if k["revoked"] == true { "revoked" } else { "active" }
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if rows.is_empty() {
                    "no keys".into()
                } else {
                    rows.join("\n")
                }
            });
        }
        Keys::Revoke { id, relayer } => {
            let relayer = relayer.trim_end_matches('/');
            let mut body = signed(ctx, &http, relayer).await?;
            body["id"] = json!(id);
            let done = post(&http, &format!("{relayer}/keys/revoke"), body).await?;
            ctx.emit(done, || format!("key {id} revoked"));
        }
    }
    Ok(())
}
