use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::CreditAccount;
use compux_sdk::CompuxError;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;
const T0: i64 = DAY0 + 10 * 3_600;

/// Alice holds 100 credits, bought at 10:00 UTC (T0); Bob none.
async fn env_with_credits() -> (TestEnv, User, User) {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;
    let bob = env.user(0).await;
    env.set_time(T0).await;
    assert_ok(
        env.send(
            &[ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 1_000_000, 0)],
            &[&alice.kp],
        )
        .await,
    );
    (env, alice, bob)
}

/// Alice announces `amount` and waits the market's notice.
async fn announced(env: &mut TestEnv, alice: &User, amount: u64) {
    let m = env.market;
    assert_ok(env.send(&[ix::announce_transfer(&m, &alice.key(), amount)], &[&alice.kp]).await);
    let ready = env.state::<CreditAccount>(&alice.credit.address).await.notice.ready_at;
    env.set_time(ready).await;
}

#[tokio::test]
async fn transfer_moves_standard_credits_between_accounts() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;
    announced(&mut env, &alice, 40 * CREDIT).await;
    let logs = assert_ok(
        env.send(&[ix::transfer_credits(&m, &alice.key(), &bob.key(), 40 * CREDIT)], &[&alice.kp]).await,
    );
    assert_eq!(env.balance(&alice.credit.vault).await, 60 * CREDIT);
    assert_eq!(env.balance(&bob.credit.vault).await, 40 * CREDIT);
    env.assert_supply_matches_vaults().await;
    let (a, b): (CreditAccount, CreditAccount) =
        (env.state(&alice.credit.address).await, env.state(&bob.credit.address).await);
    assert_eq!((a.total_transferred_out, b.total_transferred_in), (40 * CREDIT, 40 * CREDIT));
    assert_eq!(a.notice.amount, 0, "the notice is spent");
    assert!(matches!(&events_from_logs(&logs)[..],
        [CompuxEvent::CreditsTransferred(e)] if e.from == alice.credit.address && e.to == bob.credit.address && e.amount == 40 * CREDIT));
}

/// Credits leave a vault only after a notice the relayer sees at once and a delay longer
/// than its settlement: the attack of spending a balance through the relayer and moving it
/// before the usage is burned (issue 24) gains nothing.
#[tokio::test]
async fn credits_leave_a_vault_only_after_their_notice_and_what_was_burned_meanwhile_stays_burned() {
    let (mut env, alice, bob) = env_with_credits().await;
    let (m, relayer) = (env.market, env.relayer.insecure_clone());
    let transfer = |amount| ix::transfer_credits(&m, &alice.key(), &bob.key(), amount);
    assert_compux_err(env.send(&[transfer(CREDIT)], &[&alice.kp]).await, CompuxError::TransferNotAnnounced);

    let logs =
        assert_ok(env.send(&[ix::announce_transfer(&m, &alice.key(), 100 * CREDIT)], &[&alice.kp]).await);
    let ready = T0 + TRANSFER_NOTICE_SECS;
    assert!(matches!(&events_from_logs(&logs)[..],
        [CompuxEvent::TransferAnnounced(e)] if e.account == alice.credit.address && e.amount == 100 * CREDIT && e.ready_at == ready));
    let res = env.send(&[transfer(100 * CREDIT)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::TransferNotReady);
    env.set_time(ready - 1).await;
    assert_compux_err(env.send(&[transfer(CREDIT)], &[&alice.kp]).await, CompuxError::TransferNotReady);

    // Meanwhile the relayer burns the usage it charged before it saw the notice.
    let b = SettleBatch { seq: 1, amount: 30 * CREDIT, batch_root: [1; 32], window_end: T0 - 1 };
    assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, b)], &[&relayer]).await);

    env.set_time(ready).await;
    let res = env.send(&[transfer(100 * CREDIT)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::InsufficientCredits);
    assert_ok(env.send(&[transfer(70 * CREDIT)], &[&alice.kp]).await);
    assert_eq!(env.balance(&bob.credit.vault).await, 70 * CREDIT, "only what the usage left");
    assert_eq!(env.mint(&m.credit_mint).await.supply, 70 * CREDIT, "the usage stays burned");
    let a: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(a.notice.amount, 30 * CREDIT, "the rest of the notice stands");
    assert_compux_err(
        env.send(&[transfer(30 * CREDIT + 1)], &[&alice.kp]).await,
        CompuxError::TransferNotAnnounced,
    );
}

