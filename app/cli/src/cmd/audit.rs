//! `compux audit`: the auditor's check of a market from chain data alone.

use anyhow::{bail, Context, Result};
use compux_client::fetch;
use compux_sdk::audit;
use compux_sdk::ix::SettleBatch;
use compux_sdk::state::FacilityStatus;
use serde_json::json;

use crate::ctx::Ctx;
use crate::relayer_api::Call;

/// One batch as `GET /v1/settlement/batches` publishes it; `None` if malformed.
fn settle_batch(b: &serde_json::Value) -> Option<SettleBatch> {
    Some(SettleBatch {
        seq: b["seq"].as_u64()?,
        amount: b["amount"].as_u64()?,
        batch_root: b["batch_root"].as_str().and_then(compux_sdk::receipt::hex32::decode)?,
        window_end: b["window_end"].as_i64()?,
    })
}

/// The relayer's published charges per source, compared with the chain's burns; each of the
/// market's sources' published batches replayed against its on-chain `usage_chain`.
async fn usage_against_chain(
    relayer: &str,
    snapshot: &audit::Snapshot,
) -> Result<Vec<audit::usage::SourceUsage>> {
    let list = Call::get(relayer, "settlement/accounts").run().await?;
    let market_sources: std::collections::HashSet<solana_sdk::pubkey::Pubkey> = snapshot
        .credit_accounts
        .iter()
        .map(|c| c.address)
        .chain(snapshot.facilities.iter().map(|f| f.address))
        .collect();
    let mut published = Vec::new();
    for row in list["data"].as_array().context("the relayer's /v1/settlement/accounts has no `data` list")? {
        let figure = |name: &str| row[name].as_u64().with_context(|| format!("`{name}` in {row}"));
        let source: solana_sdk::pubkey::Pubkey = row["source"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("`source` in {row}"))?;
        if !market_sources.contains(&source) {
            continue;
        }
        let query = [("source", source.to_string())];
        let batches = Call::get(relayer, "settlement/batches").query(&query).run().await?;
        let batches = batches["data"]
            .as_array()
            .context("the relayer's /v1/settlement/batches has no `data` list")?
            .iter()
            .map(settle_batch)
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("a malformed batch of {source}"))?;
        published.push(audit::usage::Charged {
            source,
            charged: figure("charged")?,
            settled: figure("settled")?,
            settled_seq: figure("settled_seq")?,
            batches: Some(batches),
        });
    }
    Ok(audit::usage::compare(snapshot, &published))
}

