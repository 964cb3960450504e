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
    /// Per 1M prompt tokens read from the provider's prompt cache (often a tenth of the
    /// input price); the input price when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_1m: Option<u64>,
    /// Per 1M prompt tokens written to the provider's prompt cache (Anthropic charges more
    /// than input for them); the input price when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_1m: Option<u64>,
}

impl Price {
    /// One price for every prompt token, cached or not.
    pub const fn flat(input_per_1m: u64, output_per_1m: u64) -> Price {
        Price { input_per_1m, output_per_1m, cached_input_per_1m: None, cache_write_per_1m: None }
    }

    /// The dearest a prompt token can be (what a hold assumes, not knowing the cache).
    fn max_prompt_per_1m(&self) -> u64 {
        let cached = self.cached_input_per_1m.unwrap_or(0);
        self.input_per_1m.max(cached).max(self.cache_write_per_1m.unwrap_or(0))
    }
}

/// The tokens of one request as its provider counted them. `input` is every prompt token,
/// `cached` (read from the cache) and `cache_write` (written to it) included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub cache_write: u64,
}

impl Tokens {
    /// Prompt and output tokens with nothing cached.
    pub const fn plain(input: u64, output: u64) -> Tokens {
        Tokens { input, output, cached: 0, cache_write: 0 }
    }
}

impl Tokens {
    /// The tokens in an OpenAI `usage` object: `prompt_tokens` (cache reads in
    /// `prompt_tokens_details.cached_tokens`, writes in `cache_write_tokens`, as OpenRouter
    /// reports them) and `completion_tokens` (embeddings report none).
    pub fn of_usage(u: &serde_json::Value) -> Option<Tokens> {
        let input = u["prompt_tokens"].as_u64()?;
        let output = match &u["completion_tokens"] {
            serde_json::Value::Null if u["total_tokens"].as_u64() == Some(input) => 0,
            n => n.as_u64()?,
        };
        // Some hosts leave reasoning tokens out of completion_tokens (in
        // completion_tokens_details) but not out of total_tokens: they are billed output.
        let output = output.max(u["total_tokens"].as_u64().map_or(0, |t| t.saturating_sub(input)));
        let details = &u["prompt_tokens_details"];
        let n = |k: &str| details[k].as_u64().unwrap_or(0);
        Some(Tokens { input, output, cached: n("cached_tokens"), cache_write: n("cache_write_tokens") })
    }
}

const PER: u128 = 1_000_000;

/// The exact cost of `input` and `output` tokens at the input price, rounded up to a base
/// unit. `None` if it does not fit in a u64 (no balance could pay it).
pub fn cost(p: Price, input: u64, output: u64) -> Option<u64> {
    charge(p, Tokens::plain(input, output))
}

/// The exact cost of `t`, rounded up to a base unit: uncached prompt tokens at the input
/// price, cache reads and writes at theirs, output at the output price. Counts that do not
/// add up (more cached than prompt) are charged as reported, never less.
pub fn charge(p: Price, t: Tokens) -> Option<u64> {
    let uncached = t.input.saturating_sub(t.cached.saturating_add(t.cache_write));
    let parts = [
        (uncached, p.input_per_1m),
        (t.cached, p.cached_input_per_1m.unwrap_or(p.input_per_1m)),
        (t.cache_write, p.cache_write_per_1m.unwrap_or(p.input_per_1m)),
        (t.output, p.output_per_1m),
    ];
    let units = parts.iter().try_fold(0u128, |sum, (n, per)| sum.checked_add(*n as u128 * *per as u128))?;
    u64::try_from(units.div_ceil(PER)).ok()
}

/// The most `input` prompt tokens and `output` tokens can cost, whatever the cache does:
/// every prompt token at the dearest prompt price. What a hold covers.
pub fn worst(p: Price, input: u64, output: u64) -> Option<u64> {
    cost(Price { input_per_1m: p.max_prompt_per_1m(), ..p }, input, output)
}

/// `p` times `bps` / 10000, each price rounded up (a surcharge or discount never rounds in
/// the caller's favour).
pub fn scaled(p: Price, bps: u32) -> Price {
    let f = |x: u64| u64::try_from((x as u128 * bps as u128).div_ceil(10_000)).unwrap_or(u64::MAX);
    Price {
        input_per_1m: f(p.input_per_1m),
        output_per_1m: f(p.output_per_1m),
        cached_input_per_1m: p.cached_input_per_1m.map(f),
        cache_write_per_1m: p.cache_write_per_1m.map(f),
    }
}

