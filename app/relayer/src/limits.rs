//! Requests-per-minute limits per key: the generic cell rate algorithm (a token bucket kept
//! as one timestamp per key). A key with `n` requests per minute may burst `n` at once and
//! then one every 60/n seconds. In memory, one short lock, integer nanoseconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MINUTE_NS: u128 = 60_000_000_000;

pub struct RateLimiter {
    start: Instant,
    /// Per key: the theoretical arrival time of its next request, ns since `start`.
    tat: Mutex<HashMap<String, u128>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter { start: Instant::now(), tat: Mutex::new(HashMap::new()) }
    }
}

impl RateLimiter {
    /// Admits one request of `key` at `now`, or says how long until one would be admitted.
    pub fn admit(&self, key: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let per_minute = u128::from(per_minute.max(1));
        let interval = MINUTE_NS / per_minute;
        let burst = interval * (per_minute - 1);
        let now = now.saturating_duration_since(self.start).as_nanos();
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(key).copied().unwrap_or(0).max(now);
        if tat - now > burst {
            let wait = tat - now - burst;
            return Err(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)));
        }
        map.insert(key.to_string(), tat + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bursts_then_paces() {
        let l = RateLimiter::default();
        let t0 = l.start + Duration::from_secs(1);
        for _ in 0..3 {
            l.admit("k", 3, t0).unwrap();
        }
        let wait = l.admit("k", 3, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20), "one more every 60/3 s");
        assert!(l.admit("other", 3, t0).is_ok(), "keys are limited separately");
        assert!(l.admit("k", 3, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.admit("k", 3, t0 + Duration::from_secs(20)).is_err());
    }

    proptest! {
        /// Over any window of a minute, a key is admitted at most `n` + (the refill in that
        /// minute) = 2n times, and in any instant never more than n at once.
        #[test]
        fn never_more_than_the_limit(n in 1u32..50, gaps in proptest::collection::vec(0u64..5_000, 1..300)) {
            let l = RateLimiter::default();
            let mut t = l.start;
            let mut admitted = Vec::new();
            for g in gaps {
                t += Duration::from_millis(g);
                if l.admit("k", n, t).is_ok() { admitted.push(t); }
            }
            for (i, &a) in admitted.iter().enumerate() {
                let in_minute = admitted[i..].iter().take_while(|&&b| b - a < Duration::from_secs(60)).count();
                prop_assert!(in_minute as u32 <= 2 * n, "{} admitted within a minute, limit {}", in_minute, n);
                let same = admitted[i..].iter().take_while(|&&b| b == a).count();
                prop_assert!(same as u32 <= n);
            }
        }
    }
}
