//! Time as the relayer reads it: milliseconds since the Unix epoch, the UTC day (the period
//! of daily credit budgets), and instants for timers. The bottom of the crate: imports
//! nothing of it.
//!
//! The jobs and the meter read time through a [`Clock`] they are given, so tests can move it
//! forward (a flush timer, a lease's expiry, a breaker's cool-down, a new UTC day) without
//! waiting for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The system clock, or (in tests) the system clock moved forward by hand.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that runs with the system's and can be moved forward with [`Clock::advance`];
    /// its clones move with it.
    pub fn adjustable() -> Clock {
        Clock { ahead_ms: Some(Arc::new(AtomicI64::new(0))) }
    }

    /// Moves an adjustable clock forward (the system clock cannot be: a no-op there).
    pub fn advance(&self, by: Duration) {
        if let Some(ahead) = &self.ahead_ms {
            ahead.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
        }
    }

    /// How far an adjustable clock was moved forward (0 for the system clock): added to
    /// the database's clock where that one times leases.
    pub fn ahead_ms(&self) -> i64 {
        self.ahead_ms.as_ref().map_or(0, |a| a.load(Ordering::Relaxed))
    }

    pub fn now_ms(&self) -> i64 {
        now_ms() + self.ahead_ms()
    }

    /// Days since the Unix epoch, UTC.
    pub fn today(&self) -> i64 {
        self.now_ms().div_euclid(86_400_000)
    }

    /// Now, for timers and deadlines.
    pub fn instant(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.ahead_ms() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_and_its_clones_move_forward_together() {
        let clock = Clock::adjustable();
        let copy = clock.clone();
        let (ms, day, at) = (clock.now_ms(), clock.today(), clock.instant());
        copy.advance(Duration::from_secs(86_400));
        assert!(clock.now_ms() - ms >= 86_400_000);
        assert_eq!(clock.today(), day + 1);
        assert!(clock.instant() - at >= Duration::from_secs(86_400));
        let system = Clock::system();
        system.advance(Duration::from_secs(86_400));
        assert!(system.now_ms() - now_ms() < 1_000, "the system clock does not move");
    }
}
