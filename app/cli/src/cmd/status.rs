//! `compux status`: what a wallet holds and owes, in every market.

use anyhow::Result;
use compux_client::fetch;
use compux_sdk::state::{Facility, Market};
use serde_json::{json, Value};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use crate::ctx::Ctx;
use compux_sdk::units;

fn facility_json(address: &Pubkey, f: &Facility, role: &str, quote_decimals: u8) -> Value {
    json!({
        "quote_decimals": quote_decimals,
        "address": address.to_string(),
        "role": role,
        "status": format!("{:?}", f.status),
        "lender": f.lender.to_string(),
        "borrower": f.terms.borrower.to_string(),
        "principal": f.terms.principal,
        "total_credits": f.total_credits,
        "released_credits": f.released_credits,
        "burned_credits": f.burned_credits,
        "installment": f.loan.installment_amount,
        "installments_due": f.loan.installments_due,
        "installments": f.loan.installments,
        "missed_installments": f.loan.missed_installments,
        "next_due_ts": f.loan.next_due_ts,
        "next_due_amount": f.loan.next_due_amount,
        "past_due": f.loan.past_due(),
        "principal_outstanding": f.loan.principal_outstanding,
        "frozen_at": f.frozen_at,
        "maturity_ts": f.loan.maturity_ts(),
        "recovery_rate_bps": f.recovery_rate_bps,
        "earmark": f.earmark,
    })
}

/// The relayer's stuck settlements (`/health/ready`) of `sources` (credit accounts and
/// facilities): usage charged and not burnable on chain.
async fn stuck_settlements(relayer: &str, sources: &[String]) -> Result<Vec<Value>> {
    let url = format!("{}/health/ready", relayer.trim_end_matches('/').trim_end_matches("/v1"));
    let res = reqwest::get(&url).await.map_err(|e| {
        anyhow::anyhow!("cannot reach the relayer at {url} ({e}): is it running (`compux up`)?")
    })?;
    // 503 (not ready) still says which settlements are stuck.
    let ready: Value = res.json().await.unwrap_or(Value::Null);
    let stuck = ready["settlement"]["stuck"].as_array().cloned().unwrap_or_default();
    Ok(stuck.into_iter().filter(|s| sources.iter().any(|x| s["source"] == x.as_str())).collect())
}

