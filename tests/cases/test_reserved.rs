use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::events::ReservationOutcome;
use compux_sdk::ix::{self, ReserveParams};
use compux_sdk::state::{CreditAccount, Market, MarketUpdate, Reservation};
use compux_sdk::CompuxError;
use solana_sdk::signature::Signer;

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;

/// 4 monthly periods of 500 credits: the 90 days committed beyond the first period take the
/// 20 % discount, so the locked price is 8_000 per credit and each period costs 4_000_000
/// (1_000_000 less than at the base price). The deposit is the 5 % fee on the 16_000_000
/// commitment (800_000) plus room to claw back three periods' discount (3_000_000).
fn quarterly() -> ReserveParams {
    ReserveParams {
        credits_per_period: 500 * CREDIT,
        periods: 4,
        period_secs: 30 * DAY,
        max_price: 8_000,
        max_deposit: DEPOSIT,
        max_fee: 800_000,
    }
}
const DEPOSIT: u64 = 3_800_000;
const FEE: u64 = 800_000;

#[tokio::test]
async fn reservation_lifecycle_claims_every_period_and_returns_deposit() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(20_000_000).await;
    let t0 = at_hour(PEAK_HOUR); // the hour multiplier does not apply to reservations
    env.set_time(t0).await;

    let logs = assert_ok(
        env.send(&[ix::reserve(&m, &alice.key(), &alice.quote, 0, quarterly())], &[&alice.kp]).await,
    );
    let res_addr = alice.credit.reservation(0);
    let r: Reservation = env.state(&res_addr).await;
    assert_eq!(
        (r.locked_price, r.discount_bps, r.period_cost, r.deposit, r.fee, r.period_discount, r.start_ts),
        (8_000, 2_000, 4_000_000, DEPOSIT, FEE, 1_000_000, t0)
    );
    assert_eq!(env.balance(&alice.quote).await, 20_000_000 - DEPOSIT);
    assert_eq!(env.balance(&m.deposit_vault).await, DEPOSIT);
    assert!(
        matches!(&events_from_logs(&logs)[..], [CompuxEvent::ReservationCreated(e)] if e.deposit == DEPOSIT)
    );

    let mut quote = 20_000_000 - DEPOSIT;
    for period in 0..4u64 {
        if period > 0 {
            // A second claim inside the same period is refused: the next window has not opened.
            let res = env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await;
            assert_compux_err(res, CompuxError::PeriodNotStarted);
            env.set_time(t0 + period as i64 * 30 * DAY + 5).await;
        }
        let logs =
            assert_ok(env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await);
        quote -= 4_000_000;
        assert_eq!(env.balance(&alice.credit.vault).await, (period + 1) * 500 * CREDIT);
        assert_eq!(env.balance(&m.treasury).await, (period + 1) * 4_000_000);
        env.assert_supply_matches_vaults().await;
        if period == 3 {
            quote += DEPOSIT; // the whole deposit comes back with the last claim
            assert!(matches!(&events_from_logs(&logs)[..],
                [CompuxEvent::ReservationPeriodClaimed(c), CompuxEvent::ReservationEnded(e)]
                    if c.period == 3 && e.outcome == ReservationOutcome::Completed && e.deposit == DEPOSIT && e.forfeited == 0));
        }
        assert_eq!(env.balance(&alice.quote).await, quote);
    }
    assert!(env.account(&res_addr).await.is_none(), "completed reservation is closed");
    assert_eq!(env.balance(&m.deposit_vault).await, 0);
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.deposits_outstanding, 0);
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!((acct.total_reserved_claimed, acct.reservation_count), (2_000 * CREDIT, 1));
}

#[tokio::test]
async fn missed_period_lapses_and_forfeits_deposit() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(20_000_000).await;
    let t0 = at_hour(9);
    env.set_time(t0).await;
    // 2 daily periods: no discount (term < 30 days), cost 1_000_000 per period, deposit 100_000.
    let p = ReserveParams {
        credits_per_period: 100 * CREDIT,
        periods: 2,
        period_secs: DAY,
        max_price: 10_000,
        max_deposit: u64::MAX,
        max_fee: u64::MAX,
    };
    assert_ok(env.send(&[ix::reserve(&m, &alice.key(), &alice.quote, 0, p)], &[&alice.kp]).await);
    assert_ok(env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await);

    // Period 1 is open until t0 + 2 days: not lapsed yet, even one second before.
    env.set_time(t0 + 2 * DAY - 1).await;
    assert_compux_err(
        env.send(&[ix::lapse_reservation(&m, &alice.key(), &alice.quote, 0)], &[]).await,
        CompuxError::ReservationNotLapsed,
    );

    env.set_time(t0 + 2 * DAY).await;
    let res = env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::ReservationLapsed);

    let res_addr = alice.credit.reservation(0);
    let rent = env.account(&res_addr).await.unwrap().lamports;
    let owner_lamports = env.account(&alice.key()).await.unwrap().lamports;
    let treasury = env.balance(&m.treasury).await;
    // Permissionless: only the test payer signs.
    let logs = assert_ok(env.send(&[ix::lapse_reservation(&m, &alice.key(), &alice.quote, 0)], &[]).await);
    assert!(
        matches!(&events_from_logs(&logs)[..], [CompuxEvent::ReservationEnded(e)] if e.outcome == ReservationOutcome::Lapsed)
    );
    assert_eq!(env.balance(&m.treasury).await, treasury + 100_000);
    assert_eq!(env.balance(&m.deposit_vault).await, 0);
    assert_eq!(
        env.account(&alice.key()).await.unwrap().lamports,
        owner_lamports + rent,
        "rent back to the owner"
    );
    assert!(env.account(&res_addr).await.is_none());
    assert_eq!(env.balance(&alice.quote).await, 20_000_000 - 100_000 - 1_000_000);
}

