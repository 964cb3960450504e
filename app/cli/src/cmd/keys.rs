//! `compux keys`: API keys for the relayer, issued to the wallet that signs a challenge.

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use solana_sdk::signature::Signer;

use crate::ctx::Ctx;
use crate::relayer_api::Call;

#[derive(Subcommand)]
pub enum Keys {
    /// Get a new API key for the wallet's credit account (shown once; store it).
    Create {
        /// The relayer's OpenAI-compatible base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
        relayer: String,
        /// Most credits the key may spend per UTC day (e.g. 25 or 0.5); beyond it: 429.
        #[arg(long)]
        credits_per_day: Option<String>,
        /// Most requests the key may start per minute (bursts up to this many); beyond: 429.
        #[arg(long)]
        requests_per_minute: Option<u32>,
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

async fn post(relayer: &str, path: &str, body: Value) -> Result<Value> {
    Call::get(relayer, path).send_json(reqwest::Method::POST, body).run().await
}

/// The body of a signed request: a challenge the relayer issued for `action` with `params`
/// (exactly what the request sends: the signature answers only that request), signed by
/// the wallet, and the params.
async fn signed(ctx: &Ctx, relayer: &str, action: &str, params: Value) -> Result<Value> {
    let wallet = ctx.wallet()?;
    let owner = wallet.pubkey().to_string();
    let mut ask = params.clone();
    ask["owner"] = json!(owner);
    ask["action"] = json!(action);
    let c = post(relayer, "keys/challenge", ask).await?;
    let challenge = c["challenge"].as_str().ok_or_else(|| anyhow!("the relayer sent no challenge"))?;
    let mut body = params;
    body["owner"] = json!(owner);
    body["signature"] = json!(wallet.sign_message(challenge.as_bytes()).to_string());
    body["challenge"] = json!(challenge);
    Ok(body)
}

pub async fn run(ctx: &Ctx, k: Keys) -> Result<()> {
    match k {
        Keys::Create { relayer, credits_per_day, requests_per_minute } => {
            let relayer = relayer.trim_end_matches('/');
            let per_day = credits_per_day
                .map(|c| compux_sdk::units::parse(&c, compux_sdk::constants::CREDIT_DECIMALS))
                .transpose()
                .context("--credits-per-day")?;
            let limits = json!({"credits_per_day": per_day, "requests_per_minute": requests_per_minute});
            let body = signed(ctx, relayer, "create", json!({"limits": limits})).await?;
            let issued = post(relayer, "keys", body).await?;
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
            let list = post(relayer, "keys/list", signed(ctx, relayer, "list", json!({})).await?).await?;
            ctx.emit(list.clone(), || {
                let rows: Vec<String> = list["data"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|k| {
                                let mut limits = Vec::new();
                                if let Some(c) = k["credits_per_day"].as_u64() {
                                    let c =
                                        compux_sdk::units::format(c, compux_sdk::constants::CREDIT_DECIMALS);
                                    limits.push(format!("{c} credits/day"));
                                }
                                if let Some(r) = k["requests_per_minute"].as_u64() {
                                    limits.push(format!("{r} requests/min"));
                                }
                                format!(
                                    "  {}  {}  {}  {}",
                                    k["id"].as_str().unwrap_or_default(),
                                    k["account"].as_str().unwrap_or_default(),
                                    if k["revoked"] == true { "revoked" } else { "active" },
                                    if limits.is_empty() { "no limits".into() } else { limits.join(", ") }
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
            let body = signed(ctx, relayer, "revoke", json!({"id": id})).await?;
            let done = post(relayer, "keys/revoke", body).await?;
            ctx.emit(done, || format!("key {id} revoked"));
        }
    }
    Ok(())
}
