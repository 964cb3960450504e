//! Whole lives of financed-credit facilities, with the clock moved through their schedules.

use compux_sdk::constants::FREEZE_SETTLEMENT_WINDOW_SECS;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::ix::{self, SettleBatch};
use compux_sdk::state::{Facility, FacilityStatus};
use compux_sdk::{CompuxError, FacilityKeys};
use solana_sdk::signature::Signer;

use crate::program_test::*;

struct Scene {
    env: TestEnv,
    lender: User,
    borrower: User,
    f: FacilityKeys,
    t0: i64,
}

/// A lender with 1_000_000 quote, a borrower with 1_000_000 quote, the default facility
/// accepted at 09:00 on DAY0 (maturity: four periods later).
async fn scene() -> Scene {
    let mut env = TestEnv::new().await;
    let lender = env.user(1_000_000).await;
    let borrower = env.user(1_000_000).await;
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;
    Scene { env, lender, borrower, f, t0 }
}

impl Scene {
    async fn facility(&mut self) -> Facility {
        self.env.state(&self.f.address).await
    }

    async fn repay(&mut self, amount: u64) -> TxResult {
        let m = self.env.market;
        let ixn = ix::repay(&m, &self.f, &self.borrower.key(), &self.borrower.quote, amount);
        self.env.send(&[ixn], &[&self.borrower.kp]).await
    }

    async fn settle(&mut self, seq: u64, amount: u64, window_end: i64) -> TxResult {
        let (m, relayer) = (self.env.market, self.env.relayer.insecure_clone());
        let b = SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end };
        self.env.send(&[ix::settle_facility(&m, &relayer.pubkey(), &self.f, b)], &[&relayer]).await
    }

    async fn crank(&mut self, ixn: solana_sdk::instruction::Instruction) -> TxResult {
        self.env.send(&[ixn], &[]).await
    }

    async fn freeze(&mut self) -> TxResult {
        let m = self.env.market;
        self.env.send(&[ix::freeze_escrow(&m, &self.f, &self.lender.key())], &[&self.lender.kp]).await
    }

    async fn close(&mut self) -> TxResult {
        let m = self.env.market;
        self.crank(ix::close_facility(&m, &self.f, &self.borrower.key())).await
    }

    async fn recover(&mut self) -> TxResult {
        let m = self.env.market;
        self.env.send(&[ix::recover(&m, &self.f)], &[&self.lender.kp]).await
    }

    /// The lender takes everything the facility vault holds to its own quote account.
    async fn withdraw_all(&mut self) -> TxResult {
        let m = self.env.market;
        let held = self.env.balance(&self.f.quote_vault).await;
        let ixn = ix::withdraw_repayments(&m, &self.f, &self.lender.quote, held);
        self.env.send(&[ixn], &[&self.lender.kp]).await
    }

    fn maturity(&self) -> i64 {
        self.t0 + 4 * PERIOD
    }

    async fn default_and_freeze(&mut self) -> i64 {
        let m = self.env.market;
        let frozen_at = self.t0 + PERIOD + DEFAULT_AFTER;
        self.env.set_time(frozen_at).await;
        assert_ok(self.crank(ix::refresh_facility(&m, &self.f)).await);
        assert_eq!(self.facility().await.status, FacilityStatus::Defaulted);
        assert_ok(self.freeze().await);
        frozen_at
    }
}

