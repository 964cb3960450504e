use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::state::{CreditAccount, MarketUpdate};
use compux_sdk::{ix, CompuxError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;

#[tokio::test]
async fn open_credit_account_creates_program_controlled_vault() {
    let mut env = TestEnv::new().await;
    let alice = env.user(0).await;
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!((acct.market, acct.owner, acct.vault), (env.market.market, alice.key(), alice.credit.vault));
    assert_eq!((acct.settlement.settled_seq, acct.settlement.usage_chain), (0, [0u8; 32]));
    let vault = env.token_account(&alice.credit.vault).await;
    assert_eq!((vault.mint, vault.owner, vault.amount), (env.market.credit_mint, env.market.market, 0));

    // Re-opening fails and leaves the account as it was.
    let res = env.send(&[ix::open_credit_account(&env.market.clone(), &alice.key())], &[&alice.kp]).await;
    assert!(res.is_err(), "re-initialisation must fail");
    let again: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(again.vault, acct.vault);

    // A credit mint other than the market's.
    let bob = solana_sdk::signature::Keypair::new();
    env.fund(&bob.pubkey(), 1_000_000_000).await;
    let other_mint = env.create_mint(6).await;
    let mut ixn = ix::open_credit_account(&env.market.clone(), &bob.pubkey());
    ixn.accounts[3].pubkey = other_mint;
    assert_compux_err(env.send(&[ixn], &[&bob]).await, CompuxError::WrongMint);
}

#[tokio::test]
async fn buy_at_peak_and_off_peak_hours_charges_exact_quote() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;

    // 15:00 UTC is peak (x1.25): 100 credits x 10_000 x 1.25 = 1_250_000 quote units.
    env.set_time(at_hour(PEAK_HOUR) + 1_234).await;
    let logs = assert_ok(
        env.send(
            &[ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 1_250_000, 0)],
            &[&alice.kp],
        )
        .await,
    );
    assert_eq!(env.balance(&alice.quote).await, 8_750_000);
    assert_eq!(env.balance(&m.treasury).await, 1_250_000);
    assert_eq!(env.balance(&alice.credit.vault).await, 100 * CREDIT);
    env.assert_supply_matches_vaults().await;
    match &events_from_logs(&logs)[..] {
        [CompuxEvent::CreditsPurchased(e)] => {
            assert_eq!(
                (e.credits, e.bonus_credits, e.quote_in, e.hour, e.multiplier_bps),
                (100 * CREDIT, 0, 1_250_000, 15, PEAK_BPS)
            );
            assert!(!e.auto_refill);
        }
        other => panic!("unexpected events {other:?}"),
    }

    // 03:00 UTC is off-peak (x0.6): 100 credits cost 600_000.
    env.set_time(at_hour(OFF_PEAK_HOUR)).await;
    assert_ok(
        env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, 600_000, 0)], &[&alice.kp])
            .await,
    );
    assert_eq!(env.balance(&alice.quote).await, 8_150_000);
    assert_eq!(env.balance(&m.treasury).await, 1_850_000);
    assert_eq!(env.balance(&alice.credit.vault).await, 200 * CREDIT);
    env.assert_supply_matches_vaults().await;

    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!((acct.total_purchased, acct.total_quote_paid, acct.total_bonus), (200 * CREDIT, 1_850_000, 0));

    // One base unit of a credit still costs one quote unit: rounding never gives it away.
    assert_ok(env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 1, 1, 0)], &[&alice.kp]).await);
    assert_eq!(env.balance(&alice.quote).await, 8_149_999);
}

#[tokio::test]
async fn bulk_bonus_applies_from_each_tier_boundary() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(1_000_000_000).await;
    env.set_time(at_hour(10)).await; // list price, x1.0

    // (credits bought, expected bonus, expected quote)
    let cases = [
        (TIER1_MIN - 1, 0, 10_000_000), // 999.999999 credits: 9_999_999.99 rounds up
        (TIER1_MIN, 50 * CREDIT, 10_000_000), // 5 % of 1_000
        (TIER2_MIN - 1, 499_999_999, 100_000_000), // 5 % of 9_999.999999, rounded down
        (TIER2_MIN, 1_000 * CREDIT, 100_000_000), // 10 % of 10_000
    ];
    let mut vault = 0;
    let mut paid = 0;
    for (credits, bonus, quote) in cases {
        assert_ok(
            env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, credits, quote, 0)], &[&alice.kp])
                .await,
        );
        vault += credits + bonus;
        paid += quote;
        assert_eq!(env.balance(&alice.credit.vault).await, vault, "bonus at {credits}");
        assert_eq!(env.balance(&m.treasury).await, paid, "quote at {credits}");
        env.assert_supply_matches_vaults().await;
    }
}

