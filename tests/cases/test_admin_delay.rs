//! Issue 24: no admin change can surprise a user. Parameter changes wait the market's update
//! delay on chain, where every user (and `compux status`, and the audit) sees them coming; a
//! pause and a revoked relayer key apply at once, because they only stop things.

use anchor_lang::error::ErrorCode;
use compux_sdk::constants::UPDATE_APPLY_WINDOW_SECS;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::{Market, MarketUpdate};
use compux_sdk::CompuxError;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

const CREDIT: u64 = compux_sdk::constants::CREDIT_UNIT;

#[tokio::test]
async fn a_fee_raised_under_a_user_waits_the_delay_and_the_users_transaction_lands_first() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let alice = env.user(100_000_000).await;
    let t = at_hour(9);
    env.set_time(t).await;
    let market: Market = env.state(&m.market).await;
    let (quoted, q) = quoted_reservation(&market);

    // The attack of issue 24 (3): the admin raises the fee to the whole commitment and drops
    // the discounts just before Alice's reservation lands.
    let harsh = MarketUpdate {
        early_termination_fee_bps: Some(10_000),
        reserve_discounts: Some(Vec::new()),
        ..Default::default()
    };
    let logs = assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), harsh)], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.early_termination_fee_bps, FEE_BPS, "nothing changed yet");
    let pending = env.pending().await;
    assert_eq!(pending.effective_at, t + UPDATE_DELAY_SECS);
    assert_eq!(
        (pending.params.early_termination_fee_bps, pending.params.reserve_discount_count),
        (10_000, 0),
        "the change is on chain for everyone to see"
    );
    assert!(matches!(
        &events_from_logs(&logs)[..],
        [CompuxEvent::MarketUpdateScheduled(e), CompuxEvent::MarketUpdated(u)]
            if e.effective_at == t + UPDATE_DELAY_SECS && e.params.early_termination_fee_bps == 10_000
                && u.config.early_termination_fee_bps == FEE_BPS
    ));

    // Alice's reservation lands at the terms she was quoted.
    let paid_before = env.balance(&alice.quote).await;
    assert_ok(env.send(&[ix::reserve(&m, &alice.key(), &alice.quote, 0, quoted)], &[&alice.kp]).await);
    assert_eq!(paid_before - env.balance(&alice.quote).await, q.deposit);

    // Nobody can apply it early, not even the admin; at the delay's end anyone can.
    for at in [t, t + UPDATE_DELAY_SECS - 1] {
        env.set_time(at).await;
        assert_compux_err(env.send(&[ix::apply_market_update(&m)], &[]).await, CompuxError::UpdateNotDue);
    }
    env.set_time(t + UPDATE_DELAY_SECS).await;
    let logs = assert_ok(env.send(&[ix::apply_market_update(&m)], &[]).await);
    assert!(matches!(
        &events_from_logs(&logs)[..],
        [CompuxEvent::MarketUpdated(u)] if u.config.early_termination_fee_bps == 10_000
    ));
    let market: Market = env.state(&m.market).await;
    assert_eq!((market.early_termination_fee_bps, market.reserve_discount_count), (10_000, 0));
    assert!(!env.pending().await.is_pending());
    assert_compux_err(env.send(&[ix::apply_market_update(&m)], &[]).await, CompuxError::NoPendingUpdate);
}