/// `amount` credits at price `of`, re-expressed at price `at`, when the token counts are not
/// known (a reply without usage): the larger of the input and output ratios, rounded up, so
/// the provider's share is never understated and the margin never overstated.
pub fn proportion(amount: u64, at: Price, of: Price) -> u64 {
    let side = |a: u64, o: u64| (o > 0).then(|| (amount as u128 * a as u128).div_ceil(o as u128));
    let best = side(at.input_per_1m, of.input_per_1m).max(side(at.output_per_1m, of.output_per_1m));
    best.map_or(0, |b| u64::try_from(b).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_up_to_a_base_unit() {
        let p = Price::flat(150_000, 600_000);
        assert_eq!(cost(p, 1_000_000, 0), Some(150_000));
        assert_eq!(cost(p, 1, 0), Some(1), "0.15 of a unit rounds up");
        assert_eq!(cost(p, 0, 0), Some(0));
        assert_eq!(cost(p, 10, 20), Some(14), "1.5 + 12 = 13.5 -> 14");
        let max = Price::flat(u64::MAX, u64::MAX);
        assert_eq!(cost(max, u64::MAX, u64::MAX), None);
    }

    #[test]
    fn hour_multipliers_scale_and_round_up() {
        let p = Price::flat(1_000_001, 3);
        assert_eq!(scaled(p, 10_000), p);
        assert_eq!(scaled(p, 5_000), Price::flat(500_001, 2), "halves, rounded up");
        assert_eq!(scaled(p, 12_500).output_per_1m, 4);
        assert_eq!(scaled(Price::flat(u64::MAX, 0), 20_000).input_per_1m, u64::MAX);
    }

    #[test]
    fn proportion_takes_the_larger_ratio_rounded_up() {
        let caller = Price::flat(1_000, 2_000);
        let provider = Price::flat(800, 1_900);
        assert_eq!(proportion(100, provider, caller), 95, "output ratio 0.95 beats input 0.8");
        assert_eq!(proportion(101, provider, caller), 96, "95.95 rounds up");
        assert_eq!(proportion(100, caller, caller), 100);
        assert_eq!(proportion(100, provider, Price::flat(0, 0)), 0);
    }

    #[test]
    fn cached_reads_and_cache_writes_are_charged_at_their_own_prices() {
        let p = Price {
            cached_input_per_1m: Some(300_000),
            cache_write_per_1m: Some(3_750_000),
            ..Price::flat(3_000_000, 15_000_000)
        };
        // 1,000 prompt tokens, 800 of them read from the cache, 100 written to it; 50 out.
        let t = Tokens { input: 1_000, output: 50, cached: 800, cache_write: 100 };
        // 100 x 3 + 800 x 0.3 + 100 x 3.75 + 50 x 15 = 300 + 240 + 375 + 750
        assert_eq!(charge(p, t), Some(1_665));
        assert_eq!(charge(Price::flat(3_000_000, 15_000_000), t), Some(3_750), "unset: the input price");
        assert_eq!(worst(p, 1_000, 50), Some(3_750 + 750), "a hold assumes every prompt token written");
        let odd = Tokens { input: 10, output: 0, cached: 100, cache_write: 0 };
        assert_eq!(charge(p, odd), Some(30), "more cached than prompt: charged as reported");
    }

    proptest! {
        /// What a request is charged never exceeds its hold when its counts are within the
        /// bounds the hold assumed, whatever the cache split.
        #[test]
        fn a_charge_within_the_bounds_never_exceeds_the_worst_case(
            pin in 0u64..10_000_000_000, pout in 0u64..10_000_000_000, pc in 0u64..10_000_000_000, pw in 0u64..10_000_000_000,
            input in 0u64..1_000_000, output in 0u64..1_000_000, cached in 0u64..1_000_000, write in 0u64..1_000_000,
        ) {
            let p = Price { cached_input_per_1m: Some(pc), cache_write_per_1m: Some(pw), ..Price::flat(pin, pout) };
            let (cached, write) = (cached.min(input), write.min(input - cached.min(input)));
            let t = Tokens { input, output, cached, cache_write: write };
            prop_assert!(charge(p, t).unwrap() <= worst(p, input, output).unwrap());
            let exact = (input - cached - write) as u128 * pin as u128 + cached as u128 * pc as u128
                + write as u128 * pw as u128 + output as u128 * pout as u128;
            let c = charge(p, t).unwrap() as u128;
            prop_assert!(c * PER >= exact && (c == 0 || (c - 1) * PER < exact));
        }

        /// Re-expressed at a price, the share never falls below either side's exact ratio.
        #[test]
        fn proportion_never_understates(amount in 0u64..1_000_000_000, a in 0u64..10_000_000, b in 1u64..10_000_000) {
            let at = Price::flat(a, a / 2);
            let of = Price::flat(b, b);
            let p = proportion(amount, at, of) as u128;
            prop_assert!(p * b as u128 >= amount as u128 * a as u128);
            prop_assert!(p == 0 || (p - 1) * (b as u128) < amount as u128 * a as u128);
        }

        #[test]
        fn never_below_the_exact_price_and_monotonic(
            pin in 0u64..10_000_000_000, pout in 0u64..10_000_000_000,
            i in 0u64..1_000_000_000, o in 0u64..1_000_000_000, di in 0u64..1_000, dout in 0u64..1_000,
        ) {
            let p = Price::flat(pin, pout);
            let c = cost(p, i, o).unwrap() as u128;
            let units = i as u128 * pin as u128 + o as u128 * pout as u128;
            // The smallest whole number of base units worth at least the exact price.
            prop_assert!(c * PER >= units);
            prop_assert!(c == 0 || (c - 1) * PER < units);
            prop_assert!(cost(p, i + di, o + dout).unwrap() as u128 >= c);
        }
    }
}
