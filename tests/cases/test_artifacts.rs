//! Checked-in artefacts match the code. The IDL describes this program; Freshness against the source is checked by
//! `cargo run -p compux-idl -- --check` (part of scripts/test.sh), which rebuilds it.

use serde_json::Value;

const IDL: &str = include_str!("../../idl/compux.json");

#[test]
fn idl_lists_every_instruction_error_and_the_program_address() {
    let idl: Value = serde_json::from_str(IDL).expect("idl/compux.json is JSON");
    assert_eq!(idl["address"], compux::ID.to_string());

    let mut names: Vec<&str> =
        idl["instructions"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected = vec![
        "init_market",
        "update_market",
        "propose_admin",
        "accept_admin",
        "fund_recovery_reserve",
        "open_credit_account",
        "buy_credits",
        "transfer_credits",
        "configure_auto_refill",
        "auto_refill",
        "reserve",
        "claim_period",
        "cancel_reservation",
        "lapse_reservation",
        "settle",
        "settle_facility",
        "offer_facility",
        "cancel_offer",
        "accept_facility",
        "release_tranche",
        "repay",
        "refresh_facility",
        "freeze_escrow",
        "recover",
        "close_facility",
    ];
    expected.sort();
    assert_eq!(names, expected);

    let codes: Vec<u64> =
        idl["errors"].as_array().unwrap().iter().map(|e| e["code"].as_u64().unwrap()).collect();
    let last = compux_sdk::CompuxError::WrongTokenOwner as u64 + 6000;
    assert_eq!(codes, (6000..=last).collect::<Vec<_>>(), "every CompuxError is in the IDL");
    let events = idl["events"].as_array().unwrap();
    for name in ["UsageSettled", "FacilityAccepted", "FacilityRepaid", "EscrowFrozen", "FacilityRecovered"] {
        assert!(events.iter().any(|e| e["name"] == name), "event {name} missing");
    }
}

/// `migrations/market.toml` documents the market the tests run against; keep them equal.
#[test]
fn migrations_market_toml_matches_the_test_market() {
    let t: toml::Value = toml::from_str(include_str!("../../migrations/market.toml")).expect("valid TOML");
    let c = crate::program_test::default_config();
    let int = |v: &toml::Value| v.as_integer().unwrap() as u64;
    assert_eq!(int(&t["base_price"]), c.base_price);
    assert_eq!(int(&t["early_termination_fee_bps"]), c.early_termination_fee_bps as u64);
    let hours: Vec<u64> = t["hour_multipliers_bps"].as_array().unwrap().iter().map(int).collect();
    assert_eq!(hours, c.hour_multipliers_bps.iter().map(|&h| h as u64).collect::<Vec<_>>());
    let tiers: Vec<(u64, u64)> = t["bulk_tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (int(&x["min_credits"]), int(&x["bonus_bps"])))
        .collect();
    assert_eq!(tiers, c.bulk_tiers.iter().map(|x| (x.min_credits, x.bonus_bps as u64)).collect::<Vec<_>>());
    let discounts: Vec<(u64, u64)> = t["reserve_discounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (int(&x["min_term_secs"]), int(&x["discount_bps"])))
        .collect();
    assert_eq!(
        discounts,
        c.reserve_discounts
            .iter()
            .map(|x| (x.min_term_secs as u64, x.discount_bps as u64))
            .collect::<Vec<_>>()
    );
}
