//! A market's pending parameter change, field by field, as users, `compux status` and the
//! auditor show it: what each parameter is now and what it becomes at `effective_at`.

use compux::state::{Market, MarketParams, PendingUpdate};

/// One parameter that a pending change alters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// The market's pending change, if any: when it may apply and what it alters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingChange {
    pub effective_at: i64,
    /// The last moment it may apply (`UpdateExpired` after).
    pub expires_at: i64,
    pub changes: Vec<ParamChange>,
}

/// `pending` is the market's `PendingUpdate` account (`MarketKeys::pending`).
pub fn pending(market: &Market, pending: &PendingUpdate) -> Option<PendingChange> {
    pending.is_pending().then(|| PendingChange {
        effective_at: pending.effective_at,
        expires_at: pending.effective_at.saturating_add(compux::constants::UPDATE_APPLY_WINDOW_SECS),
        changes: diff(&market.params(), &pending.params),
    })
}

/// The fields in which `to` differs from `from`. Values are printed in the program's units
/// (quote base units per credit, basis points, seconds).
pub fn diff(from: &MarketParams, to: &MarketParams) -> Vec<ParamChange> {
    let mut out = Vec::new();
    let mut field = |name: &'static str, a: String, b: String| {
        if a != b {
            out.push(ParamChange { field: name, from: a, to: b });
        }
    };
    field("base_price", from.base_price.to_string(), to.base_price.to_string());
    field(
        "hour_multipliers_bps",
        format!("{:?}", from.hour_multipliers_bps),
        format!("{:?}", to.hour_multipliers_bps),
    );
    let tiers = |p: &MarketParams| {
        let t = &p.bulk_tiers[..(p.bulk_tier_count as usize).min(p.bulk_tiers.len())];
        t.iter().map(|t| format!("{}:{}", t.min_credits, t.bonus_bps)).collect::<Vec<_>>().join(" ")
    };
    field("bulk_tiers (min_credits:bonus_bps)", tiers(from), tiers(to));
    let discounts = |p: &MarketParams| {
        let d = &p.reserve_discounts[..(p.reserve_discount_count as usize).min(p.reserve_discounts.len())];
        d.iter().map(|d| format!("{}:{}", d.min_term_secs, d.discount_bps)).collect::<Vec<_>>().join(" ")
    };
    field("reserve_discounts (min_term_secs:discount_bps)", discounts(from), discounts(to));
    field(
        "early_termination_fee_bps",
        from.early_termination_fee_bps.to_string(),
        to.early_termination_fee_bps.to_string(),
    );
    field("financing", format!("{:?}", from.financing), format!("{:?}", to.financing));
    field("relayer", from.relayer.to_string(), to.relayer.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::prelude::Pubkey;

    #[test]
    fn only_the_fields_that_change_are_listed() {
        let from = MarketParams { base_price: 10, relayer: Pubkey::new_unique(), ..Default::default() };
        assert!(diff(&from, &from).is_empty());
        let to = MarketParams { base_price: 20, early_termination_fee_bps: 500, ..from };
        let fields: Vec<_> =
            diff(&from, &to).iter().map(|c| (c.field, c.from.clone(), c.to.clone())).collect();
        assert_eq!(
            fields,
            [
                ("base_price", "10".into(), "20".into()),
                ("early_termination_fee_bps", "0".into(), "500".into())
            ]
        );
    }
}