#[tokio::test]
async fn repaid_on_time_then_closed_and_converted() {
    let mut s = scene().await;
    let m = s.env.market;
    // Offer and acceptance moved the principal lender -> facility vault -> treasury.
    assert_eq!(s.env.balance(&s.lender.quote).await, 1_000_000 - PRINCIPAL);
    assert_eq!(s.env.balance(&m.treasury).await, PRINCIPAL);
    assert_eq!(s.env.balance(&s.f.escrow).await, FINANCED_CREDITS);
    let f = s.facility().await;
    assert_eq!(
        (f.status, f.released_credits, f.loan.installment_amount, f.loan.scheduled_total),
        (FacilityStatus::Active, UPFRONT_CREDITS, INSTALLMENT, 102_480)
    );
    assert_eq!(
        (f.loan.next_due_ts, f.loan.next_due_amount),
        (s.t0 + PERIOD, INSTALLMENT),
        "the schedule is on chain"
    );
    s.env.assert_supply_matches_vaults().await;

    // Usage from the upfront share, metered and settled by the relayer.
    s.env.set_time(s.t0 + DAY).await;
    assert_ok(s.settle(1, 1_000_000, s.t0 + DAY).await);
    let lender_rent: u64 = {
        let mut sum = 0;
        for a in [s.f.escrow, s.f.quote_vault] {
            sum += s.env.account(&a).await.unwrap().lamports;
        }
        sum
    };
    let lender_lamports = s.env.account(&s.lender.key()).await.unwrap().lamports;

    for k in 1..=4i64 {
        s.env.set_time(s.t0 + k * PERIOD).await;
        if k <= 3 {
            let logs = assert_ok(s.crank(ix::release_tranche(&m, &s.f)).await);
            assert!(
                matches!(&events_from_logs(&logs)[..], [CompuxEvent::TrancheReleased(e)] if e.credits == TRANCHE_CREDITS)
            );
        }
        let logs = assert_ok(s.repay(INSTALLMENT).await);
        let repaid = events_from_logs(&logs).into_iter().find_map(|e| match e {
            CompuxEvent::FacilityRepaid(r) => Some(r),
            _ => None,
        });
        assert_eq!(repaid.map(|r| r.fees + r.interest + r.principal), Some(INSTALLMENT));
        assert_eq!(
            s.env.balance(&s.f.quote_vault).await,
            k as u64 * INSTALLMENT,
            "repayments wait in the facility vault"
        );
    }
    let f = s.facility().await;
    assert_eq!(
        (f.status, f.released_credits, f.loan.interest_paid),
        (FacilityStatus::Repaid, FINANCED_CREDITS, 2_480)
    );
    assert_eq!(s.env.balance(&s.borrower.quote).await, 1_000_000 - 102_480);

    // Close, once the settlement window after maturity has passed: the 14 unused credits
    // become the borrower's standard credits at their principal's worth (14 / 1.5x, the
    // rest burned); the escrow's rent goes to the lender; the facility waits for the
    // lender to withdraw its vault.
    assert_compux_err(s.close().await, CompuxError::SettlementWindowOpen);
    let after = s.maturity() + FREEZE_SETTLEMENT_WINDOW_SECS + 1;
    s.env.set_time(after).await;
    let logs = assert_ok(s.close().await);
    assert!(
        matches!(&events_from_logs(&logs)[..], [CompuxEvent::FacilityClosed(e)] if e.converted_credits == 9_333_333 && e.burned_credits == 4_666_667 && e.vault_balance == 102_480)
    );
    assert_eq!(s.env.balance(&s.borrower.credit.vault).await, 9_333_333);
    assert!(s.env.account(&s.f.escrow).await.is_none());
    assert_eq!(s.facility().await.status, FacilityStatus::Closed);
    assert_ok(s.withdraw_all().await);
    assert_eq!(s.env.balance(&s.lender.quote).await, 1_000_000 - PRINCIPAL + 102_480);
    for a in [s.f.escrow, s.f.quote_vault] {
        assert!(s.env.account(&a).await.is_none());
    }
    // The facility stays, Closed: its address (the lender's nonce) is never offered again,
    // or the relayer's settlement sequence for it would start over.
    assert_eq!(s.facility().await.status, FacilityStatus::Closed);
    let again = ix::offer_facility(&m, &s.f, &s.lender.quote, default_terms(s.borrower.key()));
    assert_compux_err(s.env.send(&[again], &[&s.lender.kp]).await, CompuxError::AddressInUse);
    assert_eq!(s.env.account(&s.lender.key()).await.unwrap().lamports, lender_lamports + lender_rent);
    s.env.assert_supply_matches_vaults().await;
}