#[tokio::test]
async fn a_second_change_joins_the_pending_one_and_the_delay_starts_again() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let t = at_hour(9);
    env.set_time(t).await;
    let dear = MarketUpdate { base_price: Some(2 * BASE_PRICE), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), dear)], &[&admin]).await);
    let later = t + UPDATE_DELAY_SECS / 2;
    env.set_time(later).await;
    let fee = MarketUpdate { early_termination_fee_bps: Some(2 * FEE_BPS), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), fee)], &[&admin]).await);
    let pending = env.pending().await;
    assert_eq!(
        (pending.effective_at, pending.params.base_price, pending.params.early_termination_fee_bps),
        (later + UPDATE_DELAY_SECS, 2 * BASE_PRICE, 2 * FEE_BPS),
        "both changes pending, the delay counted from the second"
    );
    // The first change's own moment has passed: still not due.
    env.set_time(t + UPDATE_DELAY_SECS).await;
    assert_compux_err(env.send(&[ix::apply_market_update(&m)], &[]).await, CompuxError::UpdateNotDue);
    env.set_time(later + UPDATE_DELAY_SECS).await;
    assert_ok(env.send(&[ix::apply_market_update(&m)], &[]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!((market.base_price, market.early_termination_fee_bps), (2 * BASE_PRICE, 2 * FEE_BPS));

    // A rejected change leaves the market and its pending change as they were.
    let pending_before = env.pending().await;
    let bad = MarketUpdate {
        base_price: Some(3 * BASE_PRICE),
        early_termination_fee_bps: Some(10_001),
        ..Default::default()
    };
    assert_compux_err(
        env.send(&[ix::update_market(&m, &admin.pubkey(), bad)], &[&admin]).await,
        CompuxError::InvalidFee,
    );
    let market: Market = env.state(&m.market).await;
    assert_eq!((market.base_price, env.pending().await), (2 * BASE_PRICE, pending_before));
}

/// A change left unapplied past its day cannot land weeks later without a fresh notice.
#[tokio::test]
async fn a_due_change_applies_within_a_day_of_its_time_or_not_at_all() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let t = at_hour(9);
    env.set_time(t).await;
    let dear = MarketUpdate { base_price: Some(2 * BASE_PRICE), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), dear.clone())], &[&admin]).await);
    let due = t + UPDATE_DELAY_SECS;
    env.set_time(due + UPDATE_APPLY_WINDOW_SECS + 1).await;
    assert_compux_err(env.send(&[ix::apply_market_update(&m)], &[]).await, CompuxError::UpdateExpired);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.base_price, BASE_PRICE);
    // Scheduled again, it waits a whole delay again, and lands on the last second of its day.
    let again = due + UPDATE_APPLY_WINDOW_SECS + 1;
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), dear)], &[&admin]).await);
    assert_eq!(env.pending().await.effective_at, again + UPDATE_DELAY_SECS);
    env.set_time(again + UPDATE_DELAY_SECS + UPDATE_APPLY_WINDOW_SECS).await;
    assert_ok(env.send(&[ix::apply_market_update(&m)], &[]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.base_price, 2 * BASE_PRICE);
}

