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
        "apply_market_update",
        "propose_admin",
        "accept_admin",
        "fund_recovery_reserve",
        "open_credit_account",
        "buy_credits",
        "transfer_credits",
        "announce_transfer",
        "set_burn_ceiling",
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
        "withdraw_repayments",
        "withdraw_treasury",
        "withdraw_reserve",
    ];
    expected.sort();
    assert_eq!(names, expected);

    let codes: Vec<u64> =
        idl["errors"].as_array().unwrap().iter().map(|e| e["code"].as_u64().unwrap()).collect();
    let last = compux_sdk::CompuxError::UpdateExpired as u64 + 6000;
    assert_eq!(codes, (6000..=last).collect::<Vec<_>>(), "every CompuxError is in the IDL");
    let events = idl["events"].as_array().unwrap();
    for name in [
        "UsageSettled",
        "MarketUpdateScheduled",
        "FacilityAccepted",
        "FacilityRepaid",
        "EscrowFrozen",
        "FacilityRecovered",
        "TreasuryWithdrawn",
        "ReserveWithdrawn",
        "RepaymentsWithdrawn",
    ] {
        assert!(events.iter().any(|e| e["name"] == name), "event {name} missing");
    }
}

/// `migrations/market.toml` documents the market the tests run against; keep them equal
/// (read by the same code `compux admin init-market` uses).
#[test]
fn migrations_market_toml_matches_the_test_market() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/market.toml");
    let file = compux_client::bootstrap::read_config(&path).expect("valid market file");
    assert_eq!(file, crate::program_test::default_config());
}