#[tokio::test]
async fn late_then_fee_paid_then_current_again() {
    let mut s = scene().await;
    let m = s.env.market;
    // Installment 1 is missed; the grace period ends.
    s.env.set_time(s.t0 + PERIOD + GRACE).await;
    let logs = assert_ok(s.crank(ix::refresh_facility(&m, &s.f)).await);
    assert!(matches!(&events_from_logs(&logs)[..],
        [CompuxEvent::FacilityStatusChanged(e)] if e.from == FacilityStatus::Active && e.to == FacilityStatus::Delinquent));
    let f = s.facility().await;
    assert_eq!(
        (f.loan.fees_due, f.loan.past_due(), f.loan.missed_installments),
        (1_281, INSTALLMENT + 1_281, 1)
    );
    assert_compux_err(s.crank(ix::release_tranche(&m, &s.f)).await, CompuxError::FacilityNotCurrent);

    // Paying a part leaves it delinquent; paying the rest makes it current.
    assert_ok(s.repay(1_000).await);
    assert_eq!(s.facility().await.status, FacilityStatus::Delinquent);
    assert_ok(s.repay(INSTALLMENT + 281).await);
    let f = s.facility().await;
    assert_eq!((f.status, f.loan.fees_paid, f.loan.past_due()), (FacilityStatus::Active, 1_281, 0));
    assert_eq!(s.env.balance(&s.f.quote_vault).await, INSTALLMENT + 1_281);
    assert_ok(s.crank(ix::release_tranche(&m, &s.f)).await);
    assert_eq!(s.facility().await.released_credits, UPFRONT_CREDITS + TRANCHE_CREDITS);
}

#[tokio::test]
async fn defaulted_frozen_settled_before_freeze_then_recovered() {
    let mut s = scene().await;
    let m = s.env.market;
    s.env.set_time(s.t0 + 10 * DAY).await;
    assert_ok(s.settle(1, 500_000, s.t0 + 10 * DAY).await);

    let frozen_at = s.default_and_freeze().await;
    assert!(s.env.is_frozen(&s.f.escrow).await);
    let f = s.facility().await;
    assert_eq!((f.status, f.frozen_at), (FacilityStatus::Frozen, frozen_at));

    // Usage metered before the freeze still settles inside the window; the escrow stays frozen.
    s.env.set_time(frozen_at + 3_600).await;
    assert_ok(s.settle(2, 200_000, frozen_at - 100).await);
    assert!(s.env.is_frozen(&s.f.escrow).await);
    assert_eq!(s.env.balance(&s.f.escrow).await, FINANCED_CREDITS - 700_000);
    // Usage after the freeze is refused.
    assert_compux_err(s.settle(3, 1, frozen_at + 10).await, CompuxError::CreditsFrozen);

    // Recovery waits for the window to close.
    s.env.set_time(frozen_at + 86_400).await;
    assert_compux_err(s.recover().await, CompuxError::SettlementWindowOpen);
    s.env.set_time(frozen_at + 86_401).await;
    let mut expected = s.facility().await.loan;
    expected.accrue(frozen_at + 86_401).unwrap();
    let owed = expected.payoff(frozen_at + 86_401).unwrap();
    let vault_before = s.env.balance(&s.f.quote_vault).await;
    let logs = assert_ok(s.recover().await);

    // The debt needs more than every unused credit is worth at the recovery price, so all
    // 14.3 are bought: they cost 95_333 of the principal (rounded down); at 50 % that is
    // 47_666, within the facility's earmark of 50_000.
    let paid = 47_666;
    assert_eq!(s.env.balance(&s.f.quote_vault).await, vault_before + paid);
    assert_eq!(s.env.balance(&m.recovery_reserve).await, RESERVE_FUNDING - paid);
    let market: compux_sdk::state::Market = s.env.state(&m.market).await;
    assert_eq!((market.reserve_earmarked, market.reserve_paid), (0, paid), "earmark released");
    assert_eq!(s.env.balance(&s.f.escrow).await, 0);
    let f = s.facility().await;
    assert_eq!(
        (f.status, f.recovered_credits, f.recovered_quote, f.shortfall),
        (FacilityStatus::Recovered, 14_300_000, paid, owed - paid)
    );
    assert!(
        matches!(events_from_logs(&logs).last(), Some(CompuxEvent::FacilityRecovered(e)) if e.shortfall == owed - paid && e.paid_to_lender == paid)
    );
    s.env.assert_supply_matches_vaults().await;

    assert_compux_err(s.recover().await, CompuxError::InvalidFacilityStatus);
    assert_compux_err(s.close().await, CompuxError::NotMatured);
    let maturity = s.maturity();
    s.env.set_time(maturity + FREEZE_SETTLEMENT_WINDOW_SECS + 1).await;
    assert_ok(s.close().await);
    assert_eq!(s.env.balance(&s.borrower.credit.vault).await, 0, "nothing left to convert");
}

