//! The hard cap. Per credit account: available = on-chain balance - metered but unsettled -
//! in-flight holds. A request holds its worst-case cost before the upstream call and is
//! charged at most that hold after it, so concurrent requests can never spend more than
//! the balance. Everything is in memory under one short lock: the hot path makes no RPC and
//! no database call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Credits on chain as last refreshed.
    pub onchain: u64,
    /// Charged by the relayer, not yet burned on chain.
    pub unsettled: u64,
    /// Held by requests in flight.
    pub held: u64,
}

impl Balance {
    pub fn available(&self) -> u64 {
        self.onchain.saturating_sub(self.unsettled).saturating_sub(self.held)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("insufficient credits: {available} available, this request may cost up to {needed}")]
pub struct Insufficient {
    pub available: u64,
    pub needed: u64,
}

#[derive(Default)]
pub struct Meter {
    accounts: Mutex<HashMap<String, Balance>>,
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    fn with<R>(&self, account: &str, f: impl FnOnce(&mut Balance) -> R) -> R {
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(account.to_string()).or_default())
    }

    /// Records the on-chain balance (from a background refresh).
    pub fn set_onchain(&self, account: &str, onchain: u64) {
        self.with(account, |b| b.onchain = onchain);
    }

    /// Forgets charges that are now burned on chain (the settler's job).
    pub fn settled(&self, account: &str, amount: u64) {
        self.with(account, |b| b.unsettled = b.unsettled.saturating_sub(amount));
    }

    /// Sums over every account: (held, unsettled), for `/metrics`.
    pub fn totals(&self) -> (u64, u64) {
        let map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        map.values().fold((0u64, 0u64), |(h, u), b| (h.saturating_add(b.held), u.saturating_add(b.unsettled)))
    }

    pub fn balance(&self, account: &str) -> Balance {
        self.with(account, |b| *b)
    }

    /// Reserves `amount` for one request, or says how much is available.
    pub fn hold(self: &Arc<Self>, account: &str, amount: u64) -> Result<Hold, Insufficient> {
        self.with(account, |b| {
            let available = b.available();
            if amount > available {
                return Err(Insufficient { available, needed: amount });
            }
            b.held += amount;
            Ok(())
        })?;
        Ok(Hold { meter: self.clone(), account: account.to_string(), amount, done: false })
    }
}

/// Credits reserved for a request in flight. Charging or dropping it releases the hold; a
/// request that fails or is abandoned is never charged.
#[derive(Debug)]
pub struct Hold {
    meter: Arc<Meter>,
    account: String,
    amount: u64,
    done: bool,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meter")
    }
}

impl Hold {
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Charges the request's real cost, never more than was held (no overage, ever).
    /// Returns what was charged.
    pub fn charge(mut self, cost: u64) -> u64 {
        let charged = cost.min(self.amount);
        self.meter.with(&self.account, |b| {
            b.held -= self.amount;
            b.unsettled += charged;
        });
        self.done = true;
        charged
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.meter.with(&self.account, |b| b.held -= self.amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holds_charges_and_releases() {
        let m = Meter::new();
        m.set_onchain("a", 100);
        let h = m.hold("a", 60).unwrap();
        assert_eq!(m.hold("a", 41).unwrap_err(), Insufficient { available: 40, needed: 41 });
        assert_eq!(h.charge(25), 25);
        assert_eq!(m.balance("a"), Balance { onchain: 100, unsettled: 25, held: 0 });
        let h = m.hold("a", 75).unwrap();
        drop(h);
        assert_eq!(m.balance("a").available(), 75, "a dropped hold is released, not charged");
        assert_eq!(m.hold("a", 10).unwrap().charge(1_000), 10, "never more than held");
        m.settled("a", 35);
        assert_eq!(m.balance("a"), Balance { onchain: 100, unsettled: 0, held: 0 });
    }

    proptest! {
        /// Whatever the interleaving of holds, charges and releases across threads, the
        /// charged total never exceeds the balance.
        #[test]
        fn concurrent_requests_never_overspend(balance in 0u64..10_000, asks in proptest::collection::vec((1u64..500, 0u64..600, any::<bool>()), 1..64)) {
            let m = Meter::new();
            m.set_onchain("a", balance);
            let threads: Vec<_> = asks.chunks(8).map(|chunk| {
                let m = m.clone();
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for (hold, cost, fail) in chunk {
                        if let Ok(h) = m.hold("a", hold) {
                            if !fail { h.charge(cost); }
                        }
                    }
                })
            }).collect();
            for t in threads { t.join().unwrap(); }
            let b = m.balance("a");
            prop_assert_eq!(b.held, 0);
            prop_assert!(b.unsettled <= balance);
        }
    }
}
