//! Attacks on facilities, each asserting the specific error.

use anchor_lang::error::ErrorCode;
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::{Facility, FacilityStatus};
use compux_sdk::CompuxError;
use solana_sdk::signature::Signer;

use crate::program_test::*;

async fn parties() -> (TestEnv, User, User, User) {
    let mut env = TestEnv::new().await;
    let lender = env.user(1_000_000).await;
    let borrower = env.user(1_000_000).await;
    let stranger = env.user(1_000_000).await;
    (env, lender, borrower, stranger)
}

#[tokio::test]
async fn offers_validate_terms_and_only_the_lender_cancels_an_unaccepted_offer() {
    let (mut env, lender, borrower, stranger) = parties().await;
    let m = env.market;
    let f = env.next_facility(&lender).await;
    for (terms, err) in [
        (
            compux_sdk::state::FacilityTerms { installments: 0, ..default_terms(borrower.key()) },
            CompuxError::InvalidFacilityTerms,
        ),
        (
            compux_sdk::state::FacilityTerms { apr_bps: 20_001, ..default_terms(borrower.key()) },
            CompuxError::InvalidFacilityTerms,
        ),
        (
            compux_sdk::state::FacilityTerms {
                default_after_secs: GRACE - 1,
                ..default_terms(borrower.key())
            },
            CompuxError::InvalidFacilityTerms,
        ),
        (
            compux_sdk::state::FacilityTerms {
                credit_multiplier_bps: 9_999,
                ..default_terms(borrower.key())
            },
            CompuxError::InvalidReleaseSchedule,
        ),
        (
            compux_sdk::state::FacilityTerms { tranches: 5, ..default_terms(borrower.key()) },
            CompuxError::InvalidReleaseSchedule,
        ),
        (
            compux_sdk::state::FacilityTerms { principal: 0, ..default_terms(borrower.key()) },
            CompuxError::ZeroAmount,
        ),
        (
            compux_sdk::state::FacilityTerms {
                min_recovery_rate_bps: 10_001,
                ..default_terms(borrower.key())
            },
            CompuxError::InvalidFacilityTerms,
        ),
        (
            compux_sdk::state::FacilityTerms {
                min_recovery_rate_bps: RECOVERY_RATE_BPS + 1,
                ..default_terms(borrower.key())
            },
            CompuxError::RecoveryRateBelowTerms,
        ),
    ] {
        assert_compux_err(
            env.send(&[ix::offer_facility(&m, &f, &lender.quote, terms)], &[&lender.kp]).await,
            err,
        );
    }
    // The lender's quote account must be the lender's.
    let res = env
        .send(&[ix::offer_facility(&m, &f, &stranger.quote, default_terms(borrower.key()))], &[&lender.kp])
        .await;
    assert_compux_err(res, CompuxError::WrongTokenOwner);
    assert_eq!(env.balance(&lender.quote).await, 1_000_000);

    env.track(f);
    assert_ok(
        env.send(&[ix::offer_facility(&m, &f, &lender.quote, default_terms(borrower.key()))], &[&lender.kp])
            .await,
    );
    assert_eq!(env.balance(&f.quote_vault).await, PRINCIPAL);
    // Offering the same nonce again (re-initialisation) fails and changes nothing.
    let res = env
        .send(&[ix::offer_facility(&m, &f, &lender.quote, default_terms(stranger.key()))], &[&lender.kp])
        .await;
    assert!(res.is_err());
    assert_eq!(env.state::<Facility>(&f.address).await.terms.borrower, borrower.key());

    let mut ixn = ix::cancel_offer(&m, &f, &lender.quote);
    ixn.accounts[0].pubkey = stranger.key();
    assert_compux_err(env.send(&[ixn], &[&stranger.kp]).await, CompuxError::NotLender);

    let lamports = env.account(&lender.key()).await.unwrap().lamports;
    assert_ok(env.send(&[ix::cancel_offer(&m, &f, &lender.quote)], &[&lender.kp]).await);
    assert_eq!(env.balance(&lender.quote).await, 1_000_000, "refunded in full");
    assert!(env.account(&f.address).await.is_none());
    assert!(env.account(&lender.key()).await.unwrap().lamports > lamports, "rent returned");
}

