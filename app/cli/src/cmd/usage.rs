//! `compux usage`: what an API key's credit account spent through the relayer, grouped by
//! day, key, model and provider, and where its credits stand (each source's on-chain,
//! unsettled, held and available credits).

use anyhow::Result;
use clap::Args;
use compux_sdk::constants::CREDIT_DECIMALS;
use compux_sdk::units;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::relayer_api::Call;

#[derive(Args)]
pub struct UsageArgs {
    /// The relayer's OpenAI-compatible base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    relayer: String,
    /// The API key whose credit account to report.
    #[arg(long, env = "COMPUX_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Group by these, comma-separated: day, key, model, provider; or `none` for one total.
    #[arg(long, default_value = "day,key,model,provider")]
    by: String,
    /// First UTC day to include, YYYY-MM-DD.
    #[arg(long)]
    from: Option<String>,
    /// Last UTC day to include, YYYY-MM-DD.
    #[arg(long)]
    to: Option<String>,
    /// Only usage burned on chain: provider spend that reconciles with the chain.
    #[arg(long)]
    settled: bool,
    /// Export every receipt of the period instead, one JSON object per line (for
    /// `compux audit prove`, or your own books).
    #[arg(long, conflicts_with_all = ["by", "settled"])]
    receipts: bool,
}

fn credits(v: &Value) -> String {
    units::format(v.as_u64().unwrap_or(0), CREDIT_DECIMALS)
}

pub async fn run(ctx: &Ctx, a: UsageArgs) -> Result<()> {
    let base = a.relayer.as_str();
    let mut period = Vec::new();
    period.extend(a.from.map(|d| ("from", d)));
    period.extend(a.to.map(|d| ("to", d)));
    if a.receipts {
        let mut after: Option<String> = None;
        let mut count = 0usize;
        loop {
            let mut query = period.clone();
            query.push(("limit", "10000".into()));
            query.extend(after.take().map(|c| ("after", c)));
            let page = Call::get(base, "receipts").key(&a.api_key).query(&query).run().await?;
            for r in page["data"].as_array().into_iter().flatten() {
                crate::output::line(&r.to_string());
                count += 1;
            }
            eprintln!("{count} receipts exported...");
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return Ok(()),
            }
        }
    }
    let mut query = period;
    query.push(("group_by", a.by.clone()));
    if a.settled {
        query.push(("settled", "true".into()));
    }
    let body = Call::get(base, "usage").key(&a.api_key).query(&query).run().await?;
    ctx.emit(body.clone(), || human(&body));
    Ok(())
}

fn human(body: &Value) -> String {
    let mut out = vec![format!("credit account {}", body["account"].as_str().unwrap_or_default())];
    for s in body["balance"].as_array().into_iter().flatten() {
        out.push(format!(
            "  {:<12} {}  on chain {}  unsettled {}  held {}  available {}{}",
            s["kind"].as_str().unwrap_or_default(),
            s["source"].as_str().unwrap_or_default(),
            credits(&s["onchain"]),
            credits(&s["unsettled"]),
            credits(&s["held"]),
            credits(&s["available"]),
            if s["frozen"] == true { "  FROZEN" } else { "" }
        ));
        if let Some(t) = s["settlement_stuck"].as_object() {
            out.push(format!(
                "    SETTLEMENT STUCK: batch {} failed {} times ({}): its credits are charged and not burned; \
                 the operator sees it in /health/ready",
                t["seq"], t["attempts"], t["error"].as_str().unwrap_or_default()
            ));
        }
    }
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push("no usage in this period".into());
        return out.join("\n");
    }
    out.push(format!(
        "{:<10} {:<16} {:<18} {:<26} {:>8} {:>10} {:>10} {:>14} {:>14} {:>14} {:>14}",
        "day",
        "key",
        "model",
        "provider",
        "requests",
        "input",
        "output",
        "credits",
        "provider cost",
        "margin",
        "burned"
    ));
    let text = |r: &Value, f: &str| r[f].as_str().unwrap_or("*").to_string();
    let mut total = (0u64, 0u64);
    for r in &rows {
        total.0 += r["credits"].as_u64().unwrap_or(0);
        total.1 += r["provider_credits"].as_u64().unwrap_or(0);
        let margin = r["margin"].as_i64().unwrap_or(0);
        let sign = if margin < 0 { "-" } else { "" };
        out.push(format!(
            "{:<10} {:<16} {:<18} {:<26} {:>8} {:>10} {:>10} {:>14} {:>14} {:>14} {:>14}",
            text(r, "day"),
            text(r, "key"),
            text(r, "model"),
            text(r, "provider"),
            r["requests"].as_u64().unwrap_or(0),
            r["input_tokens"].as_u64().unwrap_or(0),
            r["output_tokens"].as_u64().unwrap_or(0),
            credits(&r["credits"]),
            credits(&r["provider_credits"]),
            format!("{sign}{}", units::format(margin.unsigned_abs(), CREDIT_DECIMALS)),
            credits(&r["settled_credits"])
        ));
    }
    out.push(format!(
        "total: {} credits charged, {} at the providers' own prices",
        units::format(total.0, CREDIT_DECIMALS),
        units::format(total.1, CREDIT_DECIMALS)
    ));
    out.join("\n")
}
