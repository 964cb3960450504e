//! `compux alerts`: low-balance webhooks for an API key's credit account (docs/alerts.md).

use anyhow::{Context, Result};
use clap::Subcommand;
use compux_sdk::constants::CREDIT_DECIMALS;
use compux_sdk::units;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::relayer_api::Call;

#[derive(Subcommand)]
pub enum Alerts {
    /// POST a signed `balance.low` event to a URL when the available credits fall below a
    /// threshold (the signing secret is shown once).
    Add {
        #[arg(long)]
        url: String,
        /// Credits, e.g. 25 or 0.5.
        #[arg(long)]
        below: String,
        #[command(flatten)]
        api: Api,
    },
    /// The account's webhooks.
    List {
        #[command(flatten)]
        api: Api,
    },
    /// Remove a webhook.
    Remove {
        id: String,
        #[command(flatten)]
        api: Api,
    },
}

#[derive(clap::Args)]
pub struct Api {
    /// The relayer's OpenAI-compatible base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    relayer: String,
    /// An API key of the credit account.
    #[arg(long, env = "COMPUX_API_KEY", hide_env_values = true)]
    api_key: String,
}

async fn call(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
    let call = Call::get(&api.relayer, path).key(&api.api_key);
    match body {
        Some(b) => call.send_json(method, b),
        None => Call { method, ..call },
    }
    .run()
    .await
}

pub async fn run(ctx: &Ctx, a: Alerts) -> Result<()> {
    match a {
        Alerts::Add { url, below, api } => {
            let below = units::parse(&below, CREDIT_DECIMALS).context("--below")?;
            let v = call(&api, reqwest::Method::POST, "alerts", Some(json!({"url": url, "below": below})))
                .await?;
            ctx.emit(v.clone(), || {
                format!(
                    "{}: POST {} when available < {} credits\nsigning secret (shown once; store it): {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["url"].as_str().unwrap_or_default(),
                    units::format(below, CREDIT_DECIMALS),
                    v["secret"].as_str().unwrap_or_default()
                )
            });
        }
        Alerts::List { api } => {
            let v = call(&api, reqwest::Method::GET, "alerts", None).await?;
            ctx.emit(v.clone(), || {
                let rows: Vec<String> = v["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        format!(
                            "{}  below {} credits  {}",
                            a["id"].as_str().unwrap_or_default(),
                            units::format(a["below"].as_u64().unwrap_or(0), CREDIT_DECIMALS),
                            a["url"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                if rows.is_empty() {
                    "no alerts".into()
                } else {
                    rows.join("\n")
                }
            });
        }
        Alerts::Remove { id, api } => {
            let v = call(&api, reqwest::Method::DELETE, &format!("alerts/{id}"), None).await?;
            ctx.emit(v, || format!("alert {id} removed"));
        }
    }
    Ok(())
}