#[tokio::test]
async fn slippage_pause_and_bad_amounts_are_rejected_without_side_effects() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let admin = env.admin.insecure_clone();
    let alice = env.user(10_000_000).await;
    env.set_time(at_hour(PEAK_HOUR)).await;

    let buy = |max| ix::buy_credits(&m, &alice.key(), &alice.quote, 100 * CREDIT, max, 0);
    assert_compux_err(env.send(&[buy(1_249_999)], &[&alice.kp]).await, CompuxError::SlippageExceeded);
    assert_compux_err(
        env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 0, 1, 0)], &[&alice.kp]).await,
        CompuxError::ZeroAmount,
    );
    // u64::MAX credits: the price overflows u64 before any token moves.
    let huge = ix::buy_credits(&m, &alice.key(), &alice.quote, u64::MAX, u64::MAX, 0);
    assert_compux_err(env.send(&[huge], &[&alice.kp]).await, CompuxError::MathOverflow);

    let pause = MarketUpdate { paused: Some(true), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), pause)], &[&admin]).await);
    assert_compux_err(env.send(&[buy(u64::MAX)], &[&alice.kp]).await, CompuxError::MarketPaused);

    assert_eq!(env.balance(&alice.quote).await, 10_000_000);
    assert_eq!(env.balance(&alice.credit.vault).await, 0);

    let resume = MarketUpdate { paused: Some(false), ..Default::default() };
    assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), resume)], &[&admin]).await);
    assert_ok(env.send(&[buy(1_250_000)], &[&alice.kp]).await);
}

#[tokio::test]
async fn buy_rejects_forged_and_mismatched_accounts() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;
    let bob = env.user(10_000_000).await;
    env.set_time(at_hour(10)).await;
    let buy = |who: &User| ix::buy_credits(&m, &who.key(), &who.quote, CREDIT, 10_000, 0);

    // Missing signer: alice's key in the owner slot, but she did not sign.
    let mut unsigned = buy(&alice);
    unsigned.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[unsigned], &[]).await, ErrorCode::AccountNotSigner);

    // Bob signs for alice's credit account.
    let mut ixn = buy(&bob);
    ixn.accounts[2].pubkey = alice.credit.address;
    ixn.accounts[3].pubkey = alice.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&bob.kp]).await, CompuxError::NotAccountOwner);

    // Alice's credit account with bob's vault.
    let mut ixn = buy(&alice);
    ixn.accounts[3].pubkey = bob.credit.vault;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongVault);

    // An exact copy of alice's credit account, program-owned, at an address that is not its PDA.
    let real = env.account(&alice.credit.address).await.unwrap();
    let forged = Pubkey::new_unique();
    env.set_account(&forged, real.clone()).await;
    let mut ixn = buy(&alice);
    ixn.accounts[2].pubkey = forged;
    assert_anchor_err(env.send(&[ixn], &[&alice.kp]).await, ErrorCode::ConstraintSeeds);

    // A quote account of another mint.
    let other_mint = env.create_mint(6).await;
    let wrong_quote = env.create_token_account(&other_mint, &alice.key()).await;
    env.mint_to(&other_mint, &wrong_quote, 10_000_000).await;
    let ixn = ix::buy_credits(&m, &alice.key(), &wrong_quote, CREDIT, 10_000, 0);
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongMint);

    // A treasury that is not the market's.
    let fake_treasury = env.create_token_account(&m.quote_mint, &alice.key()).await;
    let mut ixn = buy(&alice);
    ixn.accounts[6].pubkey = fake_treasury;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongVault);

    // A credit mint that is not the market's.
    let mut ixn = buy(&alice);
    ixn.accounts[4].pubkey = other_mint;
    assert_compux_err(env.send(&[ixn], &[&alice.kp]).await, CompuxError::WrongMint);

    // A byte-exact copy of the market at an address that is not its PDA.
    let forged_market = env.forged_market(|_| {}).await;
    let mut ixn = buy(&alice);
    ixn.accounts[1].pubkey = forged_market;
    assert_anchor_err(env.send(&[ixn], &[&alice.kp]).await, ErrorCode::ConstraintSeeds);

    // The real credit account, but owned by another program (same bytes).
    let mut hijacked = real;
    hijacked.owner = anchor_spl::token::ID;
    env.set_account(&alice.credit.address, hijacked).await;
    assert_anchor_err(env.send(&[buy(&alice)], &[&alice.kp]).await, ErrorCode::AccountOwnedByWrongProgram);

    assert_eq!(env.balance(&m.treasury).await, 0, "no attack moved quote");
}
