//! Which providers a request tries, in what order: the caller's OpenRouter-style `provider`
//! preferences, observed latency, and each provider's health (a circuit breaker).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::clock::Clock;
use crate::domain::catalog::Provider;
use crate::domain::pricing::Price;
use crate::error::ApiError;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Cheapest first (the default).
    #[default]
    Price,
    /// Fastest observed first; providers not yet measured go last.
    Latency,
}

/// Most a caller will pay, in credit base units per 1M tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
}

/// The request's `provider` object. Names are provider names, compared without case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Try these first, in this order.
    #[serde(default)]
    pub order: Vec<String>,
    /// Use only these.
    pub only: Option<Vec<String>>,
    /// Never use these.
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub sort: Sort,
    /// With `false`, only the first provider of the route is tried.
    pub allow_fallbacks: Option<bool>,
    pub max_price: Option<MaxPrice>,
}

fn named(list: &[String], p: &Provider) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(&p.name))
}

/// One provider on a request's route, with the model's price there and the request's
/// worst-case cost at that price.
pub type Stop<'a> = (&'a Provider, Price, u64);

/// Orders and filters `candidates` for one request.
pub fn plan<'a>(
    mut candidates: Vec<Stop<'a>>,
    prefs: &Preferences,
    health: &Health,
) -> Result<Vec<Stop<'a>>, ApiError> {
    let served_at_all = !candidates.is_empty();
    candidates.retain(|(p, price, _)| {
        prefs.only.as_ref().is_none_or(|only| named(only, p))
            && !named(&prefs.ignore, p)
            && prefs.max_price.is_none_or(|m| {
                m.prompt.is_none_or(|x| price.input_per_1m <= x)
                    && m.completion.is_none_or(|x| price.output_per_1m <= x)
            })
    });
    if candidates.is_empty() && served_at_all {
        // Well formed, but nothing matches: not found, as OpenRouter answers it (a 400 would
        // tell the caller its request is malformed).
        return Err(ApiError {
            param: Some("provider"),
            ..ApiError::not_found(
                "no_provider",
                "No provider serving this model matches the `provider` preferences (only, ignore, max_price).",
            )
        });
    }
    match prefs.sort {
        Sort::Price => candidates.sort_by_key(|(_, _, worst)| *worst),
        Sort::Latency => {
            candidates.sort_by_key(|(p, _, worst)| (health.latency_us(&p.name).unwrap_or(u64::MAX), *worst))
        }
    }
    // Named providers first, in the caller's order; a stable sort keeps the rest in place.
    candidates.sort_by_key(|(p, _, _)| {
        prefs.order.iter().position(|n| n.eq_ignore_ascii_case(&p.name)).unwrap_or(usize::MAX)
    });
    // Providers whose breaker is open go last: tried only when nothing else is left.
    candidates.sort_by_key(|(p, _, _)| !health.available(&p.name));
    if prefs.allow_fallbacks == Some(false) {
        candidates.truncate(1);
    }
    Ok(candidates)
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// Exponentially weighted average of successful calls, in microseconds.
    latency_us: Option<u64>,
}

/// Per-provider health: a circuit breaker (open after `threshold` consecutive failures for
/// `cooldown`, then one probe is let through) and observed latency.
pub struct Health {
    clock: Clock,
    threshold: u32,
    cooldown: Duration,
    states: Mutex<HashMap<String, State>>,
}

