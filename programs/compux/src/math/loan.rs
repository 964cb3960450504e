//! The repayment schedule of a financed-credit facility: an annuity (equal installments)
//! from the APR, interest on seconds with an Act/365 day count.
//!
//! Interest accrues continuously on the principal outstanding and is *realised* (rounded up,
//! in the lender's favour, by less than one base unit) at each due date and before each
//! repayment. At due date `k` the period's interest and `installment − interest` of principal
//! become due; the last installment takes all remaining principal, so the total is exact.
//! Repayments apply to late fees, then interest due, then principal due, then the current
//! period's accrued interest, then principal not yet due (prepayment).

use anchor_lang::prelude::*;

use super::{mul_div_ceil, mul_div_floor};
use crate::constants::BPS;

/// Act/365: a year is 365 days of seconds, leap years included.
pub const SECONDS_PER_YEAR: u64 = 365 * 86_400;
/// Fixed-point scale for the annuity factor.
const WAD: u128 = 1_000_000_000_000_000_000;

/// Interest on `balance` for `secs` seconds at `apr_bps`, rounded up.
pub fn interest(balance: u64, apr_bps: u16, secs: u64) -> Option<u64> {
    let n = (balance as u128).checked_mul(apr_bps as u128)?.checked_mul(secs as u128)?;
    u64::try_from(n.div_ceil(BPS as u128 * SECONDS_PER_YEAR as u128)).ok()
}

/// The equal installment that repays `principal` over `n` periods:
/// `P·r / (1 − (1 + r)^−n)`, rounded up. `(1 + r)^−n` is `1 / (1 + r)` raised to the `n`th
/// power by squaring, in 18-decimal fixed point: every factor stays within `[0, 1]`, so
/// nothing overflows, and it takes at most 14 multiplications (u128 division is the costly
/// operation in the SBF VM: 120 of them made `accept_facility` cost 280,000 units).
pub fn annuity_payment(principal: u64, apr_bps: u16, period_secs: u64, n: u16) -> Option<u64> {
    if n == 0 {
        return None;
    }
    let r = (apr_bps as u128).checked_mul(period_secs as u128)?.checked_mul(WAD)?
        / (BPS as u128 * SECONDS_PER_YEAR as u128);
    if r == 0 {
        return u64::try_from((principal as u128).div_ceil(n as u128)).ok();
    }
    let mul = |a: u128, b: u128| a.checked_mul(b).map(|x| x / WAD);
    let (mut base, mut exp, mut discount) = (WAD.checked_mul(WAD)? / (WAD + r), n, WAD);
    while exp > 0 {
        if exp & 1 == 1 {
            discount = mul(discount, base)?;
        }
        base = mul(base, base)?;
        exp >>= 1;
    }
    let q = (principal as u128).checked_mul(r)?.div_ceil(WAD.checked_sub(discount)?);
    u64::try_from(q).ok()
}

/// What a repayment paid, in waterfall order. The caller moves exactly `total()` tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub fees: u64,
    pub interest: u64,
    pub principal: u64,
}

impl Applied {
    pub fn total(&self) -> u64 {
        // Each part is bounded by a u64 balance of the same loan; their sum is a repayment
        // the borrower had to hold, so it fits.
        self.fees + self.interest + self.principal
    }
}