#[tokio::test]
async fn only_the_named_borrower_accepts_and_only_once() {
    let (mut env, lender, borrower, stranger) = parties().await;
    let m = env.market;
    env.set_time(at_hour(9)).await;
    let terms = default_terms(borrower.key());
    let f = env.offer(&lender, terms).await;

    let res = env.send(&[ix::accept_facility(&m, &f, &stranger.key(), terms, 0)], &[&stranger.kp]).await;
    assert_compux_err(res, CompuxError::NotBorrower);
    let mut unsigned = ix::accept_facility(&m, &f, &borrower.key(), terms, 0);
    unsigned.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[unsigned], &[]).await, ErrorCode::AccountNotSigner);

    assert_ok(env.accept(&f, &borrower).await);
    assert_compux_err(env.accept(&f, &borrower).await, CompuxError::InvalidFacilityStatus);
    assert_eq!(env.balance(&f.escrow).await, FINANCED_CREDITS, "minted once");
    assert_compux_err(
        env.send(&[ix::cancel_offer(&m, &f, &lender.quote)], &[&lender.kp]).await,
        CompuxError::InvalidFacilityStatus,
    );
}

#[tokio::test]
async fn only_the_lender_freezes_and_never_a_current_facility() {
    let (mut env, lender, borrower, stranger) = parties().await;
    let m = env.market;
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;

    // Current facility: even the lender cannot freeze it.
    assert_compux_err(
        env.send(&[ix::freeze_escrow(&m, &f, &lender.key())], &[&lender.kp]).await,
        CompuxError::NotFreezable,
    );
    // Delinquent is not enough either.
    env.set_time(t0 + PERIOD + GRACE).await;
    assert_compux_err(
        env.send(&[ix::freeze_escrow(&m, &f, &lender.key())], &[&lender.kp]).await,
        CompuxError::NotFreezable,
    );

    env.set_time(t0 + PERIOD + DEFAULT_AFTER).await;
    for who in [&borrower, &stranger] {
        let res = env.send(&[ix::freeze_escrow(&m, &f, &who.key())], &[&who.kp]).await;
        assert_compux_err(res, CompuxError::NotLender);
    }
    // A copy of the facility at another address naming the stranger as lender.
    let fake = env.forged(&f.address, |state: &mut Facility| state.lender = stranger.key()).await;
    let mut ixn = ix::freeze_escrow(&m, &f, &stranger.key());
    ixn.accounts[2].pubkey = fake;
    assert_anchor_err(env.send(&[ixn], &[&stranger.kp]).await, ErrorCode::ConstraintSeeds);

    assert!(!env.is_frozen(&f.escrow).await);
    assert_ok(env.send(&[ix::freeze_escrow(&m, &f, &lender.key())], &[&lender.kp]).await);
    assert!(env.is_frozen(&f.escrow).await);
}

#[tokio::test]
async fn relayer_burns_only_released_credits_of_the_right_escrow() {
    let (mut env, lender, borrower, stranger) = parties().await;
    let m = env.market;
    let relayer = env.relayer.insecure_clone();
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;
    let g = env.accepted_facility(&lender, &stranger, t0).await;
    let batch = |amount| SettleBatch { seq: 1, amount, batch_root: [9; 32], window_end: t0 };

    // Only the upfront share is released: one more base unit is unreleased.
    let res = env
        .send(&[ix::settle_facility(&m, &relayer.pubkey(), &f, batch(UPFRONT_CREDITS + 1))], &[&relayer])
        .await;
    assert_compux_err(res, CompuxError::InsufficientCredits);
    // Facility f with g's escrow.
    let mut ixn = ix::settle_facility(&m, &relayer.pubkey(), &f, batch(1));
    ixn.accounts[3].pubkey = g.escrow;
    assert_compux_err(env.send(&[ixn], &[&relayer]).await, CompuxError::WrongVault);
    // A credit-mint token account posing as the escrow.
    let fake_escrow = env.create_token_account(&m.credit_mint, &stranger.key()).await;
    let mut ixn = ix::settle_facility(&m, &relayer.pubkey(), &f, batch(1));
    ixn.accounts[3].pubkey = fake_escrow;
    assert_compux_err(env.send(&[ixn], &[&relayer]).await, CompuxError::WrongVault);
    // Not the relayer.
    let res = env.send(&[ix::settle_facility(&m, &borrower.key(), &f, batch(1))], &[&borrower.kp]).await;
    assert_compux_err(res, CompuxError::NotRelayer);

    assert_ok(
        env.send(&[ix::settle_facility(&m, &relayer.pubkey(), &f, batch(UPFRONT_CREDITS))], &[&relayer])
            .await,
    );
    let res = env.send(&[ix::settle_facility(&m, &relayer.pubkey(), &f, batch(1))], &[&relayer]).await;
    assert_compux_err(res, CompuxError::SettleReplay);
    assert_eq!(env.balance(&f.escrow).await, FINANCED_CREDITS - UPFRONT_CREDITS);
    assert_eq!(env.balance(&g.escrow).await, FINANCED_CREDITS);
}

