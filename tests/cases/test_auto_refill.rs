use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::ix::{self, AutoRefillParams, SettleBatch};
use compux_sdk::state::CreditAccount;
use compux_sdk::CompuxError;
use solana_sdk::program_option::COption;
use solana_sdk::signature::Signer;

use crate::program_test::*;

const CREDIT: u64 = 1_000_000;

/// Below 50 credits, buy 100 (1_000_000 quote at list price), at most 1_000_000 per refill
/// and 2_500_000 in all: two refills fit, the third does not.
fn params() -> AutoRefillParams {
    AutoRefillParams {
        threshold: 50 * CREDIT,
        refill_credits: 100 * CREDIT,
        max_quote_per_refill: 1_000_000,
        min_credits_per_refill: 100 * CREDIT,
        cap_quote: 2_500_000,
    }
}

#[tokio::test]
async fn auto_refill_buys_below_threshold_within_cap() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let relayer = env.relayer.insecure_clone();
    let alice = env.user(10_000_000).await;
    env.set_time(at_hour(10)).await;
    assert_ok(
        env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 10 * CREDIT, 100_000, 0)], &[&alice.kp])
            .await,
    );
    assert_ok(
        env.send(&[ix::configure_auto_refill(&m, &alice.key(), &alice.quote, params())], &[&alice.kp]).await,
    );
    let source = env.token_account(&alice.quote).await;
    assert_eq!((source.delegate, source.delegated_amount), (COption::Some(m.market), 2_500_000));

    // Anyone may crank it (only the test payer signs).
    let logs = assert_ok(env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await);
    assert_eq!(env.balance(&alice.credit.vault).await, 110 * CREDIT);
    assert_eq!(env.balance(&alice.quote).await, 9_900_000 - 1_000_000);
    assert_eq!(env.balance(&m.treasury).await, 1_100_000);
    env.assert_supply_matches_vaults().await;
    assert!(
        matches!(&events_from_logs(&logs)[..], [CompuxEvent::CreditsPurchased(e)] if e.auto_refill && e.quote_in == 1_000_000)
    );

    assert_compux_err(
        env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await,
        CompuxError::AboveThreshold,
    );

    // Usage brings the vault back under the threshold: the second refill fits the cap.
    let burn = |seq| SettleBatch { seq, amount: 100 * CREDIT, batch_root: [0; 32], window_end: at_hour(10) };
    assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, burn(1))], &[&relayer]).await);
    assert_ok(env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await);
    assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, burn(2))], &[&relayer]).await);
    assert_compux_err(
        env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await,
        CompuxError::AutoRefillCapReached,
    );
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(acct.auto_refill.spent_quote, 2_000_000);
    assert_eq!(env.balance(&alice.quote).await, 7_900_000);
    assert_eq!(env.token_account(&alice.quote).await.delegated_amount, 500_000);

    // At the peak hour a refill costs 1_250_000, above the per-refill bound.
    assert_ok(
        env.send(&[ix::configure_auto_refill(&m, &alice.key(), &alice.quote, params())], &[&alice.kp]).await,
    );
    env.set_time(at_hour(PEAK_HOUR)).await;
    assert_compux_err(
        env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await,
        CompuxError::SlippageExceeded,
    );
}

#[tokio::test]
async fn auto_refill_rejects_wrong_source_disabled_and_foreign_accounts() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let alice = env.user(10_000_000).await;
    let bob = env.user(10_000_000).await;
    env.set_time(at_hour(10)).await;

    assert_compux_err(
        env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await,
        CompuxError::AutoRefillDisabled,
    );

    // Alice cannot point her auto-refill at bob's quote account.
    let res =
        env.send(&[ix::configure_auto_refill(&m, &alice.key(), &bob.quote, params())], &[&alice.kp]).await;
    assert_compux_err(res, CompuxError::NotAccountOwner);

    assert_ok(
        env.send(&[ix::configure_auto_refill(&m, &alice.key(), &alice.quote, params())], &[&alice.kp]).await,
    );
    // A crank naming another source (bob's, which never delegated) is refused.
    let res = env.send(&[ix::auto_refill(&m, &alice.key(), &bob.quote)], &[]).await;
    assert_compux_err(res, CompuxError::WrongRefillSource);

    // Turning it off revokes the delegation and stops the crank.
    let off = AutoRefillParams { refill_credits: 0, ..params() };
    assert_ok(
        env.send(&[ix::configure_auto_refill(&m, &alice.key(), &alice.quote, off)], &[&alice.kp]).await,
    );
    let source = env.token_account(&alice.quote).await;
    assert_eq!((source.delegate, source.delegated_amount), (COption::None, 0));
    assert_compux_err(
        env.send(&[ix::auto_refill(&m, &alice.key(), &alice.quote)], &[]).await,
        CompuxError::AutoRefillDisabled,
    );
    assert_eq!(env.balance(&alice.quote).await, 10_000_000);
    assert_eq!(env.balance(&bob.quote).await, 10_000_000);
}