#[tokio::test]
async fn defaulted_frozen_then_repaid_in_full_is_cured() {
    let mut s = scene().await;
    let frozen_at = s.default_and_freeze().await;
    s.env.set_time(frozen_at + 2 * DAY).await;
    let vault_before = s.env.balance(&s.f.quote_vault).await;
    let mut expected = s.facility().await.loan;
    expected.accrue(frozen_at + 2 * DAY).unwrap();
    let owed = expected.payoff(frozen_at + 2 * DAY).unwrap();
    assert!(owed > PRINCIPAL);

    assert_ok(s.repay(u64::MAX).await);
    assert_eq!(
        s.env.balance(&s.f.quote_vault).await,
        vault_before + owed,
        "exactly the payoff, nothing more"
    );
    let f = s.facility().await;
    assert_eq!((f.status, f.earmark), (FacilityStatus::Repaid, 0));
    assert!(!s.env.is_frozen(&s.f.escrow).await, "cured: thawed");
    let maturity = s.maturity();
    s.env.set_time(maturity + FREEZE_SETTLEMENT_WINDOW_SECS + 1).await;
    assert_ok(s.close().await);
    assert_eq!(s.env.balance(&s.borrower.credit.vault).await, FINANCED_CREDITS * 10_000 / 15_000);
}

#[tokio::test]
async fn prepaid_early_pays_interest_to_the_second() {
    let mut s = scene().await;
    s.env.set_time(s.t0 + 15 * DAY).await;
    assert_ok(s.repay(u64::MAX).await);
    // 100_000 at 12 % for 15 days: 493.15 rounded up to 494.
    assert_eq!(s.env.balance(&s.f.quote_vault).await, 100_494);
    let f = s.facility().await;
    assert_eq!(f.status, FacilityStatus::Repaid);
    assert_eq!((f.loan.next_due_ts, f.loan.next_due_amount), (0, 0), "nothing more falls due");
    // A prepayment does not end the financing period: no conversion before maturity, and
    // the tranches keep their schedule (none early, none lost).
    assert_compux_err(s.close().await, CompuxError::NotMatured);
    let m = s.env.market;
    assert_compux_err(s.crank(ix::release_tranche(&m, &s.f)).await, CompuxError::TrancheNotDue);
    s.env.set_time(s.t0 + PERIOD).await;
    assert_ok(s.crank(ix::release_tranche(&m, &s.f)).await);
    assert_eq!(s.facility().await.released_credits, UPFRONT_CREDITS + TRANCHE_CREDITS);
    let maturity = s.maturity();
    s.env.set_time(maturity - 1).await;
    assert_compux_err(s.close().await, CompuxError::NotMatured);
    s.env.set_time(maturity).await;
    assert_compux_err(s.close().await, CompuxError::SettlementWindowOpen);
    s.env.set_time(maturity + FREEZE_SETTLEMENT_WINDOW_SECS + 1).await;
    assert_ok(s.close().await);
    assert_eq!(s.env.balance(&s.borrower.credit.vault).await, FINANCED_CREDITS * 10_000 / 15_000);
    s.env.assert_supply_matches_vaults().await;
}

#[tokio::test]
async fn matured_with_a_balance_then_frozen() {
    let mut s = scene().await;
    for k in 1..=3i64 {
        s.env.set_time(s.t0 + k * PERIOD).await;
        assert_ok(s.repay(INSTALLMENT).await);
    }
    // Not yet mature: the facility is current, so it cannot be frozen.
    s.env.set_time(s.t0 + 4 * PERIOD - 1).await;
    assert_compux_err(s.freeze().await, CompuxError::NotFreezable);
    // At maturity the last installment is unpaid: like any missed installment, the lender
    // waits for the grace period before freezing.
    s.env.set_time(s.t0 + 4 * PERIOD).await;
    assert_compux_err(s.freeze().await, CompuxError::NotFreezable);
    s.env.set_time(s.t0 + 4 * PERIOD + GRACE - 1).await;
    assert_compux_err(s.freeze().await, CompuxError::NotFreezable);
    s.env.set_time(s.t0 + 4 * PERIOD + GRACE).await;
    assert_ok(s.freeze().await);
    let f = s.facility().await;
    assert_eq!(f.status, FacilityStatus::Frozen);
    assert!(f.loan.principal_outstanding > 0);
    assert!(s.env.is_frozen(&s.f.escrow).await);
}