/// Loan state. All amounts are quote base units.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct Loan {
    pub principal: u64,
    pub apr_bps: u16,
    pub period_secs: i64,
    pub installments: u16,
    pub grace_secs: i64,
    pub late_fee_bps: u16,
    pub start_ts: i64,
    /// The equal installment (the last one may differ by the rounding).
    pub installment_amount: u64,
    /// Principal plus interest if every installment is paid on its due date.
    pub scheduled_total: u64,
    /// Installments whose due date has passed.
    pub installments_due: u16,
    pub interest_accrued_to: i64,
    /// Interest realised in the current period, not yet due.
    pub period_interest: u64,
    pub principal_outstanding: u64,
    pub principal_due: u64,
    pub interest_due: u64,
    pub fees_due: u64,
    /// Due date of the oldest installment not fully paid; 0 when nothing is past due. The
    /// delinquency clock restarts only once everything past due is paid (lender-favouring).
    pub past_due_since: i64,
    /// Late fees have been decided for installments `1..=fees_charged_through`.
    pub fees_charged_through: u16,
    pub principal_repaid: u64,
    pub interest_paid: u64,
    pub fees_paid: u64,
    /// Every unit of interest and late fee ever realised.
    pub interest_realised: u64,
    pub fees_charged: u64,
    /// Set by a recovery: principal, and everything, left unpaid and written off.
    pub principal_written_off: u64,
    pub written_off: u64,
    /// Installments still unpaid when their grace period ended (each charged a late fee).
    pub missed_installments: u16,
    /// The next installment's due date and amount as of the last update (0 after maturity),
    /// stored so clients read the schedule without recomputing it.
    pub next_due_ts: i64,
    pub next_due_amount: u64,
}

impl Loan {
    /// A loan starting at `start_ts`, with its installment and on-time total computed.
    pub fn new(
        principal: u64,
        apr_bps: u16,
        period_secs: i64,
        installments: u16,
        grace_secs: i64,
        late_fee_bps: u16,
        start_ts: i64,
    ) -> Option<Loan> {
        let installment_amount =
            annuity_payment(principal, apr_bps, u64::try_from(period_secs).ok()?, installments)?;
        let mut loan = Loan {
            principal,
            apr_bps,
            period_secs,
            installments,
            grace_secs,
            late_fee_bps,
            start_ts,
            installment_amount,
            scheduled_total: 0,
            installments_due: 0,
            interest_accrued_to: start_ts,
            period_interest: 0,
            principal_outstanding: principal,
            principal_due: 0,
            interest_due: 0,
            fees_due: 0,
            past_due_since: 0,
            fees_charged_through: 0,
            principal_repaid: 0,
            interest_paid: 0,
            fees_paid: 0,
            interest_realised: 0,
            fees_charged: 0,
            principal_written_off: 0,
            written_off: 0,
            missed_installments: 0,
            next_due_ts: 0,
            next_due_amount: 0,
        };
        loan.update_next()?;
        loan.due_ts(installments)?;
        loan.scheduled_total = loan.on_time_total()?;
        Some(loan)
    }

    /// What the borrower pays in all when every installment is paid on its due date: period
    /// `k` realises `interest(balance, apr, period)` and repays `installment − interest` of
    /// principal (the last repays all that is left), exactly as `accrue` and `repay` would,
    /// in one lean pass (a replay through them costs too many compute units at 120 periods).
    fn on_time_total(&self) -> Option<u64> {
        let period = u64::try_from(self.period_secs).ok()?;
        let (mut balance, mut total) = (self.principal, 0u64);
        for k in 1..=self.installments {
            let i = interest(balance, self.apr_bps, period)?;
            let p = if k == self.installments {
                balance
            } else {
                self.installment_amount.saturating_sub(i).min(balance)
            };
            total = total.checked_add(i)?.checked_add(p)?;
            balance -= p;
        }
        Some(total)
    }

    /// Due date of installment `k` (1-based).
    pub fn due_ts(&self, k: u16) -> Option<i64> {
        self.start_ts.checked_add((k as i64).checked_mul(self.period_secs)?)
    }

    pub fn maturity_ts(&self) -> Option<i64> {
        self.due_ts(self.installments)
    }

    /// Amount past due now (after `accrue`).
    pub fn past_due(&self) -> u64 {
        self.fees_due.saturating_add(self.interest_due).saturating_add(self.principal_due)
    }

    /// Everything owed to repay in full now (after `accrue(now)`): past due, the current
    /// period's interest to `now`, and principal not yet due.
    pub fn payoff(&self, now: i64) -> Option<u64> {
        let pending = self.pending_interest(now)?;
        self.past_due()
            .checked_add(self.period_interest)?
            .checked_add(pending)?
            .checked_add(self.principal_outstanding - self.principal_due)
    }

    pub fn is_repaid(&self) -> bool {
        self.principal_outstanding == 0 && self.past_due() == 0 && self.period_interest == 0
    }

