use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::{CreditAccount, MarketUpdate};
use compux_sdk::CompuxError;
use sha2::{Digest, Sha256};
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;

/// The documented chain step (docs/architecture.md), recomputed independently of the program.
fn chain(prev: [u8; 32], b: &SettleBatch) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"compux-usage-v1");
    h.update(prev);
    h.update(b.seq.to_le_bytes());
    h.update(b.amount.to_le_bytes());
    h.update(b.batch_root);
    h.update(b.window_end.to_le_bytes());
    h.finalize().into()
}

async fn funded() -> (TestEnv, User, Keypair, i64) {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;
    let t = at_hour(10);
    env.set_time(t).await;
    assert_ok(
        env.send(
            &[ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 1_000_000, 0)],
            &[&alice.kp],
        )
        .await,
    );
    let relayer = env.relayer.insecure_clone();
    (env, alice, relayer, t)
}

#[tokio::test]
async fn settle_burns_and_chains_batch_roots() {
    let (mut env, alice, relayer, t) = funded().await;
    let m = env.market;
    let b1 = SettleBatch { seq: 1, amount: 30 * CREDIT, batch_root: [1; 32], window_end: t - 60 };
    let logs =
        assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, b1)], &[&relayer]).await);
    assert_eq!(env.balance(&alice.credit.vault).await, 70 * CREDIT);
    assert_eq!(env.mint(&m.credit_mint).await.supply, 70 * CREDIT);
    env.assert_supply_matches_vaults().await;

    let expected1 = chain([0; 32], &b1);
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(
        (
            acct.settlement.settled_seq,
            acct.settlement.usage_chain,
            acct.settlement.last_window_end,
            acct.settlement.total_settled
        ),
        (1, expected1, t - 60, 30 * CREDIT)
    );
    match &events_from_logs(&logs)[..] {
        [CompuxEvent::UsageSettled(e)] => {
            assert_eq!(
                (e.source, e.seq, e.amount, e.batch_root, e.usage_chain, e.vault_balance),
                (alice.credit.address, 1, 30 * CREDIT, [1; 32], expected1, 70 * CREDIT)
            );
        }
        other => panic!("unexpected events {other:?}"),
    }

    // Settlement continues while the market is paused: the usage was already served.
    let admin = env.admin.insecure_clone();
    let pause = MarketUpdate { paused: Some(true), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), pause)], &[&admin]).await);
    // The same window end as the previous batch is allowed; the whole balance may be burned.
    let b2 = SettleBatch { seq: 2, amount: 70 * CREDIT, batch_root: [2; 32], window_end: t - 60 };
    assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, b2)], &[&relayer]).await);
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!((acct.settlement.settled_seq, acct.settlement.usage_chain), (2, chain(expected1, &b2)));
    assert_eq!(env.balance(&alice.credit.vault).await, 0);
    assert_eq!(env.mint(&m.credit_mint).await.supply, 0);
}

#[tokio::test]
async fn settle_rejects_replay_gap_overdraw_clock_games_and_impostors() {
    let (mut env, alice, relayer, t) = funded().await;
    let m = env.market;
    let batch =
        |seq, amount, window_end| SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end };
    let settle = |b| ix::settle(&m, &relayer.pubkey(), &alice.credit, b);
    assert_ok(env.send(&[settle(batch(1, 10 * CREDIT, t - 100))], &[&relayer]).await);

    assert_compux_err(
        env.send(&[settle(batch(1, 10 * CREDIT, t - 100))], &[&relayer]).await,
        CompuxError::SettleReplay,
    );
    assert_compux_err(
        env.send(&[settle(batch(0, 10 * CREDIT, t - 100))], &[&relayer]).await,
        CompuxError::SettleReplay,
    );
    assert_compux_err(
        env.send(&[settle(batch(3, 10 * CREDIT, t - 100))], &[&relayer]).await,
        CompuxError::SettleGap,
    );
    assert_compux_err(
        env.send(&[settle(batch(u64::MAX, 1, t - 100))], &[&relayer]).await,
        CompuxError::SettleGap,
    );
    assert_compux_err(
        env.send(&[settle(batch(2, 90 * CREDIT + 1, t))], &[&relayer]).await,
        CompuxError::InsufficientCredits,
    );
    assert_compux_err(
        env.send(&[settle(batch(2, u64::MAX, t))], &[&relayer]).await,
        CompuxError::InsufficientCredits,
    );
    assert_compux_err(env.send(&[settle(batch(2, 0, t))], &[&relayer]).await, CompuxError::ZeroAmount);
    assert_compux_err(
        env.send(&[settle(batch(2, CREDIT, t - 101))], &[&relayer]).await,
        CompuxError::SettleWindowRegressed,
    );
    assert_compux_err(
        env.send(&[settle(batch(2, CREDIT, t + 1))], &[&relayer]).await,
        CompuxError::SettleWindowInFuture,
    );

    // Someone other than the market's relayer, and the relayer's key without its signature.
    let b = batch(2, CREDIT, t);
    let res = env.send(&[ix::settle(&m, &alice.key(), &alice.credit, b)], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::NotRelayer);
    let mut unsigned = settle(b);
    unsigned.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[unsigned], &[]).await, ErrorCode::AccountNotSigner);

    // Another market's credit account, burned under this market's relayer.
    let creator = Keypair::new();
    env.fund(&creator.pubkey(), 1_000_000_000).await;
    let quote_mint = env.quote_mint;
    let other = env.create_market(&creator, quote_mint).await;
    let carol = env.user_in(other, 0).await;
    let res = env.send(&[ix::settle(&m, &relayer.pubkey(), &carol.credit, b)], &[&relayer]).await;
    assert_anchor_err(res, ErrorCode::ConstraintSeeds);

    // A copy of the market at another address, naming alice as its relayer (refused by the
    // market's seeds, and by the credit account's, which derive from the market address).
    let forged_market = env.forged_market(|m| m.relayer = alice.key()).await;
    let mut ixn = ix::settle(&m, &alice.key(), &alice.credit, b);
    ixn.accounts[1].pubkey = forged_market;
    assert_anchor_err(env.send(&[ixn], &[&alice.kp]).await, ErrorCode::ConstraintSeeds);

    // Alice's account with another vault.
    let bob = env.user(0).await;
    let mut ixn = settle(b);
    ixn.accounts[3].pubkey = bob.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&relayer]).await, CompuxError::WrongVault);

    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(
        (acct.settlement.settled_seq, acct.settlement.total_settled),
        (1, 10 * CREDIT),
        "no refused batch changed state"
    );
    assert_eq!(env.balance(&alice.credit.vault).await, 90 * CREDIT);
    assert_ok(env.send(&[settle(b)], &[&relayer]).await);
}