#[tokio::test]
async fn a_new_relayer_key_waits_the_delay_and_a_revoked_one_stops_at_once() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let old = env.relayer.insecure_clone();
    let alice = env.user(10_000_000).await;
    let t = at_hour(10);
    env.set_time(t).await;
    let buy = ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 1_000_000, 0);
    assert_ok(env.send(&[buy], &[&alice.kp]).await);
    // Batch `seq` of one credit, by `relayer`, for usage up to `at`.
    let settle = |relayer: &Keypair, seq: u64, at: i64| {
        let b = SettleBatch { seq, amount: CREDIT, batch_root: [seq as u8; 32], window_end: at - 1 };
        ix::settle(&m, &relayer.pubkey(), &alice.credit, b)
    };

    // The admin names a key of its own: it cannot burn anything until the delay has passed,
    // time in which Alice sees it (and may announce a transfer out: the delay is at least
    // the market's transfer notice).
    let new = Keypair::new();
    env.fund(&new.pubkey(), 1_000_000_000).await;
    let rotate = MarketUpdate { relayer: Some(new.pubkey()), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), rotate)], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert!(market.update_delay_secs >= 2 * market.transfer_notice_secs);
    assert_compux_err(env.send(&[settle(&new, 1, t)], &[&new]).await, CompuxError::NotRelayer);
    // The serving relayer keeps settling what it served meanwhile.
    assert_ok(env.send(&[settle(&old, 1, t)], &[&old]).await);
    let t2 = t + UPDATE_DELAY_SECS;
    env.set_time(t2).await;
    assert_ok(env.send(&[ix::apply_market_update(&m)], &[]).await);
    assert_compux_err(env.send(&[settle(&old, 2, t2)], &[&old]).await, CompuxError::NotRelayer);
    assert_ok(env.send(&[settle(&new, 2, t2)], &[&new]).await);

    // A compromised key is revoked at once, and a pending rotation cannot bring a key back.
    let another =
        MarketUpdate { relayer: Some(old.pubkey()), base_price: Some(2 * BASE_PRICE), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), another)], &[&admin]).await);
    let revoke = MarketUpdate { relayer: Some(Pubkey::default()), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), revoke)], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.relayer, Pubkey::default());
    let pending = env.pending().await;
    assert_eq!((pending.params.relayer, pending.params.base_price), (Pubkey::default(), 2 * BASE_PRICE));
    assert_compux_err(env.send(&[settle(&new, 3, t2)], &[&new]).await, CompuxError::NotRelayer);
    env.set_time(pending.effective_at).await;
    assert_ok(env.send(&[ix::apply_market_update(&m)], &[]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!((market.relayer, market.base_price), (Pubkey::default(), 2 * BASE_PRICE));
}

#[tokio::test]
async fn a_pause_applies_at_once_and_only_the_admin_schedules() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let alice = env.user(10_000_000).await;
    env.set_time(at_hour(10)).await;
    let pause = MarketUpdate { paused: Some(true), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), pause)], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert!(market.paused && !env.pending().await.is_pending(), "a pause schedules nothing");
    let buy = ix::buy_credits(&m, &alice.key(), &alice.quote, CREDIT, 1_000_000, 0);
    assert_compux_err(env.send(&[buy], &[&alice.kp]).await, CompuxError::MarketPaused);

    let mallory = env.user(0).await;
    let steal = MarketUpdate { relayer: Some(mallory.key()), ..Default::default() };
    let res = env.send(&[ix::update_market(&m, &mallory.key(), steal)], &[&mallory.kp]).await;
    assert_compux_err(res, CompuxError::NotAdmin);
    assert!(!env.pending().await.is_pending());

    // A copy of the market at another address: not the market's PDA.
    let forged = env.forged_market_with_pending(|_| {}).await;
    let mut apply = ix::apply_market_update(&m);
    apply.accounts[0].pubkey = forged;
    apply.accounts[1].pubkey = compux_sdk::pda::pending_update(&forged).0;
    assert_anchor_err(env.send(&[apply], &[]).await, ErrorCode::ConstraintSeeds);
    // Another market's change, due, applied to this one: not this market's pending change.
    let creator = Keypair::new();
    env.fund(&creator.pubkey(), 1_000_000_000).await;
    let other = env.create_market(&creator, env.quote_mint).await;
    let cheap = MarketUpdate { base_price: Some(1), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&other, &creator.pubkey(), cheap)], &[&creator]).await);
    env.set_time(at_hour(10) + UPDATE_DELAY_SECS).await;
    let mut apply = ix::apply_market_update(&m);
    apply.accounts[1].pubkey = other.pending;
    assert_anchor_err(env.send(&[apply], &[]).await, ErrorCode::ConstraintSeeds);
    // Nor can this market's admin schedule into another market's pending change.
    let dear = MarketUpdate { base_price: Some(3 * BASE_PRICE), ..Default::default() };
    let mut update = ix::update_market(&m, &admin.pubkey(), dear);
    update.accounts[2].pubkey = other.pending;
    assert_anchor_err(env.send(&[update], &[&admin]).await, ErrorCode::ConstraintSeeds);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.base_price, BASE_PRICE);
}