    /// The next installment's due date and an estimate of its amount (the installment, or
    /// what remains if less), for clients; `None` after maturity.
    pub fn next_installment(&self) -> Option<(i64, u64)> {
        if self.installments_due >= self.installments {
            return None;
        }
        let due = self.due_ts(self.installments_due + 1)?;
        let remaining = self.principal_outstanding - self.principal_due;
        let interest = self.period_interest.checked_add(self.pending_interest(due)?)?;
        let amount = if self.installments_due + 1 == self.installments {
            remaining.checked_add(interest)?
        } else {
            self.installment_amount.min(remaining.checked_add(interest)?)
        };
        Some((due, amount))
    }

    fn pending_interest(&self, to: i64) -> Option<u64> {
        let secs = u64::try_from(to.saturating_sub(self.interest_accrued_to)).ok()?;
        interest(self.principal_outstanding, self.apr_bps, secs)
    }

    /// Realises interest up to `to`. After maturity it is due at once.
    fn realise_interest(&mut self, to: i64) -> Option<()> {
        if to <= self.interest_accrued_to {
            return Some(());
        }
        let i = self.pending_interest(to)?;
        self.interest_accrued_to = to;
        self.interest_realised = self.interest_realised.checked_add(i)?;
        if self.installments_due >= self.installments {
            self.interest_due = self.interest_due.checked_add(i)?;
            self.mark_past_due(to);
        } else {
            self.period_interest = self.period_interest.checked_add(i)?;
        }
        Some(())
    }

    fn mark_past_due(&mut self, since: i64) {
        if self.past_due_since == 0 && self.past_due() > 0 {
            self.past_due_since = since;
        }
    }

    /// Brings the loan to `now`: installments fall due, interest is realised, and a late fee
    /// is charged once for each installment still unpaid when its grace period ends.
    pub fn accrue(&mut self, now: i64) -> Option<()> {
        while self.installments_due < self.installments {
            let due = self.due_ts(self.installments_due + 1)?;
            if now < due {
                break;
            }
            self.realise_interest(due)?;
            let interest = std::mem::take(&mut self.period_interest);
            let remaining = self.principal_outstanding - self.principal_due;
            let principal = if self.installments_due + 1 == self.installments {
                remaining
            } else {
                self.installment_amount.saturating_sub(interest).min(remaining)
            };
            self.installments_due += 1;
            self.interest_due = self.interest_due.checked_add(interest)?;
            self.principal_due = self.principal_due.checked_add(principal)?;
            self.mark_past_due(due);
        }
        self.realise_interest(now)?;

        while self.fees_charged_through < self.installments_due {
            let k = self.fees_charged_through + 1;
            let due = self.due_ts(k)?;
            let unpaid = self.past_due_since != 0 && self.past_due_since <= due;
            if unpaid && now < due.checked_add(self.grace_secs)? {
                break; // still within grace: decide later
            }
            if unpaid {
                let fee = mul_div_ceil(self.installment_amount, self.late_fee_bps as u64, BPS)?;
                self.fees_due = self.fees_due.checked_add(fee)?;
                self.fees_charged = self.fees_charged.checked_add(fee)?;
                self.missed_installments += 1;
            }
            self.fees_charged_through = k;
        }
        self.update_next()
    }

    /// Stores the next installment for clients: (0, 0) once nothing more falls due.
    fn update_next(&mut self) -> Option<()> {
        (self.next_due_ts, self.next_due_amount) = match self.next_installment() {
            Some(next) if !self.is_repaid() => next,
            _ => (0, 0),
        };
        Some(())
    }