#[tokio::test]
async fn cancel_forfeits_the_fee_and_only_the_owner_may_cancel() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(20_000_000).await;
    let bob = env.user(0).await;
    env.set_time(at_hour(9)).await;
    assert_ok(env.send(&[ix::reserve(&m, &alice.key(), &alice.quote, 0, quarterly())], &[&alice.kp]).await);

    let mut ixn = ix::cancel_reservation(&m, &bob.key(), &bob.quote, 0);
    ixn.accounts[2].pubkey = alice.credit.reservation(0);
    assert_compux_err(env.send(&[ixn], &[&bob.kp]).await, CompuxError::NotAccountOwner);

    // The refund goes to the owner's account only.
    let mut ixn = ix::cancel_reservation(&m, &alice.key(), &alice.quote, 0);
    ixn.accounts[5].pubkey = bob.quote;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongTokenOwner);

    // Nothing claimed: only the fee is forfeited; the clawback room comes back.
    let logs =
        assert_ok(env.send(&[ix::cancel_reservation(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await);
    assert!(
        matches!(&events_from_logs(&logs)[..], [CompuxEvent::ReservationEnded(e)] if e.outcome == ReservationOutcome::Cancelled && e.claimed_periods == 0 && e.forfeited == FEE)
    );
    assert_eq!(env.balance(&m.treasury).await, FEE);
    assert_eq!(env.balance(&alice.quote).await, 20_000_000 - FEE);
    assert!(env.account(&alice.credit.reservation(0)).await.is_none());
    let market: Market = env.state(&m.market).await;
    assert_eq!(market.deposits_outstanding, 0);

    // Cancelling again: the account is gone.
    let res = env.send(&[ix::cancel_reservation(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await;
    assert_anchor_err(res, ErrorCode::AccountNotInitialized);
}

#[tokio::test]
async fn reserve_validates_terms_price_pause_nonce_and_clock() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let admin = env.admin.insecure_clone();
    let alice = env.user(20_000_000).await;
    let t0 = at_hour(9);
    env.set_time(t0).await;
    let send = |p: ReserveParams, nonce| ix::reserve(&m, &alice.key(), &alice.quote, nonce, p);

    let mut p = quarterly();
    p.max_price = 7_999;
    assert_compux_err(env.send(&[send(p, 0)], &[&alice.kp]).await, CompuxError::PriceAboveMax);
    for bad in [
        ReserveParams { periods: 0, ..quarterly() },
        ReserveParams { periods: 521, ..quarterly() },
        ReserveParams { period_secs: 59, ..quarterly() },
        ReserveParams { period_secs: 367 * DAY, ..quarterly() },
    ] {
        assert_compux_err(env.send(&[send(bad, 0)], &[&alice.kp]).await, CompuxError::InvalidTerm);
    }
    let single = ReserveParams { periods: 1, period_secs: 90 * DAY, ..quarterly() };
    assert_compux_err(env.send(&[send(single, 0)], &[&alice.kp]).await, CompuxError::CommitmentTooShort);
    let zero = ReserveParams { credits_per_period: 0, ..quarterly() };
    assert_compux_err(env.send(&[send(zero, 0)], &[&alice.kp]).await, CompuxError::ZeroAmount);
    let huge = ReserveParams { credits_per_period: u64::MAX, max_price: u64::MAX, ..quarterly() };
    assert_compux_err(env.send(&[send(huge, 0)], &[&alice.kp]).await, CompuxError::MathOverflow);
    // A nonce other than the account's reservation count, at that nonce's own address.
    assert_compux_err(
        env.send(&[send(quarterly(), 1)], &[&alice.kp]).await,
        CompuxError::WrongReservationNonce,
    );
    // The right nonce at another address.
    let mut elsewhere = send(quarterly(), 0);
    elsewhere.accounts[3].pubkey = alice.credit.reservation(1);
    assert_anchor_err(env.send(&[elsewhere], &[&alice.kp]).await, ErrorCode::ConstraintSeeds);

    let pause = MarketUpdate { paused: Some(true), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), pause)], &[&admin]).await);
    assert_compux_err(env.send(&[send(quarterly(), 0)], &[&alice.kp]).await, CompuxError::MarketPaused);
    assert_eq!(env.balance(&alice.quote).await, 20_000_000, "nothing taken by refused reservations");
    let resume = MarketUpdate { paused: Some(false), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), resume)], &[&admin]).await);

    assert_ok(env.send(&[send(quarterly(), 0)], &[&alice.kp]).await);
    // Clock moved back before the start: nothing is claimable yet.
    env.set_time(t0 - 1).await;
    let res = env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::PeriodNotStarted);
    // A pause does not block claims on a locked price (it must not make a reservation lapse).
    env.set_time(t0).await;
    let pause = MarketUpdate { paused: Some(true), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), pause)], &[&admin]).await);
    assert_ok(env.send(&[ix::claim_period(&m, &alice.key(), &alice.quote, 0)], &[&alice.kp]).await);
    assert_eq!(env.balance(&alice.credit.vault).await, 500 * CREDIT);
}