#[tokio::test]
async fn tranches_wait_for_their_due_date_and_a_current_facility() {
    let (mut env, lender, borrower, _) = parties().await;
    let m = env.market;
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;
    env.set_time(t0 + PERIOD - 1).await;
    assert_compux_err(env.send(&[ix::release_tranche(&m, &f)], &[]).await, CompuxError::TrancheNotDue);
    env.set_time(t0 + PERIOD).await;
    assert_ok(env.send(&[ix::release_tranche(&m, &f)], &[]).await);
    assert_compux_err(env.send(&[ix::release_tranche(&m, &f)], &[]).await, CompuxError::TrancheNotDue);
    // Installment 1 unpaid past grace: delinquent, so tranche 2 stays locked even when due.
    env.set_time(t0 + 2 * PERIOD).await;
    assert_compux_err(env.send(&[ix::release_tranche(&m, &f)], &[]).await, CompuxError::FacilityNotCurrent);
    let state: Facility = env.state(&f.address).await;
    assert_eq!(
        (state.released_credits, state.status),
        (UPFRONT_CREDITS + TRANCHE_CREDITS, FacilityStatus::Active)
    );
}

#[tokio::test]
async fn repayment_goes_from_the_borrower_into_the_facility_vault_only() {
    let (mut env, lender, borrower, stranger) = parties().await;
    let m = env.market;
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;
    env.set_time(t0 + PERIOD).await;

    let res =
        env.send(&[ix::repay(&m, &f, &stranger.key(), &stranger.quote, INSTALLMENT)], &[&stranger.kp]).await;
    assert_compux_err(res, CompuxError::NotBorrower);
    // Paid anywhere but the facility's own vault: refused.
    let mut ixn = ix::repay(&m, &f, &borrower.key(), &borrower.quote, INSTALLMENT);
    ixn.accounts[4].pubkey = stranger.quote;
    assert_compux_err(env.send(&[ixn], &[&borrower.kp]).await, CompuxError::WrongVault);
    let res = env.send(&[ix::repay(&m, &f, &borrower.key(), &borrower.quote, 0)], &[&borrower.kp]).await;
    assert_compux_err(res, CompuxError::ZeroAmount);
    assert_eq!(env.balance(&stranger.quote).await, 1_000_000);
    // Another facility's escrow: refused.
    let g = env.accepted_facility(&lender, &stranger, t0).await;
    let mut ixn = ix::repay(&m, &f, &borrower.key(), &borrower.quote, INSTALLMENT);
    ixn.accounts[5].pubkey = g.escrow;
    assert_compux_err(env.send(&[ixn], &[&borrower.kp]).await, CompuxError::WrongVault);

    // Recovery of a facility that was never frozen is refused.
    let res = env.send(&[ix::recover(&m, &f)], &[&lender.kp]).await;
    assert_compux_err(res, CompuxError::InvalidFacilityStatus);
    // Closing before repayment is refused.
    let res = env.send(&[ix::close_facility(&m, &f, &borrower.key())], &[]).await;
    assert_compux_err(res, CompuxError::InvalidFacilityStatus);

    assert_ok(
        env.send(&[ix::repay(&m, &f, &borrower.key(), &borrower.quote, INSTALLMENT)], &[&borrower.kp]).await,
    );
    assert_eq!(env.balance(&f.quote_vault).await, INSTALLMENT);
}
