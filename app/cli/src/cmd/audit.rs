//! `compux audit`: the auditor's check of a market from chain data alone.

use anyhow::{bail, Result};
use compux_client::fetch;
use compux_sdk::audit;
use compux_sdk::state::FacilityStatus;
use serde_json::json;

use crate::ctx::Ctx;

pub async fn audit(ctx: &Ctx) -> Result<()> {
    let (m, _) = ctx.market().await?;
    eprintln!("fetching market {} ...", m.market);
    let snapshot = fetch::snapshot(&ctx.rpc, &m.market).await?;
    let report = audit::check(&snapshot);
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
            })
        })
        .collect();
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
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
        "violations": violations,
        "ok": violations.is_empty(),
    });
    ctx.emit(value, || {
        let mut out = format!(
            "market {}\n  credit supply {} in {} credit accounts and {} facilities ({} active, {} delinquent, {} defaulted, {} frozen)\n  recovery reserve {} against a liability of {}: coverage {}",
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
        );
        if violations.is_empty() {
            out.push_str("\n  every invariant holds");
        }
        for v in &violations {
            out.push_str(&format!("\n  VIOLATION: {v}"));
        }
        out
    });
    if !report.violations.is_empty() {
        bail!("{} invariant violation(s) in market {}", report.violations.len(), m.market);
    }
    Ok(())
}
