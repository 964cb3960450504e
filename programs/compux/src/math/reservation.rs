//! Reserved credits: locked price, per-period cost, early-termination deposit.

use super::{mul_div_ceil, pricing::quote_for_credits};
use crate::constants::BPS;
use crate::state::ReserveDiscount;

/// The discount for a term of `term_secs`: the highest tier the term reaches.
pub fn discount_for_term(term_secs: i64, discounts: &[ReserveDiscount]) -> u16 {
    discounts.iter().filter(|d| term_secs >= d.min_term_secs).map(|d| d.discount_bps).max().unwrap_or(0)
}

/// Locked price per whole credit: base price less the discount, rounded up (the
/// reserving startup never locks below the exact discounted price).
pub fn locked_price(base_price: u64, discount_bps: u16) -> Option<u64> {
    mul_div_ceil(base_price, BPS.checked_sub(discount_bps as u64)?, BPS)
}

/// Quote owed for one period's credits at the locked price, rounded up.
pub fn period_cost(credits_per_period: u64, locked_price: u64) -> Option<u64> {
    quote_for_credits(credits_per_period, locked_price, BPS as u16)
}

/// The discount of one period: its credits at the base price (rounded down, the market's
/// claim) less the period cost at the locked price. Never negative.
pub fn period_discount(credits_per_period: u64, base_price: u64, period_cost: u64) -> Option<u64> {
    let full = super::mul_div_floor(credits_per_period, base_price, crate::constants::CREDIT_UNIT)?;
    Some(full.saturating_sub(period_cost))
}

/// The discount tier is earned by the future commitment: the first period is claimable at
/// once, so only the periods after it count.
pub fn committed_term(periods: u16, period_secs: i64) -> Option<i64> {
    period_secs.checked_mul((periods as i64).checked_sub(1)?)
}

/// Early-termination fee: `fee_bps` of the whole commitment, rounded up.
pub fn termination_deposit(period_cost: u64, periods: u16, fee_bps: u16) -> Option<u64> {
    let commitment = period_cost.checked_mul(periods as u64)?;
    mul_div_ceil(commitment, fee_bps as u64, BPS)
}

/// What a reservation costs, as `reserve` computes it when it lands (a client quotes the
/// same to set the owner's bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservationQuote {
    pub discount_bps: u16,
    pub locked_price: u64,
    pub period_cost: u64,
    /// The early-termination fee, forfeited on cancellation or lapse.
    pub fee: u64,
    /// One period's discount, clawed back for each claimed period on cancellation.
    pub period_discount: u64,
    /// Taken at once: the fee plus room to claw back the discount of every period but the
    /// last.
    pub deposit: u64,
}

/// Prices `periods` periods of `credits_per_period` credits at `base_price` with the market's
/// term `discounts` and early-termination `fee_bps`.
pub fn quote_reservation(
    credits_per_period: u64,
    periods: u16,
    period_secs: i64,
    base_price: u64,
    discounts: &[ReserveDiscount],
    fee_bps: u16,
) -> Option<ReservationQuote> {
    let discount_bps = discount_for_term(committed_term(periods, period_secs)?, discounts);
    let locked_price = locked_price(base_price, discount_bps)?;
    let period_cost = period_cost(credits_per_period, locked_price)?;
    let fee = termination_deposit(period_cost, periods, fee_bps)?;
    let period_discount = period_discount(credits_per_period, base_price, period_cost)?;
    let deposit = period_discount.checked_mul((periods as u64).checked_sub(1)?)?.checked_add(fee)?;
    Some(ReservationQuote { discount_bps, locked_price, period_cost, fee, period_discount, deposit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::CREDIT_UNIT;
    use proptest::prelude::*;

    #[test]
    fn discount_tiers() {
        let d = [
            ReserveDiscount { min_term_secs: 30 * 86_400, discount_bps: 1_000 },
            ReserveDiscount { min_term_secs: 90 * 86_400, discount_bps: 2_000 },
        ];
        assert_eq!(discount_for_term(29 * 86_400, &d), 0);
        assert_eq!(discount_for_term(30 * 86_400, &d), 1_000);
        assert_eq!(discount_for_term(365 * 86_400, &d), 2_000);
    }

    #[test]
    fn exact_examples() {
        assert_eq!(locked_price(1_000, 1_000), Some(900));
        assert_eq!(locked_price(999, 1_000), Some(900)); // 899.1 rounds up
        assert_eq!(period_cost(5 * CREDIT_UNIT, 900), Some(4_500));
        assert_eq!(termination_deposit(4_500, 4, 500), Some(900));
        assert_eq!(termination_deposit(1, 1, 1), Some(1)); // never rounds a fee to zero
        assert_eq!(termination_deposit(u64::MAX, 520, 100), None);
    }

    proptest! {
        #[test]
        fn locked_price_never_below_exact(price in 1u64..=u64::MAX / BPS, d in 0u16..=9_000) {
            let p = locked_price(price, d).unwrap();
            let exact = price as u128 * (BPS - d as u64) as u128;
            prop_assert!(p as u128 * BPS as u128 >= exact);
            prop_assert!(p <= price);
        }

        #[test]
        fn a_broken_commitment_never_costs_less_than_the_base_price(
            price in 1u64..=1_000_000_000, d in 0u16..=9_000, credits in 1u64..=1u64 << 40, claimed in 1u64..=519,
        ) {
            // Claimed periods paid at the locked price plus the clawback of their discount.
            let locked = locked_price(price, d).unwrap();
            let cost = period_cost(credits, locked).unwrap();
            let discount = period_discount(credits, price, cost).unwrap();
            let full = crate::math::mul_div_floor(credits, price, crate::constants::CREDIT_UNIT).unwrap();
            prop_assert!((cost + discount) as u128 * claimed as u128 >= full as u128 * claimed as u128);
            prop_assert!(discount <= full);
        }

        #[test]
        fn the_discount_tier_ignores_the_first_period(periods in 2u16..=520, secs in 60i64..=366 * 86_400) {
            prop_assert_eq!(committed_term(periods, secs), Some(secs * (periods as i64 - 1)));
        }

        #[test]
        fn deposit_is_ceil_of_share(cost in 0u64..=1u64 << 40, periods in 1u16..=520, fee in 0u16..=10_000) {
            let dep = termination_deposit(cost, periods, fee).unwrap();
            let exact = cost as u128 * periods as u128 * fee as u128;
            prop_assert!(dep as u128 * BPS as u128 >= exact);
            prop_assert!((dep as u128 * BPS as u128) < exact + BPS as u128);
        }
    }
}
