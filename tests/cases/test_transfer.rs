use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::state::CreditAccount;
use compux_sdk::{ix, CompuxError};
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;

async fn env_with_credits() -> (TestEnv, User, User) {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;
    let bob = env.user(0).await;
    env.set_time(at_hour(10)).await;
    assert_ok(
        env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 1_000_000)], &[&alice.kp])
            .await,
    );
    (env, alice, bob)
}

#[tokio::test]
async fn transfer_moves_standard_credits_between_accounts() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;
    let logs = assert_ok(
        env.send(&[ix::transfer_credits(&m, &alice.key(), &bob.key(), 40 * CREDIT)], &[&alice.kp]).await,
    );
    assert_eq!(env.balance(&alice.credit.vault).await, 60 * CREDIT);
    assert_eq!(env.balance(&bob.credit.vault).await, 40 * CREDIT);
    env.assert_supply_matches_vaults().await;
    let (a, b): (CreditAccount, CreditAccount) =
        (env.state(&alice.credit.address).await, env.state(&bob.credit.address).await);
    assert_eq!((a.total_transferred_out, b.total_transferred_in), (40 * CREDIT, 40 * CREDIT));
    assert!(matches!(&events_from_logs(&logs)[..],
        [CompuxEvent::CreditsTransferred(e)] if e.from == alice.credit.address && e.to == bob.credit.address && e.amount == 40 * CREDIT));
}

#[tokio::test]
async fn transfer_attacks_are_rejected() {
    let (mut env, alice, bob) = env_with_credits().await;
    let m = env.market;

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