#[tokio::test]
async fn a_larger_notice_waits_anew_a_smaller_one_keeps_its_time_and_zero_withdraws_it() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;
    let announce = |amount| ix::announce_transfer(&m, &alice.key(), amount);
    assert_ok(env.send(&[announce(10 * CREDIT)], &[&alice.kp]).await);
    env.set_time(T0 + 600).await;
    assert_ok(env.send(&[announce(50 * CREDIT)], &[&alice.kp]).await);
    let notice = env.state::<CreditAccount>(&alice.credit.address).await.notice;
    assert_eq!(notice.ready_at, T0 + 600 + TRANSFER_NOTICE_SECS, "more credits, a new wait");
    env.set_time(T0 + 700).await;
    assert_ok(env.send(&[announce(20 * CREDIT)], &[&alice.kp]).await);
    let n = env.state::<CreditAccount>(&alice.credit.address).await.notice;
    assert_eq!((n.amount, n.ready_at), (20 * CREDIT, T0 + 600 + TRANSFER_NOTICE_SECS), "fewer keep the time");
    assert_ok(env.send(&[announce(0)], &[&alice.kp]).await);
    env.set_time(T0 + 600 + TRANSFER_NOTICE_SECS).await;
    let res = env.send(&[ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::TransferNotAnnounced);
}

#[tokio::test]
async fn announce_attacks_are_rejected() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;
    // Bob announces a transfer out of alice's account.
    let mut ixn = ix::announce_transfer(&m, &bob.key(), CREDIT);
    ixn.accounts[2].pubkey = alice.credit.address;
    assert_compux_err(env.send(&[ixn], &[&bob.kp]).await, CompuxError::NotAccountOwner);
    // Alice's key without her signature.
    let mut ixn = ix::announce_transfer(&m, &alice.key(), CREDIT);
    ixn.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[ixn], &[]).await, ErrorCode::AccountNotSigner);
    // Alice's account in another market, announced against this one.
    let creator = Keypair::new();
    env.fund(&creator.pubkey(), 1_000_000_000).await;
    let quote_mint = env.quote_mint;
    let other = env.create_market(&creator, quote_mint).await;
    let carol = env.user_in(other, 0).await;
    let mut ixn = ix::announce_transfer(&m, &carol.key(), CREDIT);
    ixn.accounts[2].pubkey = carol.credit.address;
    assert_anchor_err(env.send(&[ixn], &[&carol.kp]).await, ErrorCode::ConstraintSeeds);
    let a: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(a.notice.amount, 0, "no attack announced anything");
}

#[tokio::test]
async fn transfer_attacks_are_rejected() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;
    announced(&mut env, &alice, 100 * CREDIT + 1).await;

    // More than the balance; zero.
    let res =
        env.send(&[ix::transfer_credits(&m, &alice.key(), &bob.key(), 100 * CREDIT + 1)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::InsufficientCredits);
    let res = env.send(&[ix::transfer_credits(&m, &alice.key(), &bob.key(), 0)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::ZeroAmount);

    // Bob signs a transfer out of alice's account.
    let mut ixn = ix::transfer_credits(&m, &bob.key(), &bob.key(), CREDIT);
    ixn.accounts[2].pubkey = alice.credit.address;
    ixn.accounts[3].pubkey = alice.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&bob.kp]).await, CompuxError::NotAccountOwner);

    // Alice's key without her signature.
    let mut ixn = ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT);
    ixn.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[ixn], &[]).await, ErrorCode::AccountNotSigner);

    // The same account as source and destination (duplicate mutable accounts).
    let res = env.send(&[ix::transfer_credits(&m, &alice.key(), &alice.key(), CREDIT)], &[&alice.kp]).await;
    assert_anchor_err(res, ErrorCode::ConstraintDuplicateMutableAccount);

    // Bob's account, but alice's vault as destination.
    let mut ixn = ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT);
    ixn.accounts[5].pubkey = alice.credit.vault;
    assert_anchor_err(env.send(&[ixn], &[&alice.kp]).await, ErrorCode::ConstraintDuplicateMutableAccount);
    let mut ixn = ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT);
    let stranger = env.user(0).await;
    ixn.accounts[5].pubkey = stranger.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongVault);

    // A credit account of another market (same quote mint, another creator).
    let creator = Keypair::new();
    env.fund(&creator.pubkey(), 1_000_000_000).await;
    let quote_mint = env.quote_mint;
    let other = env.create_market(&creator, quote_mint).await;
    let carol = env.user_in(other, 0).await;
    let mut ixn = ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT);
    ixn.accounts[4].pubkey = carol.credit.address;
    ixn.accounts[5].pubkey = carol.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::MarketMismatch);

    assert_eq!(env.balance(&alice.credit.vault).await, 100 * CREDIT, "no attack moved credits");
    assert_eq!(env.balance(&carol.credit.vault).await, 0);
}

