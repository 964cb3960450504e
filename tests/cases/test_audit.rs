//! The SDK's invariant checker: clean on real states (it also runs after every successful
//! transaction of every test), and it reports each violation injected into a copy.

use compux_sdk::audit::{check, replay_usage_chain, Snapshot, Violation};
use compux_sdk::constants::FREEZE_SETTLEMENT_WINDOW_SECS;
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::{CreditAccount, FacilityStatus};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use crate::program_test::*;

async fn audited_market() -> (TestEnv, Snapshot, i64) {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let lender = env.user(1_000_000).await;
    let borrower = env.user(1_000_000).await;
    assert_ok(
        env.send(&[ix::fund_recovery_reserve(&m, &lender.key(), &lender.quote, 500_000)], &[&lender.kp])
            .await,
    );
    let t0 = at_hour(9);
    env.accepted_facility(&lender, &borrower, t0).await;
    let snapshot = env.snapshot().await.unwrap();
    (env, snapshot, t0)
}

fn violations(s: &Snapshot) -> Vec<Violation> {
    check(s).violations
}

#[tokio::test]
async fn clean_state_and_exact_coverage() {
    let (_env, s, _) = audited_market().await;
    let report = check(&s);
    assert_eq!(report.violations, vec![]);
    // 15 unused credits cost the whole 100_000 principal; at 50 % the reserve owes 50_000
    // (the facility's earmark) against 1_500_000 held: 30x coverage.
    assert_eq!(
        (report.recovery_liability, report.recovery_reserve, report.coverage_bps, report.earmarked),
        (50_000, RESERVE_FUNDING + 500_000, Some(300_000), EARMARK)
    );
    // The treasury holds exactly the accepted principal.
    assert_eq!((report.treasury_expected, s.treasury_balance), (PRINCIPAL, PRINCIPAL));
}