#[tokio::test]
async fn tranches_due_while_current_are_the_borrowers_at_recovery() {
    // Issue 24, attack 6: the three tranches fell due while the facility was current and
    // nobody sent `release_tranche` (it is anyone's to send). Recovery burned them as never
    // released, though the debt needed only part of the collateral.
    let mut s = scene().await;
    for k in 1..=3i64 {
        s.env.set_time(s.t0 + k * PERIOD).await;
        assert_ok(s.repay(INSTALLMENT).await);
    }
    let frozen_at = s.maturity() + GRACE;
    s.env.set_time(frozen_at).await;
    let logs = assert_ok(s.freeze().await);
    assert!(events_from_logs(&logs)
        .iter()
        .any(|e| matches!(e, CompuxEvent::TrancheReleased(t) if t.tranche == 3)));
    let f = s.facility().await;
    assert_eq!((f.tranches_released, f.released_credits), (3, FINANCED_CREDITS), "released at the freeze");
    s.env.set_time(frozen_at + FREEZE_SETTLEMENT_WINDOW_SECS + 1).await;
    assert_ok(s.recover().await);
    let f = s.facility().await;
    assert!(f.recovered_credits < FINANCED_CREDITS, "the last installment needs part of the collateral");
    assert_eq!(f.returned_credits, FINANCED_CREDITS - f.recovered_credits, "the rest is the borrower's");
    // Burned as never released, the three tranches would have left only the upfront share.
    assert!(f.returned_credits > UPFRONT_CREDITS, "{} returned", f.returned_credits);
    assert_eq!(f.shortfall, 0);
    s.env.assert_supply_matches_vaults().await;
}

#[tokio::test]
async fn a_matured_facility_settles_what_was_metered_before_then_closes_after_the_window() {
    // Issue 24, attack 2: a third party closed a repaid Forfeit facility at maturity with
    // usage unsettled; the whole escrow burned as unused and the settler billed that usage
    // again to the borrower's vault. Close now waits for the settlement window.
    let mut env = TestEnv::new().await;
    let (m, relayer) = (env.market, env.relayer.insecure_clone());
    let lender = env.user(1_000_000).await;
    let borrower = env.user(1_000_000).await;
    let t0 = at_hour(9);
    let terms = compux_sdk::state::FacilityTerms {
        unused_at_close: compux_sdk::state::UnusedCredits::Forfeit,
        ..default_terms(borrower.key())
    };
    let f = env.accepted_with(&lender, &borrower, terms, t0).await;
    env.set_time(t0 + DAY).await;
    assert_ok(
        env.send(&[ix::repay(&m, &f, &borrower.key(), &borrower.quote, u64::MAX)], &[&borrower.kp]).await,
    );
    let maturity = t0 + 4 * PERIOD;
    let settle = |seq: u64, amount, window_end| {
        let b = SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end };
        ix::settle_facility(&m, &relayer.pubkey(), &f, b)
    };
    let close = ix::close_facility(&m, &f, &borrower.key());
    // Usage metered just before maturity is not on chain yet: no close at maturity.
    env.set_time(maturity).await;
    assert_compux_err(env.send(std::slice::from_ref(&close), &[]).await, CompuxError::SettlementWindowOpen);
    env.set_time(maturity + 3_600).await;
    assert_ok(env.send(&[settle(1, 1_000_000, maturity - 10)], &[&relayer]).await);
    // Usage metered after maturity does not settle from the escrow (the relayer holds a
    // matured facility's credits and bills the vault).
    assert_compux_err(
        env.send(&[settle(2, 1, maturity + 5)], &[&relayer]).await,
        CompuxError::CreditsMatured,
    );
    let end = maturity + FREEZE_SETTLEMENT_WINDOW_SECS;
    env.set_time(end).await;
    assert_compux_err(env.send(std::slice::from_ref(&close), &[]).await, CompuxError::SettlementWindowOpen);
    env.set_time(end + 1).await;
    assert_compux_err(
        env.send(&[settle(2, 1, maturity - 5)], &[&relayer]).await,
        CompuxError::CreditsMatured,
    );
    assert_ok(env.send(&[close], &[]).await);
    let state: Facility = env.state(&f.address).await;
    assert_eq!(state.burned_credits, 1_000_000, "the usage burned once, from the escrow");
    assert_eq!(
        env.balance(&borrower.credit.vault).await,
        0,
        "nothing billed to the vault, nothing converted"
    );
    env.assert_supply_matches_vaults().await;
}