impl Health {
    pub fn new(clock: Clock, threshold: u32, cooldown: Duration) -> Health {
        Health { clock, threshold: threshold.max(1), cooldown, states: Mutex::new(HashMap::new()) }
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut State) -> R) -> R {
        let mut map = self.states.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name.to_string()).or_default())
    }

    /// False while the breaker is open; once the cooldown passes, a probe may go.
    pub fn available(&self, name: &str) -> bool {
        let now = self.clock.instant();
        self.with(name, |s| s.open_until.is_none_or(|t| now >= t))
    }

    pub fn latency_us(&self, name: &str) -> Option<u64> {
        self.with(name, |s| s.latency_us)
    }

    pub fn succeeded(&self, name: &str, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.with(name, |s| {
            s.consecutive_failures = 0;
            s.open_until = None;
            s.latency_us = Some(s.latency_us.map_or(us, |prev| (prev * 4 + us) / 5));
        });
    }

    /// The provider rate-limited the marketplace's own credentials: out of routing for
    /// `wait` (its Retry-After) or a cool-down, at once, whatever the failure count.
    pub fn rate_limited(&self, name: &str, wait: Option<Duration>) {
        let until = self.clock.instant() + wait.unwrap_or(self.cooldown);
        self.with(name, |s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.open_until = Some(s.open_until.map_or(until, |t| t.max(until)));
        });
    }

    pub fn failed(&self, name: &str) {
        let (threshold, cooldown, now) = (self.threshold, self.cooldown, self.clock.instant());
        self.with(name, |s| {
            s.consecutive_failures += 1;
            if s.consecutive_failures >= threshold {
                // Open (again, after a failed probe) for another cooldown.
                s.open_until = Some(now + cooldown);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str) -> Provider {
        Provider::new(name, "http://x", vec![])
    }

    fn names(route: &[Stop]) -> Vec<String> {
        route.iter().map(|(p, _, _)| p.name.clone()).collect()
    }

    #[test]
    fn preferences_filter_and_order_the_route() {
        let (a, b, c) = (provider("a"), provider("b"), provider("c"));
        let price = |x| Price::flat(x, x);
        let all = || vec![(&c, price(3), 30), (&a, price(1), 10), (&b, price(2), 20)];
        let h = Health::new(Clock::system(), 3, Duration::from_secs(60));
        let route = |p: Preferences| names(&plan(all(), &p, &h).unwrap());
        assert_eq!(route(Preferences::default()), ["a", "b", "c"], "cheapest first");
        assert_eq!(
            route(Preferences { only: Some(vec!["C".into(), "b".into()]), ..Default::default() }),
            ["b", "c"]
        );
        assert_eq!(route(Preferences { ignore: vec!["a".into()], ..Default::default() }), ["b", "c"]);
        assert_eq!(
            route(Preferences { order: vec!["c".into(), "b".into()], ..Default::default() }),
            ["c", "b", "a"]
        );
        assert_eq!(
            route(Preferences {
                allow_fallbacks: Some(false),
                order: vec!["b".into()],
                ..Default::default()
            }),
            ["b"]
        );
        let cap = MaxPrice { prompt: Some(2), completion: None };
        assert_eq!(route(Preferences { max_price: Some(cap), ..Default::default() }), ["a", "b"]);
        h.succeeded("c", Duration::from_millis(1));
        h.succeeded("b", Duration::from_millis(5));
        assert_eq!(
            route(Preferences { sort: Sort::Latency, ..Default::default() }),
            ["c", "b", "a"],
            "unmeasured last"
        );
        let none = Preferences { only: Some(vec!["zzz".into()]), ..Default::default() };
        let e = plan(all(), &none, &h).unwrap_err();
        assert_eq!((e.status, e.code), (axum::http::StatusCode::NOT_FOUND, "no_provider"));
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_lets_a_probe_through_later() {
        let clock = Clock::adjustable();
        let h = Health::new(clock.clone(), 2, Duration::from_secs(30));
        h.failed("a");
        assert!(h.available("a"), "one failure is not enough");
        h.failed("a");
        assert!(!h.available("a"));
        clock.advance(Duration::from_secs(29));
        assert!(!h.available("a"), "open for the whole cooldown");
        clock.advance(Duration::from_secs(1));
        assert!(h.available("a"), "a probe may go after the cooldown");
        h.failed("a");
        assert!(!h.available("a"), "a failed probe opens it again");
        clock.advance(Duration::from_secs(30));
        h.succeeded("a", Duration::from_millis(3));
        h.failed("a");
        assert!(h.available("a"), "a success closes it and resets the count");
    }
}