#[tokio::test]
async fn every_injected_violation_is_reported() {
    let (_env, clean, t0) = audited_market().await;
    let f = clean.facilities[0].address;
    let inject = |edit: &dyn Fn(&mut Snapshot)| {
        let mut s = clean.clone();
        edit(&mut s);
        violations(&s)
    };

    let v = inject(&|s| s.credit_mint_supply += 1);
    assert!(matches!(v[..], [Violation::SupplyMismatch { .. }]), "{v:?}");
    let v = inject(&|s| s.market.deposits_outstanding += 1);
    assert!(matches!(v[..], [Violation::DepositsMismatch { .. }]), "{v:?}");
    let v = inject(&|s| s.credit_accounts[0].account.market = Pubkey::new_unique());
    assert!(matches!(v[..], [Violation::ForeignAccount { .. }]), "{v:?}");
    // An escrow short of one unit is also a supply mismatch.
    let v = inject(&|s| {
        s.facilities[0].escrow_balance -= 1;
        s.credit_mint_supply -= 1;
    });
    assert_eq!(
        v,
        vec![Violation::EscrowMismatch {
            facility: f,
            escrow: FINANCED_CREDITS - 1,
            expected: FINANCED_CREDITS
        }]
    );
    let v = inject(&|s| s.facilities[0].facility.released_credits = FINANCED_CREDITS + 1);
    assert!(matches!(v[..], [Violation::ReleaseOverflow { .. }]), "{v:?}");
    let v = inject(&|s| s.facilities[0].facility.loan.principal_repaid += 1);
    assert!(matches!(v[..], [Violation::LoanMismatch { .. }]), "{v:?}");
    let v = inject(&|s| s.facilities[0].facility.loan.interest_paid += 1);
    assert!(matches!(v[..], [Violation::LoanMismatch { .. }]), "{v:?}");
    let v = inject(&|s| s.facilities[0].escrow_frozen = true);
    assert!(matches!(v[..], [Violation::FreezeMismatch { .. }]), "{v:?}");

    // Economics: more credits than the principal at the accept-time price times the cap
    // (the escrow agrees, so only the mint check speaks)...
    let v = inject(&|s| {
        s.facilities[0].facility.total_credits += 1;
        s.facilities[0].escrow_balance += 1;
        s.credit_mint_supply += 1;
    });
    assert_eq!(
        v,
        vec![Violation::OverMinted { facility: f, minted: FINANCED_CREDITS + 1, allowed: FINANCED_CREDITS }]
    );
    // ... or a multiplier above the cap recorded at acceptance.
    let v = inject(&|s| s.facilities[0].facility.accepted_cap_bps = CAP_BPS - 1);
    assert!(matches!(v[..], [Violation::OverMinted { .. }]), "{v:?}");
    // Earmarks that do not add up, and a reserve below them.
    let v = inject(&|s| s.facilities[0].facility.earmark -= 1);
    assert_eq!(v, vec![Violation::EarmarksMismatch { market_earmarked: EARMARK, facilities: EARMARK - 1 }]);
    let v = inject(&|s| s.recovery_reserve_balance = EARMARK - 1);
    assert!(
        v.contains(&Violation::ReserveBelowEarmarks { reserve: EARMARK - 1, earmarked: EARMARK }),
        "{v:?}"
    );
    // Quote that left the reserve or the treasury without an instruction that records it.
    let v = inject(&|s| s.recovery_reserve_balance -= 1);
    assert_eq!(
        v,
        vec![Violation::ReserveFlowsMismatch {
            reserve: RESERVE_FUNDING + 500_000 - 1,
            expected: RESERVE_FUNDING + 500_000
        }]
    );
    let v = inject(&|s| s.treasury_balance -= 1);
    assert_eq!(v, vec![Violation::TreasuryFlowsMismatch { treasury: PRINCIPAL - 1, expected: PRINCIPAL }]);
    // Tokens sent straight to a vault are a gift, not a violation.
    let v = inject(&|s| s.treasury_balance += 7);
    assert_eq!(v, vec![]);

    // The clock moved past the grace period and nobody refreshed the facility.
    let v = inject(&|s| s.now = t0 + PERIOD + GRACE);
    assert_eq!(
        v,
        vec![Violation::StaleStatus {
            facility: f,
            stored: FacilityStatus::Active,
            actual: FacilityStatus::Delinquent
        }]
    );
    // Defaulted longer than the settlement window and still not frozen.
    let v = inject(&|s| s.now = t0 + PERIOD + DEFAULT_AFTER + FREEZE_SETTLEMENT_WINDOW_SECS + 1);
    assert!(v.contains(&Violation::StaleStatus {
        facility: f,
        stored: FacilityStatus::Active,
        actual: FacilityStatus::Defaulted
    }));
    assert!(
        v.contains(&Violation::DefaultedNotFrozen {
            facility: f,
            defaulted_since: t0 + PERIOD + DEFAULT_AFTER
        }),
        "{v:?}"
    );
}

#[tokio::test]
async fn published_batches_replay_to_the_on_chain_usage_chain() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let relayer = env.relayer.insecure_clone();
    let alice = env.user(10_000_000).await;
    let t = at_hour(10);
    env.set_time(t).await;
    assert_ok(
        env.send(&[ix::buy_credits(&m, &alice.key(), &alice.quote, 100_000_000, 1_000_000, 0)], &[&alice.kp])
            .await,
    );
    let batches = [
        SettleBatch { seq: 1, amount: 5, batch_root: [3; 32], window_end: t - 10 },
        SettleBatch { seq: 2, amount: 7, batch_root: [4; 32], window_end: t },
    ];
    for b in batches {
        assert_ok(env.send(&[ix::settle(&m, &relayer.pubkey(), &alice.credit, b)], &[&relayer]).await);
    }
    let acct: CreditAccount = env.state(&alice.credit.address).await;
    assert_eq!(replay_usage_chain(&batches), acct.settlement.usage_chain);
    assert_ne!(replay_usage_chain(&batches[..1]), acct.settlement.usage_chain);
}