    /// Applies up to `amount` at `now` (after `accrue(now)`); returns what was taken.
    pub fn repay(&mut self, amount: u64, now: i64) -> Option<Applied> {
        let rest = &mut { amount };
        let fees = take(rest, &mut self.fees_due);
        let mut interest = take(rest, &mut self.interest_due);
        let mut principal = take(rest, &mut self.principal_due);
        if *rest > 0 {
            self.realise_interest(now)?;
            // `realise_interest` may have made post-maturity interest due.
            interest += take(rest, &mut self.interest_due);
            interest += take(rest, &mut self.period_interest);
            let mut not_due = self.principal_outstanding - self.principal_due - principal;
            principal += take(rest, &mut not_due);
        }
        self.principal_outstanding -= principal;
        self.principal_repaid = self.principal_repaid.checked_add(principal)?;
        self.interest_paid = self.interest_paid.checked_add(interest)?;
        self.fees_paid = self.fees_paid.checked_add(fees)?;
        if self.past_due() == 0 {
            self.past_due_since = 0;
        }
        self.update_next()?;
        Some(Applied { fees, interest, principal })
    }

    /// Writes off what is left after a recovery: the loan carries no balance afterwards.
    /// Returns the amount written off (the lender's shortfall).
    pub fn write_off(&mut self, now: i64) -> Option<u64> {
        self.accrue(now)?;
        let left = self.payoff(now)?;
        self.realise_interest(now)?;
        self.principal_written_off = self.principal_outstanding;
        self.written_off = left;
        self.principal_outstanding = 0;
        self.principal_due = 0;
        self.interest_due = 0;
        self.period_interest = 0;
        self.fees_due = 0;
        self.past_due_since = 0;
        self.update_next()?;
        Some(left)
    }

    /// Quote value of `credits` escrowed credits at `rate_bps` of their cost, where
    /// `total_credits` were bought with the principal. Rounded down (the market pays).
    pub fn recovery_value(&self, credits: u64, total_credits: u64, rate_bps: u16) -> Option<u64> {
        let cost = mul_div_floor(credits, self.principal, total_credits)?;
        mul_div_floor(cost, rate_bps as u64, BPS)
    }
}