pub async fn audit(ctx: &Ctx, relayer: Option<&str>) -> Result<()> {
    let (m, _) = ctx.market().await?;
    eprintln!("fetching market {} ...", m.market);
    let snapshot = fetch::snapshot(&ctx.rpc, &m.market).await?;
    let report = audit::check(&snapshot);
    let usage = match relayer {
        Some(url) => Some(usage_against_chain(url, &snapshot).await?),
        None => None,
    };
    let usage_mismatches = usage.iter().flatten().filter(|u| u.mismatch.is_some()).count();
    let count = |s: FacilityStatus| snapshot.facilities.iter().filter(|f| f.facility.status == s).count();
    let facilities: Vec<_> = snapshot
        .facilities
        .iter()
        .map(|f| {
            json!({
                "address": f.address.to_string(),
                "status": format!("{:?}", f.facility.status),
                "escrow": f.escrow_balance,
                "escrow_frozen": f.escrow_frozen,
                "released": f.facility.released_credits,
                "burned": f.facility.burned_credits,
                "principal_outstanding": f.facility.loan.principal_outstanding,
                "minted": f.facility.total_credits,
                "cap_bps": f.facility.accepted_cap_bps,
                "earmark": f.facility.earmark,
            })
        })
        .collect();
    let mut violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    for u in usage.iter().flatten() {
        if let Some(mismatch) = &u.mismatch {
            violations.push(format!(
                "{}: {mismatch:?} (relayer charged {}, chain burned {})",
                u.source, u.charged, u.burned
            ));
        }
    }
    // Credits announced to leave their vaults: the relayer no longer spends them, and they
    // may move from `ready_at`.
    let notices: Vec<_> = snapshot
        .credit_accounts
        .iter()
        .filter(|c| c.account.notice.amount > 0)
        .map(|c| {
            json!({"credit_account": c.address.to_string(), "owner": c.account.owner.to_string(),
                   "amount": c.account.notice.amount, "vault": c.vault_balance,
                   "ready_at": c.account.notice.ready_at, "ready": c.account.notice.ready_at <= snapshot.now})
        })
        .collect();
    // A parameter change the admin scheduled, applying after the market's update delay.
    let pending = fetch::pending_change(&ctx.rpc, &m, &snapshot.market).await?;
    let value = json!({
        "market": m.market.to_string(),
        "now": snapshot.now,
        "credit_mint_supply": snapshot.credit_mint_supply,
        "credit_accounts": snapshot.credit_accounts.len(),
        "reservations": snapshot.reservations.len(),
        "facilities": facilities,
        "recovery_reserve": report.recovery_reserve,
        "recovery_liability": report.recovery_liability,
        "coverage_bps": report.coverage_bps,
        "earmarked": report.earmarked,
        "financing": {
            "tiers": snapshot.market.financing.tiers().iter().map(|t| json!({"min_principal": t.min_principal, "max_multiplier_bps": t.max_multiplier_bps})).collect::<Vec<_>>(),
            "recovery_rate_bps": snapshot.market.financing.recovery_rate_bps,
            "min_term_secs": snapshot.market.financing.min_term_secs,
            "max_term_secs": snapshot.market.financing.max_term_secs,
            "max_grace_secs": snapshot.market.financing.max_grace_secs,
            "max_default_after_secs": snapshot.market.financing.max_default_after_secs,
        },
        "treasury": snapshot.treasury_balance,
        "treasury_expected": report.treasury_expected,
        "treasury_flows": {
            "purchases_and_claims": snapshot.credit_accounts.iter().map(|c| c.account.total_quote_paid).sum::<u64>(),
            "principals": snapshot.market.principals_received,
            "forfeits": snapshot.market.forfeits_received,
            "withdrawn": snapshot.market.treasury_withdrawn,
        },
        "reserve_flows": {
            "funded": snapshot.market.reserve_funded,
            "paid_to_lenders": snapshot.market.reserve_paid,
            "withdrawn": snapshot.market.reserve_withdrawn,
        },
        "transfer_notice_secs": snapshot.market.transfer_notice_secs,
        "transfer_notices": notices,
        "update_delay_secs": snapshot.market.update_delay_secs,
        "pending_change": pending,
        "usage_against_chain": usage,
        "violations": violations,
        "ok": violations.is_empty(),
    });
    ctx.emit(value, || {
        let mut out = format!(
            "market {}\n  credit supply {} in {} credit accounts and {} facilities ({} active, {} delinquent, {} defaulted, {} frozen)\n  recovery reserve {} against a liability of {}: coverage {}; earmarked for live facilities {}\n  treasury {} (its recorded flows: {} in from purchases, claims, principals and forfeits, {} withdrawn)",
            m.market,
            snapshot.credit_mint_supply,
            snapshot.credit_accounts.len(),
            snapshot.facilities.len(),
            count(FacilityStatus::Active),
            count(FacilityStatus::Delinquent),
            count(FacilityStatus::Defaulted),
            count(FacilityStatus::Frozen),
            report.recovery_reserve,
            report.recovery_liability,
            report.coverage_bps.map_or("n/a (no unused financed credits)".into(), |b| format!("{}.{:02}%", b / 100, b % 100)),
            report.earmarked,
            snapshot.treasury_balance,
            report.treasury_expected + snapshot.market.treasury_withdrawn,
            snapshot.market.treasury_withdrawn,
        );
        for n in &notices {
            out.push_str(&format!(
                "\n  transfer notice: {} credits of {} may leave its vault from {}",
                n["amount"], n["credit_account"].as_str().unwrap_or_default(), n["ready_at"]
            ));
        }
        for u in usage.iter().flatten() {
            out.push_str(&format!(
                "\n  {}: charged {} by the relayer, burned {} on chain (batch {}), not burned yet {}",
                u.source, u.charged, u.burned, u.settled_seq_chain, u.unburned
            ));
        }
        if let Some(p) = &pending {
            out.push_str(&format!("\n{}", describe_pending(p, snapshot.now)));
        }
        if violations.is_empty() {
            out.push_str("\n  every invariant holds");
        }
        for v in &violations {
            out.push_str(&format!("\n  VIOLATION: {v}"));
        }
        out
    });
    if !violations.is_empty() {
        bail!(
            "{} invariant violation(s) in market {} ({usage_mismatches} between the relayer's charges and the chain's burns)",
            violations.len(),
            m.market
        );
    }
    Ok(())
}

