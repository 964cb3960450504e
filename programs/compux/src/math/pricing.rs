//! Standard purchases: hour-of-day price and bulk bonus credits.

use super::{mul_div_ceil, mul_div_floor};
use crate::constants::{BPS, CREDIT_UNIT, HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR};
use crate::state::BulkTier;

/// UTC hour of the chain clock (0..=23); negative timestamps wrap like the calendar does.
/// Unsigned arithmetic only: SBF (before BPF v4) has no signed division or remainder.
pub fn hour_of_day(unix_timestamp: i64) -> usize {
    let day = SECONDS_PER_DAY as u64;
    let into_day = match u64::try_from(unix_timestamp) {
        Ok(t) => t % day,
        Err(_) => (day - unix_timestamp.unsigned_abs() % day) % day,
    };
    (into_day / SECONDS_PER_HOUR as u64) as usize % HOURS_PER_DAY
}

/// Quote units for `credits` base units at `base_price` (quote units per whole credit)
/// scaled by `multiplier_bps`. One division, rounded up: the buyer never pays less than
/// the exact price.
pub fn quote_for_credits(credits: u64, base_price: u64, multiplier_bps: u16) -> Option<u64> {
    let scaled_price = (base_price as u128).checked_mul(multiplier_bps as u128)?;
    let numerator = (credits as u128).checked_mul(scaled_price)?;
    let q = numerator.div_ceil(CREDIT_UNIT as u128 * BPS as u128);
    u64::try_from(q).ok()
}

/// Price of one whole credit at `multiplier_bps`, rounded up (what clients display).
pub fn unit_price(base_price: u64, multiplier_bps: u16) -> Option<u64> {
    mul_div_ceil(base_price, multiplier_bps as u64, BPS)
}

/// Bonus credits for a purchase of `credits`: the highest tier whose `min_credits` the
/// purchase reaches applies; rounded down (the buyer receives).
pub fn bonus_credits(credits: u64, tiers: &[BulkTier]) -> Option<u64> {
    let bonus_bps = tiers.iter().filter(|t| credits >= t.min_credits).map(|t| t.bonus_bps).max().unwrap_or(0);
    mul_div_floor(credits, bonus_bps as u64, BPS)
}

/// What a purchase costs and yields, computed before any token moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub credits: u64,
    pub bonus_credits: u64,
    pub quote_in: u64,
    pub multiplier_bps: u16,
    pub hour: u8,
}

impl Purchase {
    pub fn total_credits(&self) -> Option<u64> {
        self.credits.checked_add(self.bonus_credits)
    }
}

/// Prices a standard purchase of `credits` at the chain time `now`.
pub fn price_purchase(
    credits: u64,
    base_price: u64,
    hour_multipliers_bps: &[u16; HOURS_PER_DAY],
    tiers: &[BulkTier],
    now: i64,
) -> Option<Purchase> {
    let hour = hour_of_day(now);
    let multiplier_bps = hour_multipliers_bps[hour];
    let purchase = Purchase {
        credits,
        bonus_credits: bonus_credits(credits, tiers)?,
        quote_in: quote_for_credits(credits, base_price, multiplier_bps)?,
        multiplier_bps,
        hour: hour as u8,
    };
    purchase.total_credits()?;
    Some(purchase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tiers() -> Vec<BulkTier> {
        vec![
            BulkTier { min_credits: 1_000 * CREDIT_UNIT, bonus_bps: 500 },
            BulkTier { min_credits: 10_000 * CREDIT_UNIT, bonus_bps: 1_000 },
        ]
    }

    proptest! {
        #[test]
        fn hour_of_day_is_the_calendar_hour(t: i64) {
            prop_assert_eq!(hour_of_day(t), (t.rem_euclid(86_400) / 3_600) as usize);
        }
    }

    #[test]
    fn hours_wrap_at_midnight_utc() {
        assert_eq!(hour_of_day(0), 0);
        assert_eq!(hour_of_day(3_599), 0);
        assert_eq!(hour_of_day(3_600), 1);
        assert_eq!(hour_of_day(86_399), 23);
        assert_eq!(hour_of_day(86_400), 0);
        assert_eq!(hour_of_day(-1), 23);
    }

    #[test]
    fn tier_boundaries() {
        let t = tiers();
        assert_eq!(bonus_credits(1_000 * CREDIT_UNIT - 1, &t), Some(0));
        assert_eq!(bonus_credits(1_000 * CREDIT_UNIT, &t), Some(50 * CREDIT_UNIT));
        assert_eq!(bonus_credits(10_000 * CREDIT_UNIT - 1, &t), Some(499_999_999));
        assert_eq!(bonus_credits(10_000 * CREDIT_UNIT, &t), Some(1_000 * CREDIT_UNIT));
    }

    #[test]
    fn quote_rounds_up() {
        // 1 base unit of credit at 1 quote unit per credit costs 1 quote unit, not 0.
        assert_eq!(quote_for_credits(1, 1, 10_000), Some(1));
        assert_eq!(quote_for_credits(CREDIT_UNIT, 2_000, 5_000), Some(1_000));
        assert_eq!(quote_for_credits(u64::MAX, u64::MAX, 65_000), None);
    }

    proptest! {
        #[test]
        fn buyer_never_underpays(credits in 1u64..=u64::MAX / 4, price in 1u64..=1_000_000_000, mult in 1_000u16..=65_000) {
            if let Some(q) = quote_for_credits(credits, price, mult) {
                let exact_num = credits as u128 * price as u128 * mult as u128;
                let denom = CREDIT_UNIT as u128 * BPS as u128;
                prop_assert!(q as u128 * denom >= exact_num);
                prop_assert!((q as u128 - 1) * denom < exact_num, "overcharged by a whole unit");
                prop_assert!(q >= 1);
            }
        }

        #[test]
        fn more_credits_never_cost_less(a in 0u64..=1u64 << 50, b in 0u64..=1u64 << 50, price in 1u64..=1_000_000_000, mult in 1_000u16..=65_000) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(quote_for_credits(lo, price, mult) <= quote_for_credits(hi, price, mult));
        }

        #[test]
        fn bonus_is_bounded_and_monotone(a in 0u64..=1u64 << 60, b in 0u64..=1u64 << 60) {
            let t = tiers();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (blo, bhi) = (bonus_credits(lo, &t).unwrap(), bonus_credits(hi, &t).unwrap());
            prop_assert!(blo <= bhi);
            prop_assert!(bhi <= hi / 10);
        }
    }
}
