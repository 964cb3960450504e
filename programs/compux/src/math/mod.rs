//! Pure integer math: no accounts, no clock, no CPI. Every function returns `None` on
//! overflow (the handlers turn that into `MathOverflow`) and names its rounding direction.
//! Rounding never favours the party who sends the instruction: what a user pays rounds up,
//! what a user receives rounds down.

pub mod loan;
pub mod pricing;
pub mod reservation;
pub mod usage_chain;

/// `a * b / d`, rounded down. `None` on overflow or `d == 0`.
pub fn mul_div_floor(a: u64, b: u64, d: u64) -> Option<u64> {
    if d == 0 {
        return None;
    }
    let q = (a as u128).checked_mul(b as u128)? / d as u128;
    u64::try_from(q).ok()
}

/// `a * b / d`, rounded up. `None` on overflow or `d == 0`.
pub fn mul_div_ceil(a: u64, b: u64, d: u64) -> Option<u64> {
    if d == 0 {
        return None;
    }
    let n = (a as u128).checked_mul(b as u128)?;
    let q = n.div_ceil(d as u128);
    u64::try_from(q).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounding_directions() {
        assert_eq!(mul_div_floor(7, 3, 2), Some(10));
        assert_eq!(mul_div_ceil(7, 3, 2), Some(11));
        assert_eq!(mul_div_ceil(6, 3, 2), Some(9));
        assert_eq!(mul_div_floor(1, 1, 0), None);
        assert_eq!(mul_div_ceil(u64::MAX, u64::MAX, 1), None);
        assert_eq!(mul_div_floor(u64::MAX, u64::MAX, u64::MAX), Some(u64::MAX));
    }

    proptest! {
        #[test]
        fn ceil_is_floor_plus_remainder(a: u64, b: u64, d in 1u64..) {
            let exact = a as u128 * b as u128;
            let floor = mul_div_floor(a, b, d);
            let ceil = mul_div_ceil(a, b, d);
            if let (Some(f), Some(c)) = (floor, ceil) {
                prop_assert!(f as u128 * d as u128 <= exact);
                prop_assert!(c as u128 * d as u128 >= exact);
                prop_assert_eq!(c - f, u64::from(!exact.is_multiple_of(d as u128)));
            } else {
                // Only the u64 conversion of the quotient can fail.
                prop_assert!(exact.div_ceil(d as u128) > u64::MAX as u128);
            }
        }
    }
}