/// `compux audit prove <receipt>`: checks one request's burn from the relayer's published
/// data and the chain: the receipt's leaf hashes to what the relayer claims, its Merkle
/// proof leads to its batch's root, every batch of the source matches the `UsageSettled`
/// event its transaction logged, the `usage_chain` replayed over them matches each event
/// and the source account on chain, and the receipt's batch is at or below the on-chain
/// `settled_seq`. Exits non-zero on the first mismatch.
pub async fn prove(ctx: &Ctx, relayer: &str, receipt: &str) -> Result<()> {
    use compux_sdk::decode::CompuxEvent;
    use compux_sdk::math::usage_chain::next_usage_chain;
    use compux_sdk::receipt::{self as r, hex32, Leaf, Step};

    let got = Call::get(relayer, &format!("receipts/{receipt}")).run().await?;
    let leaf: Leaf = serde_json::from_value(got["leaf"].clone()).context("the receipt's leaf")?;
    let mut checks: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| -> Result<()> {
        checks.push(format!("{} {what}", if ok { "ok  " } else { "FAIL" }));
        if ok {
            Ok(())
        } else {
            bail!("{}\nreceipt {receipt} does not verify: {what}", checks.join("\n"))
        }
    };
    let claimed = got["leaf_hash"].as_str().and_then(hex32::decode);
    check(claimed == Some(leaf.hash()), format!("leaf hash {}", hex32::encode(&leaf.hash())))?;
    let batch = &got["batch"];
    if batch.is_null() {
        bail!("receipt {receipt} is recorded but not in a settlement batch yet; try again in a few seconds");
    }
    let proof: Vec<Step> = serde_json::from_value(got["proof"].clone()).context("the receipt's proof")?;
    let root = batch["batch_root"].as_str().and_then(hex32::decode).context("the batch root")?;
    let seq = batch["seq"].as_u64().context("the batch seq")?;
    // The proof itself, leaf to root: each step's sibling and the side it sits on.
    let steps: Vec<String> = proof
        .iter()
        .map(|s| format!("{} {}", if s.left { "left " } else { "right" }, hex32::encode(&s.sibling)))
        .collect();
    let shown = if steps.is_empty() {
        " (the leaf is the root)".to_string()
    } else {
        format!(":\n       {}", steps.join("\n       "))
    };
    check(
        r::fold(leaf.hash(), &proof) == root,
        format!("Merkle proof leads to batch {seq}'s root {}{shown}", hex32::encode(&root)),
    )?;

    let source: solana_sdk::pubkey::Pubkey = leaf.source.parse().context("the receipt's source")?;
    let query = [("source", source.to_string())];
    let list = Call::get(relayer, "settlement/batches").query(&query).run().await?;
    let batches = list["data"].as_array().cloned().unwrap_or_default();
    let mut chain = [0u8; 32];
    for (i, b) in batches.iter().enumerate() {
        let Some(SettleBatch { seq: bseq, amount, batch_root: broot, window_end }) = settle_batch(b) else {
            bail!("batch {i} of {source} is malformed: {b}");
        };
        check(bseq == i as u64 + 1, format!("batch {bseq} follows batch {i}"))?;
        if b["settled_at_ms"].is_null() {
            break; // not on chain yet: neither are the ones after it
        }
        let sig: solana_sdk::signature::Signature =
            b["signature"].as_str().unwrap_or_default().parse().context("a batch signature")?;
        let event = fetch::events_of(&ctx.rpc, &sig).await?.into_iter().find_map(|e| match e {
            CompuxEvent::UsageSettled(u) if u.source == source && u.seq == bseq => Some(u),
            _ => None,
        });
        chain = next_usage_chain(&chain, bseq, amount, &broot, window_end);
        let matches = event.as_ref().is_some_and(|e| {
            (e.amount, e.batch_root, e.window_end, e.usage_chain) == (amount, broot, window_end, chain)
        });
        check(
            matches,
            format!("batch {bseq}: {amount} burned in {sig}, usage_chain {}", hex32::encode(&chain)),
        )?;
    }
    let settlement = match fetch::account_state::<compux_sdk::state::CreditAccount>(&ctx.rpc, &source).await {
        Ok(Some(ca)) => ca.settlement,
        _ => {
            fetch::account_state::<compux_sdk::state::Facility>(&ctx.rpc, &source)
                .await?
                .with_context(|| {
                    format!("{source} is neither a credit account nor a facility on {}", ctx.rpc.url())
                })?
                .settlement
        }
    };
    check(settlement.usage_chain == chain, format!("on-chain usage_chain of {source} equals the replay"))?;
    check(
        seq <= settlement.settled_seq,
        format!("batch {seq} is at or below on-chain settled_seq {}", settlement.settled_seq),
    )?;
    let value = json!({
        "receipt": receipt, "ok": true, "source": source.to_string(), "batch": seq,
        "credits": leaf.credits, "leaf": leaf, "proof": proof, "batch_root": hex32::encode(&root), "checks": checks,
    });
    ctx.emit(value, || {
        format!(
            "{}\nreceipt {receipt}: {} credit base units burned in batch {seq} of {source}",
            checks.join("\n"),
            leaf.credits
        )
    });
    Ok(())
}

/// A pending parameter change in words, one changed field a line.
pub fn describe_pending(p: &compux_sdk::changes::PendingChange, now: i64) -> String {
    let when = if p.expires_at < now {
        format!(
            "expired at {} unapplied (it no longer can apply)",
            compux_sdk::units::format_utc(p.expires_at)
        )
    } else if p.effective_at <= now {
        format!(
            "due: anyone may apply it (`compux crank apply-update`) until {}",
            compux_sdk::units::format_utc(p.expires_at)
        )
    } else {
        format!(
            "applies from {} (in {})",
            compux_sdk::units::format_utc(p.effective_at),
            compux_sdk::units::format_secs(p.effective_at - now)
        )
    };
    let mut out = format!("  PARAMETER CHANGE pending, {when}:");
    for c in &p.changes {
        out.push_str(&format!("\n    {}: {} -> {}", c.field, c.from, c.to));
    }
    out
}