/// Issue 24, attack 7: the relayer's key could burn anything up to a vault's balance. The
/// owner's daily ceiling bounds what a leaked key burns; lowering it waits the notice, so
/// the owner cannot use it to stop the burn of usage already served.
#[tokio::test]
async fn the_owners_burn_ceiling_bounds_a_leaked_relayer_key_and_cannot_block_served_usage() {
    let (mut env, alice, _bob) = env_with_credits().await;
    let (m, relayer) = (env.market, env.relayer.insecure_clone());
    let settle = |seq: u64, amount: u64, at: i64| {
        ix::settle(
            &m,
            &relayer.pubkey(),
            &alice.credit,
            SettleBatch { seq, amount, batch_root: [1; 32], window_end: at },
        )
    };
    let ceiling = |per_day| ix::set_burn_ceiling(&m, &alice.key(), per_day);
    // A first ceiling is a lower one: announced now, in force after the notice.
    let logs = assert_ok(env.send(&[ceiling(10 * CREDIT)], &[&alice.kp]).await);
    let applies = T0 + TRANSFER_NOTICE_SECS;
    assert!(matches!(&events_from_logs(&logs)[..],
        [CompuxEvent::BurnCeilingSet(e)] if e.per_day == 10 * CREDIT && e.applies_at == applies));
    // Usage served before it still burns in full.
    let b = settle(1, 25 * CREDIT, T0 - 1);
    assert_ok(env.send(&[b], &[&relayer]).await);
    // In force: 10 a day, counted per UTC day.
    env.set_time(applies).await;
    let burned_today = 25 * CREDIT; // the day of T0 already burned 25
    assert!(burned_today > 10 * CREDIT);
    let b = settle(2, 1, applies - 1);
    assert_compux_err(env.send(&[b], &[&relayer]).await, CompuxError::BurnCeilingExceeded);
    let next_day = (T0.div_euclid(DAY) + 1) * DAY;
    env.set_time(next_day + 60).await;
    let b = settle(2, 10 * CREDIT + 1, next_day + 30);
    assert_compux_err(env.send(&[b], &[&relayer]).await, CompuxError::BurnCeilingExceeded);
    let b = settle(2, 10 * CREDIT, next_day + 30);
    assert_ok(env.send(&[b], &[&relayer]).await);
    let b = settle(3, 1, next_day + 31);
    assert_compux_err(env.send(&[b], &[&relayer]).await, CompuxError::BurnCeilingExceeded);
    assert_eq!(env.balance(&alice.credit.vault).await, 65 * CREDIT, "a leaked key burned 10 that day");
    // Raising it applies at once; another account's owner cannot touch it.
    assert_ok(env.send(&[ceiling(30 * CREDIT)], &[&alice.kp]).await);
    let b = settle(3, 10 * CREDIT, next_day + 40);
    assert_ok(env.send(&[b], &[&relayer]).await);
    let stranger = env.user(0).await;
    let mut ixn = ix::set_burn_ceiling(&m, &stranger.key(), 1);
    ixn.accounts[2].pubkey = alice.credit.address;
    assert_compux_err(env.send(&[ixn], &[&stranger.kp]).await, CompuxError::NotAccountOwner);
    // Lowering waits again: what the relayer charged meanwhile still burns.
    assert_ok(env.send(&[ceiling(CREDIT)], &[&alice.kp]).await);
    let a: CreditAccount = env.state(&alice.credit.address).await;
    let c = a.burn_ceiling;
    assert_eq!(
        (c.per_day, c.lower_to, c.lower_at),
        (30 * CREDIT, CREDIT, next_day + 60 + TRANSFER_NOTICE_SECS)
    );
    assert_eq!(c.room(next_day + 60), 0, "the relayer admits nothing more today: 20 burned, 1 announced");
    // Usage the relayer charged before it saw the announcement burns under the old 30.
    let b = settle(4, 5 * CREDIT, next_day + 50);
    assert_ok(env.send(&[b], &[&relayer]).await);
}