pub async fn status(ctx: &Ctx, owner: Option<Pubkey>, relayer: Option<&str>) -> Result<()> {
    let owner = match owner {
        Some(k) => k,
        None => ctx.wallet()?.pubkey(),
    };
    ctx.connect().await?;
    let rpc = &ctx.rpc;
    let lamports = rpc.get_balance(&owner).await?;
    let mut accounts = Vec::new();
    let mut reservations = Vec::new();
    for (address, ca) in fetch::credit_accounts_of(rpc, &owner).await? {
        let credits = fetch::token_amount(rpc, &ca.vault).await?;
        accounts.push(json!({
            "address": address.to_string(),
            "market": ca.market.to_string(),
            "credits": credits,
            "settled_seq": ca.settlement.settled_seq,
            "total_purchased": ca.total_purchased,
            "auto_refill": ca.auto_refill.enabled(),
        }));
        for (r_address, r) in fetch::reservations_of(rpc, &address).await? {
            reservations.push(json!({
                "address": r_address.to_string(),
                "nonce": r.nonce,
                "credits_per_period": r.credits_per_period,
                "period_cost": r.period_cost,
                "claimed_periods": r.claimed_periods,
                "periods": r.periods,
                "next_period_end": r.current_period_end(),
                "deposit": r.deposit,
            }));
        }
    }
    // Facilities where the wallet lends or borrows, across markets.
    let mut facilities = Vec::new();
    let mut pending = Vec::new();
    for (market, state) in fetch::program_accounts::<Market>(rpc, &[]).await? {
        let mine: Vec<_> = fetch::facilities_of_market(rpc, &market)
            .await?
            .into_iter()
            .filter_map(|(address, f)| {
                let role = if f.lender == owner {
                    "lender"
                } else if f.terms.borrower == owner {
                    "borrower"
                } else {
                    return None;
                };
                Some((address, f, role))
            })
            .collect();
        // A parameter change coming to a market the wallet is in (docs/economics.md).
        let member = !mine.is_empty() || accounts.iter().any(|a| a["market"] == market.to_string());
        if member {
            if let Some(p) = fetch::pending_change(rpc, &fetch::market_keys(&market, &state)?, &state).await?
            {
                pending.push((market, p));
            }
        }
        if mine.is_empty() {
            continue;
        }
        let decimals = rpc.get_token_supply(&state.quote_mint).await?.decimals;
        facilities.extend(mine.iter().map(|(address, f, role)| facility_json(address, f, role, decimals)));
    }
    let mut value = json!({
        "owner": owner.to_string(),
        "lamports": lamports,
        "credit_accounts": accounts,
        "reservations": reservations,
        "facilities": facilities,
        "pending_market_changes": pending.iter().map(|(market, p)| json!({"market": market.to_string(), "change": p})).collect::<Vec<_>>(),
    });
    let stuck = match relayer {
        Some(relayer) => {
            let sources: Vec<String> = accounts
                .iter()
                .chain(facilities.iter().filter(|f| f["role"] == "borrower"))
                .filter_map(|a| a["address"].as_str().map(String::from))
                .collect();
            let stuck = stuck_settlements(relayer, &sources).await?;
            value["settlement_stuck"] = json!(stuck);
            stuck
        }
        None => Vec::new(),
    };
    if ctx.json {
        out!("{value}");
        return Ok(());
    }
    out!("wallet {owner}\n  SOL: {}", units::format(lamports, 9));
    if accounts.is_empty() {
        out!("  no credit account yet (`compux buy` opens one)");
    }
    for a in &accounts {
        out!(
            "  market {}: {} credits (settled batches {}, auto-refill {})",
            a["market"].as_str().unwrap_or_default(),
            units::format(a["credits"].as_u64().unwrap_or(0), 6),
            a["settled_seq"],
            if a["auto_refill"] == true { "on" } else { "off" }
        );
    }
    if !reservations.is_empty() {
        out!(
            "  reservations:\n    {:>5}  {:>14}  {:>9}  {:>20}",
            "nonce",
            "credits/period",
            "claimed",
            "claim by"
        );
        for r in &reservations {
            out!(
                "    {:>5}  {:>14}  {:>4}/{:<4}  {:>20}",
                r["nonce"],
                units::format(r["credits_per_period"].as_u64().unwrap_or(0), 6),
                r["claimed_periods"],
                r["periods"],
                r["next_period_end"].as_i64().map(units::format_utc).unwrap_or_default()
            );
        }
    }
    if !pending.is_empty() {
        let now = fetch::clock(rpc).await?.unix_timestamp;
        for (market, p) in &pending {
            out!("  market {market}:\n{}", super::audit::describe_pending(p, now));
        }
    }
    for t in &stuck {
        out!(
            "  SETTLEMENT STUCK for {}: batch {} failed {} times ({}). Usage charged by the relayer \
             is not burned on chain; the relayer's operator is alerted.",
            t["source"].as_str().unwrap_or_default(),
            t["seq"],
            t["attempts"],
            t["error"].as_str().unwrap_or_default()
        );
    }
    if !facilities.is_empty() {
        out!(
            "  facilities:\n    {:<44}  {:<8}  {:<10}  {:>9}  {:>20}  {:>12}  {:>12}",
            "address",
            "role",
            "status",
            "due/total",
            "next due",
            "amount",
            "outstanding"
        );
        for f in &facilities {
            out!(
                "    {:<44}  {:<8}  {:<10}  {:>4}/{:<4}  {:>20}  {:>12}  {:>12}",
                f["address"].as_str().unwrap_or_default(),
                f["role"].as_str().unwrap_or_default(),
                f["status"].as_str().unwrap_or_default(),
                f["installments_due"],
                f["installments"],
                match f["next_due_ts"].as_i64() {
                    Some(ts) if ts > 0 => units::format_utc(ts),
                    _ => "-".into(),
                },
                units::format(
                    f["next_due_amount"].as_u64().unwrap_or(0),
                    f["quote_decimals"].as_u64().unwrap_or(0) as u8
                ),
                units::format(
                    f["principal_outstanding"].as_u64().unwrap_or(0),
                    f["quote_decimals"].as_u64().unwrap_or(0) as u8
                )
            );
        }
    }
    Ok(())
}
