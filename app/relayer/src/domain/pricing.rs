//! Credits for tokens. Prices are credit base units per 1M tokens; every division rounds up,
//! so the marketplace never undercharges by more than nothing and the caller never pays
//! less than the exact price (documented in docs/relayer.md).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Credit base units per 1M input (prompt) tokens.
    pub input_per_1m: u64,
    /// Credit base units per 1M output (completion) tokens.
    pub output_per_1m: u64,
}

const PER: u128 = 1_000_000;

/// The exact cost of `input` and `output` tokens, rounded up to a base unit. `None` if it
/// does not fit in a u64 (no balance could pay it).
pub fn cost(p: Price, input: u64, output: u64) -> Option<u64> {
    let units = ((input as u128) * (p.input_per_1m as u128))
        .checked_add((output as u128) * (p.output_per_1m as u128))?;
    u64::try_from(units.div_ceil(PER)).ok()
}

/// `p` times `bps` / 10000, each side rounded up (a surcharge or discount never rounds in
/// the caller's favour).
pub fn scaled(p: Price, bps: u32) -> Price {
    let f = |x: u64| u64::try_from((x as u128 * bps as u128).div_ceil(10_000)).unwrap_or(u64::MAX);
    Price { input_per_1m: f(p.input_per_1m), output_per_1m: f(p.output_per_1m) }
}

/// `amount` credits at price `of`, re-expressed at price `at`, when the token counts are not
/// known (a reply without usage): the larger of the input and output ratios, rounded up, so
/// the provider's share is never understated and the margin never overstated.
pub fn proportion(amount: u64, at: Price, of: Price) -> u64 {
    let side = |a: u64, o: u64| (o > 0).then(|| (amount as u128 * a as u128).div_ceil(o as u128));
    let best = side(at.input_per_1m, of.input_per_1m).max(side(at.output_per_1m, of.output_per_1m));
    best.map_or(0, |b| u64::try_from(b).unwrap_or(u64::MAX))
}

/// An upper bound on the prompt's tokens: a byte-level tokenizer never makes more tokens
/// than bytes, so the bytes of the message contents bound the prompt from above.
pub fn prompt_token_bound(messages: &serde_json::Value) -> u64 {
    fn bytes(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::String(s) => s.len() as u64,
            // A token id (embeddings take arrays of them) is one token.
            serde_json::Value::Number(_) => 1,
            serde_json::Value::Array(a) => a.iter().map(bytes).sum(),
            serde_json::Value::Object(o) => o.values().map(bytes).sum(),
            _ => 0,
        }
    }
    // Each message or input also costs a few tokens of framing, and a tokenizer may add
    // special tokens around the whole.
    let framing = messages.as_array().map_or(0, |m| m.len() as u64 * 4);
    bytes(messages) + framing + 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_up_to_a_base_unit() {
        let p = Price { input_per_1m: 150_000, output_per_1m: 600_000 };
        assert_eq!(cost(p, 1_000_000, 0), Some(150_000));
        assert_eq!(cost(p, 1, 0), Some(1), "0.15 of a unit rounds up");
        assert_eq!(cost(p, 0, 0), Some(0));
        assert_eq!(cost(p, 10, 20), Some(14), "1.5 + 12 = 13.5 -> 14");
        let max = Price { input_per_1m: u64::MAX, output_per_1m: u64::MAX };
        assert_eq!(cost(max, u64::MAX, u64::MAX), None);
    }

    #[test]
    fn hour_multipliers_scale_and_round_up() {
        let p = Price { input_per_1m: 1_000_001, output_per_1m: 3 };
        assert_eq!(scaled(p, 10_000), p);
        assert_eq!(scaled(p, 5_000), Price { input_per_1m: 500_001, output_per_1m: 2 }, "halves, rounded up");
        assert_eq!(scaled(p, 12_500).output_per_1m, 4);
        assert_eq!(scaled(Price { input_per_1m: u64::MAX, output_per_1m: 0 }, 20_000).input_per_1m, u64::MAX);
    }

    #[test]
    fn proportion_takes_the_larger_ratio_rounded_up() {
        let caller = Price { input_per_1m: 1_000, output_per_1m: 2_000 };
        let provider = Price { input_per_1m: 800, output_per_1m: 1_900 };
        assert_eq!(proportion(100, provider, caller), 95, "output ratio 0.95 beats input 0.8");
        assert_eq!(proportion(101, provider, caller), 96, "95.95 rounds up");
        assert_eq!(proportion(100, caller, caller), 100);
        assert_eq!(proportion(100, provider, Price { input_per_1m: 0, output_per_1m: 0 }), 0);
    }

    proptest! {
        /// Re-expressed at a price, the share never falls below either side's exact ratio.
        #[test]
        fn proportion_never_understates(amount in 0u64..1_000_000_000, a in 0u64..10_000_000, b in 1u64..10_000_000) {
            let at = Price { input_per_1m: a, output_per_1m: a / 2 };
            let of = Price { input_per_1m: b, output_per_1m: b };
            let p = proportion(amount, at, of) as u128;
            prop_assert!(p * b as u128 >= amount as u128 * a as u128);
            prop_assert!(p == 0 || (p - 1) * (b as u128) < amount as u128 * a as u128);
        }

        #[test]
        fn never_below_the_exact_price_and_monotonic(
            pin in 0u64..10_000_000_000, pout in 0u64..10_000_000_000,
            i in 0u64..1_000_000_000, o in 0u64..1_000_000_000, di in 0u64..1_000, dout in 0u64..1_000,
        ) {
            let p = Price { input_per_1m: pin, output_per_1m: pout };
            let c = cost(p, i, o).unwrap() as u128;
            let units = i as u128 * pin as u128 + o as u128 * pout as u128;
            // The smallest whole number of base units worth at least the exact price.
            prop_assert!(c * PER >= units);
            prop_assert!(c == 0 || (c - 1) * PER < units);
            prop_assert!(cost(p, i + di, o + dout).unwrap() as u128 >= c);
        }
    }
}
