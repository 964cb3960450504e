//! Requests-per-minute limits per key: the generic cell rate algorithm (a token bucket kept
//! as one timestamp per key). A key with `n` requests per minute may burst `n` at once and
//! then one every 60/n seconds.
//!
//! One relayer on its own (SQLite) keeps the timestamps in memory under one short lock, in
//! integer nanoseconds. Replicas on one Postgres keep them in the database (`rate_limits`)
//! and admit each request with one conditional UPDATE, in milliseconds, so the limit holds
//! for the key across every replica: N replicas never allow N times the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::domain::ids::KeyHash;
use crate::store::db::Pool;
use crate::store::rate_limits;

const MINUTE_NS: u128 = 60_000_000_000;

pub struct RateLimiter {
    clock: Clock,
    state: State,
}

enum State {
    /// One process: ns since `start` of each key's next theoretical arrival.
    Local { start: Instant, tat: Mutex<HashMap<KeyHash, u128>> },
    /// Replicas: the same state in the shared database.
    Shared(Pool),
}

impl RateLimiter {
    /// Limits kept in this process's memory (one relayer on its own ledger).
    pub fn local(clock: Clock) -> RateLimiter {
        let start = clock.instant();
        RateLimiter { clock, state: State::Local { start, tat: Mutex::new(HashMap::new()) } }
    }

    /// Limits kept in the database the replicas share.
    pub fn shared(clock: Clock, pool: Pool) -> RateLimiter {
        RateLimiter { clock, state: State::Shared(pool) }
    }
}

/// Admission refused: retry after this long.
#[derive(Debug, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RateLimiter {
    /// Admits one request of `key` now, or says how long until one would be admitted. An
    /// error means the shared state could not be read (the request is not admitted).
    pub async fn admit(&self, key: &KeyHash, per_minute: u32) -> anyhow::Result<Result<(), RetryAfter>> {
        match &self.state {
            State::Local { .. } => Ok(self.admit_at(key, per_minute, self.clock.instant())),
            State::Shared(pool) => admit_shared(pool, key, per_minute, self.clock.now_ms()).await,
        }
    }

    fn admit_at(&self, key: &KeyHash, per_minute: u32, now: Instant) -> Result<(), RetryAfter> {
        let State::Local { start, tat } = &self.state else { unreachable!("local only") };
        let per_minute = u128::from(per_minute.max(1));
        let interval = MINUTE_NS / per_minute;
        let burst = interval * (per_minute - 1);
        let now = now.saturating_duration_since(*start).as_nanos();
        let mut map = tat.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(key).copied().unwrap_or(0).max(now);
        if tat - now > burst {
            let wait = tat - now - burst;
            return Err(RetryAfter(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))));
        }
        map.insert(key.clone(), tat + interval);
        Ok(())
    }
}

/// The cell rate algorithm in the shared database (`store::rate_limits`), in milliseconds.
async fn admit_shared(
    pool: &Pool,
    key: &KeyHash,
    per_minute: u32,
    now_ms: i64,
) -> anyhow::Result<Result<(), RetryAfter>> {
    let n = i64::from(per_minute.max(1));
    let interval = (60_000 / n).max(1);
    let burst = interval * (n - 1);
    Ok(rate_limits::admit(pool, key, now_ms, interval, burst)
        .await?
        .map_err(|wait_ms| RetryAfter(Duration::from_millis(wait_ms.max(1) as u64))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start(l: &RateLimiter) -> Instant {
        let State::Local { start, .. } = &l.state else { unreachable!() };
        *start
    }

    /// The database's algorithm, on whichever ledger the tests use (SQLite, or Postgres
    /// with COMPUX_TEST_LEDGER=postgres), at chosen times.
    #[tokio::test]
    async fn the_shared_limit_bursts_then_paces_in_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let (pool, _) = crate::store::db::connect(&target).await.unwrap();
        let key = KeyHash::of(&format!("k-{}", uuid::Uuid::new_v4()));
        let t0 = 1_000_000;
        for _ in 0..3 {
            admit_shared(&pool, &key, 3, t0).await.unwrap().unwrap();
        }
        let wait = admit_shared(&pool, &key, 3, t0).await.unwrap().unwrap_err();
        assert_eq!(wait, RetryAfter(Duration::from_secs(20)), "one more every 60/3 s");
        assert!(admit_shared(&pool, &key, 3, t0 + 19_999).await.unwrap().is_err());
        assert!(admit_shared(&pool, &key, 3, t0 + 20_000).await.unwrap().is_ok());
        assert!(admit_shared(&pool, &key, 3, t0 + 20_000).await.unwrap().is_err());
    }

    #[test]
    fn bursts_then_paces() {
        let l = RateLimiter::local(Clock::system());
        let k = KeyHash::of("k");
        let t0 = start(&l) + Duration::from_secs(1);
        for _ in 0..3 {
            l.admit_at(&k, 3, t0).unwrap();
        }
        let wait = l.admit_at(&k, 3, t0).unwrap_err();
        assert_eq!(wait, RetryAfter(Duration::from_secs(20)), "one more every 60/3 s");
        assert!(l.admit_at(&KeyHash::of("other"), 3, t0).is_ok(), "keys are limited separately");
        assert!(l.admit_at(&k, 3, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.admit_at(&k, 3, t0 + Duration::from_secs(20)).is_err());
    }

    proptest! {
        /// Over any window of a minute, a key is admitted at most `n` + (the refill in that
        /// minute) = 2n times, and in any instant never more than n at once.
        #[test]
        fn never_more_than_the_limit(n in 1u32..50, gaps in proptest::collection::vec(0u64..5_000, 1..300)) {
            let l = RateLimiter::local(Clock::system());
            let k = KeyHash::of("k");
            let mut t = start(&l);
            let mut admitted = Vec::new();
            for g in gaps {
                t += Duration::from_millis(g);
                if l.admit_at(&k, n, t).is_ok() { admitted.push(t); }
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
