//! Issue 24, attacks 3 and 4: the admin changes the market between a user's quote and
//! their transaction, and one party tries to block another's facility offers. Each user
//! states what it accepts in the instruction; the change fails the transaction, with its
//! own error, instead of surprising the user, and nothing moves.

use compux_sdk::ix::{self, AutoRefillParams, ReserveParams};
use compux_sdk::state::{Market, MarketUpdate};
use compux_sdk::{CompuxError, FacilityKeys};

use crate::program_test::*;

const NO_TIERS: MarketUpdate = MarketUpdate {
    base_price: None,
    hour_multipliers_bps: None,
    bulk_tiers: Some(Vec::new()),
    reserve_discounts: None,
    early_termination_fee_bps: None,
    financing: None,
    relayer: None,
    paused: None,
};

/// The bulk bonus at the first tier: what a buyer of `TIER1_MIN` credits was quoted.
const TIER1_TOTAL: u64 = TIER1_MIN + TIER1_MIN * TIER1_BPS as u64 / 10_000;

#[tokio::test]
async fn a_purchase_delivers_no_fewer_credits_than_the_buyer_was_quoted() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(100_000_000).await;
    env.set_time(at_hour(9)).await;
    // Quoted with the bonus; the admin removes the bulk tiers before the purchase lands.
    env.update_market_applied(NO_TIERS).await;
    let paid_before = env.balance(&alice.quote).await;
    let buy = |min| ix::buy_credits(&m, &alice.key(), &alice.quote, TIER1_MIN, u64::MAX, min);
    assert_compux_err(env.send(&[buy(TIER1_TOTAL)], &[&alice.kp]).await, CompuxError::PurchaseBelowMinimum);
    assert_eq!(env.balance(&alice.quote).await, paid_before, "nothing was paid");
    assert_eq!(env.balance(&alice.credit.vault).await, 0, "nothing was minted");
    // A buyer who accepts no bonus buys at the new terms.
    assert_ok(env.send(&[buy(TIER1_MIN)], &[&alice.kp]).await);
    assert_eq!(env.balance(&alice.credit.vault).await, TIER1_MIN);
}

#[tokio::test]
async fn an_auto_refill_delivers_no_fewer_credits_than_its_owner_set() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(100_000_000).await;
    env.set_time(at_hour(9)).await;
    let p = AutoRefillParams {
        threshold: 1,
        refill_credits: TIER1_MIN,
        max_quote_per_refill: u64::MAX / 4,
        min_credits_per_refill: TIER1_TOTAL,
        cap_quote: u64::MAX / 2,
    };
    assert_ok(env.send(&[ix::configure_auto_refill(&m, &alice.key(), &alice.quote, p)], &[&alice.kp]).await);
    env.update_market_applied(NO_TIERS).await;
    // The crank is anyone's: it cannot buy on the owner's delegation below the owner's bound.
    let crank = ix::auto_refill(&m, &alice.key(), &alice.quote);
    let paid_before = env.balance(&alice.quote).await;
    assert_compux_err(env.send(std::slice::from_ref(&crank), &[]).await, CompuxError::PurchaseBelowMinimum);
    assert_eq!(env.balance(&alice.quote).await, paid_before);
    assert_eq!(env.balance(&alice.credit.vault).await, 0);
}

#[tokio::test]
async fn a_reservation_lands_only_within_its_owners_price_deposit_and_fee() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(100_000_000).await;
    env.set_time(at_hour(9)).await;
    let market: Market = env.state(&m.market).await;
    let (quoted, q) = quoted_reservation(&market);
    // The admin raises the early-termination fee to the whole commitment.
    let all_fee = MarketUpdate { early_termination_fee_bps: Some(10_000), ..Default::default() };
    env.update_market_applied(all_fee).await;
    let reserve = |p| ix::reserve(&m, &alice.key(), &alice.quote, 0, p);
    let paid_before = env.balance(&alice.quote).await;
    assert_compux_err(env.send(&[reserve(quoted)], &[&alice.kp]).await, CompuxError::DepositAboveMax);
    // A larger deposit allowed does not let a larger fee through.
    let roomy = ReserveParams { max_deposit: u64::MAX, ..quoted };
    assert_compux_err(env.send(&[reserve(roomy)], &[&alice.kp]).await, CompuxError::FeeAboveMax);
    // And fewer discounts: a higher locked price.
    let fee_back = MarketUpdate { early_termination_fee_bps: Some(FEE_BPS), ..Default::default() };
    let no_discounts = MarketUpdate { reserve_discounts: Some(Vec::new()), ..fee_back };
    env.update_market_applied(no_discounts).await;
    assert_compux_err(env.send(&[reserve(quoted)], &[&alice.kp]).await, CompuxError::PriceAboveMax);
    assert_eq!(env.balance(&alice.quote).await, paid_before, "no deposit was taken");
    assert!(env.account(&alice.credit.reservation(0)).await.is_none(), "no reservation was made");
    // At the terms quoted, it lands with the deposit quoted.
    let restore =
        MarketUpdate { reserve_discounts: Some(default_config().reserve_discounts), ..Default::default() };
    env.update_market_applied(restore).await;
    assert_ok(env.send(&[reserve(quoted)], &[&alice.kp]).await);
    assert_eq!(paid_before - env.balance(&alice.quote).await, q.deposit);
}

#[tokio::test]
async fn no_one_can_block_a_lenders_offer() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let lender = env.user(10_000_000).await;
    let griefer = env.user(10_000_000).await;
    let borrower = env.user(1_000_000).await;
    let terms = default_terms(borrower.key());
    // The lender picks its facility numbers; a griefer's offers and cancels, at the same
    // numbers, before each of the lender's (the market-wide counter let them fail every one).
    for nonce in [0, 1, 7] {
        let own = FacilityKeys::derive(&m.market, &griefer.key(), nonce);
        assert_ok(env.send(&[ix::offer_facility(&m, &own, &griefer.quote, terms)], &[&griefer.kp]).await);
        assert_ok(env.send(&[ix::cancel_offer(&m, &own, &griefer.quote)], &[&griefer.kp]).await);
        let f = FacilityKeys::derive(&m.market, &lender.key(), nonce);
        assert_ok(env.send(&[ix::offer_facility(&m, &f, &lender.quote, terms)], &[&lender.kp]).await);
    }
    // The griefer cannot take the lender's next address: the lender's key is in its seeds.
    let taken = FacilityKeys { lender: griefer.key(), ..FacilityKeys::derive(&m.market, &lender.key(), 8) };
    let res = env.send(&[ix::offer_facility(&m, &taken, &griefer.quote, terms)], &[&griefer.kp]).await;
    assert_anchor_err(res, anchor_lang::error::ErrorCode::ConstraintSeeds);
    let f = FacilityKeys::derive(&m.market, &lender.key(), 8);
    assert_ok(env.send(&[ix::offer_facility(&m, &f, &lender.quote, terms)], &[&lender.kp]).await);
    // An address the lender already uses is refused, and only its own.
    let res = env.send(&[ix::offer_facility(&m, &f, &lender.quote, terms)], &[&lender.kp]).await;
    assert_compux_err(res, CompuxError::AddressInUse);
}