/// Moves `min(rest, due)` out of both.
fn take(rest: &mut u64, due: &mut u64) -> u64 {
    let x = (*rest).min(*due);
    *due -= x;
    *rest -= x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_767_225_600;

    /// Pays every installment on its due date; returns each payment and the principal left.
    fn on_time_life(loan: &mut Loan) -> Vec<(u64, u64)> {
        (1..=loan.installments)
            .map(|k| {
                let due = loan.due_ts(k).unwrap();
                loan.accrue(due).unwrap();
                let owed = loan.past_due();
                let paid = loan.repay(owed, due).unwrap().total();
                assert_eq!(paid, owed);
                (paid, loan.principal_outstanding)
            })
            .collect()
    }

    fn amounts(life: &[(u64, u64)]) -> Vec<u64> {
        life.iter().map(|&(paid, _)| paid).collect()
    }

    #[test]
    fn worked_example_from_the_docs() {
        // 100_000 quote units at 12 % APR, 4 installments of 30 days, 10-day grace, 5 % late fee.
        let mut loan = Loan::new(100_000, 1_200, 30 * DAY, 4, 10 * DAY, 500, T0).unwrap();
        assert_eq!(loan.installment_amount, 25_620);
        assert_eq!((loan.next_due_ts, loan.next_due_amount), (T0 + 30 * DAY, 25_620));
        assert_eq!(amounts(&on_time_life(&mut loan)), vec![25_620, 25_620, 25_620, 25_620]);
        assert_eq!(loan.scheduled_total, 102_480);
        assert_eq!(loan.interest_paid, 2_480);
        assert!(loan.is_repaid());
    }

    #[test]
    fn zero_apr_splits_principal() {
        let mut loan = Loan::new(10, 0, DAY, 3, 0, 0, T0).unwrap();
        assert_eq!(loan.installment_amount, 4);
        assert_eq!(amounts(&on_time_life(&mut loan)), vec![4, 4, 2]);
    }

    #[test]
    fn late_installment_charges_one_fee_after_grace() {
        let mut loan = Loan::new(100_000, 1_200, 30 * DAY, 4, 10 * DAY, 500, T0).unwrap();
        let due1 = loan.due_ts(1).unwrap();
        loan.accrue(due1 + 10 * DAY - 1).unwrap();
        assert_eq!((loan.fees_due, loan.past_due_since), (0, due1), "within grace: no fee yet");
        loan.accrue(due1 + 10 * DAY).unwrap();
        assert_eq!(loan.fees_due, 1_281, "5 % of 25_620, rounded up");
        loan.accrue(due1 + 20 * DAY).unwrap();
        assert_eq!(loan.fees_due, 1_281, "charged once");
        assert_eq!((loan.missed_installments, loan.next_due_ts), (1, loan.due_ts(2).unwrap()));
        let owed = loan.past_due();
        let applied = loan.repay(owed, due1 + 20 * DAY).unwrap();
        assert_eq!(applied.fees, 1_281);
        assert_eq!(loan.past_due_since, 0, "current again");
    }

    #[test]
    fn prepayment_in_full_charges_interest_to_the_second() {
        let mut loan = Loan::new(100_000, 1_200, 30 * DAY, 4, 0, 0, T0).unwrap();
        let t = T0 + 15 * DAY;
        loan.accrue(t).unwrap();
        // 100_000 x 12 % x 15/365 = 493.15 -> 494.
        assert_eq!(loan.payoff(t), Some(100_494));
        let applied = loan.repay(u64::MAX, t).unwrap();
        assert_eq!((applied.interest, applied.principal), (494, 100_000));
        assert!(loan.is_repaid());
    }

    proptest! {
        #[test]
        fn on_time_schedule_is_exact(
            principal in 1u64..=1_000_000_000_000_000,
            apr in 0u16..=20_000,
            period_days in 1i64..=366,
            n in 1u16..=120,
        ) {
            let mut loan = Loan::new(principal, apr, period_days * DAY, n, 0, 0, T0).unwrap();
            let life = on_time_life(&mut loan);
            let payments = amounts(&life);
            let total: u128 = payments.iter().map(|&p| p as u128).sum();
            prop_assert_eq!(total, principal as u128 + loan.interest_paid as u128);
            prop_assert_eq!(total, loan.scheduled_total as u128);
            prop_assert_eq!(loan.principal_repaid, principal);
            prop_assert!(loan.is_repaid());
            // Every installment but the last is the annuity while principal remains (a dust
            // principal is repaid early); the last balances the total exactly.
            let a = loan.installment_amount;
            let (_, rest) = life.split_last().unwrap();
            prop_assert!(rest.iter().all(|&(p, left)| p == a || (left == 0 && p <= a)));
        }

        #[test]
        fn interest_rounds_up_by_less_than_one_unit(balance in 0u64..=u64::MAX / 4, apr in 0u16..=20_000, secs in 0u64..=366 * 86_400) {
            let i = interest(balance, apr, secs).unwrap();
            let exact = balance as u128 * apr as u128 * secs as u128;
            let denom = BPS as u128 * SECONDS_PER_YEAR as u128;
            prop_assert!(i as u128 * denom >= exact);
            prop_assert!((i as u128) * denom < exact + denom);
        }

        #[test]
        fn interest_grows_with_apr_and_term(
            principal in 1_000u64..=1_000_000_000_000_000,
            apr in 1u16..=19_999,
            n in 1u16..=119,
        ) {
            let total = |apr, n| Loan::new(principal, apr, 30 * DAY, n, 0, 0, T0).unwrap().scheduled_total;
            prop_assert!(total(apr + 1, n) >= total(apr, n));
            prop_assert!(total(apr, n + 1) >= total(apr, n));
        }

        #[test]
        fn repayment_never_takes_more_than_owed(
            principal in 1u64..=1_000_000_000_000,
            apr in 0u16..=20_000,
            pay in any::<u64>(),
            at_day in 0i64..=400,
        ) {
            let mut loan = Loan::new(principal, apr, 30 * DAY, 12, 5 * DAY, 200, T0).unwrap();
            let now = T0 + at_day * DAY;
            loan.accrue(now).unwrap();
            let owed = loan.payoff(now).unwrap();
            let applied = loan.repay(pay, now).unwrap();
            prop_assert_eq!(applied.total(), pay.min(owed));
            prop_assert_eq!(loan.principal_repaid + loan.principal_outstanding, principal);
        }
    }
}
