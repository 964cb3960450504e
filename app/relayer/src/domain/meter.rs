//! The hard cap. Per credit source (a credit account's vault, or a facility's escrow):
//! available = on-chain balance - metered but unsettled - in-flight holds. A request holds
//! its worst-case cost from one source of its account before the upstream call and is
//! charged at most that hold after it, so concurrent requests can never spend more than a
//! balance. A key may also have a daily credit budget, held the same way. Everything is in
//! memory under one short lock: the hot path makes no RPC and no database call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::domain::ids::{KeyHash, Pubkey, Source};
use crate::domain::lease::{Exposure, Grant};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Credits on chain as last refreshed (for a facility: released and not yet burned).
    pub onchain: u64,
    /// Charged by the relayer, not yet burned on chain.
    pub unsettled: u64,
    /// Held by requests in flight.
    pub held: u64,
    /// A frozen facility: nothing more may be spent from it.
    pub frozen: bool,
}

impl Balance {
    pub fn available(&self) -> u64 {
        self.onchain.saturating_sub(self.unsettled).saturating_sub(self.held)
    }
}

/// Why a hold was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No source can cover the request; `available` is the most any one source has.
    #[error("insufficient credits: {available} available, this request may cost up to {needed}")]
    Insufficient { available: u64, needed: u64 },
    /// The account's own vault would cover it but for the daily burn ceiling its owner set.
    #[error("the owner's daily burn ceiling leaves {available}, this request may cost up to {needed}")]
    BurnCeiling { available: u64, needed: u64 },
    /// Only a frozen facility could have covered it.
    #[error("the credits that could cover this request are frozen (facility {facility})")]
    Frozen { facility: Pubkey, available: u64, needed: u64 },
    /// The key's daily credit budget would be exceeded.
    #[error(
        "daily credit limit {limit} reached: {used} used or held today, this request may cost up to {needed}"
    )]
    DailyLimit { limit: u64, used: u64, needed: u64 },
    /// With replicas, a source whose balance would cover the request but whose lease this
    /// replica has not got (yet, or any more): the shared balance cannot be checked here.
    #[error("this replica holds no current lease on the balance that would cover this request")]
    Unleased { needed: u64 },
}

/// A key's daily credit budget.
#[derive(Clone, Copy, Debug)]
pub struct Budget<'a> {
    pub key: &'a KeyHash,
    pub per_day: u64,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Daily {
    day: i64,
    spent: u64,
    held: u64,
    /// With replicas: this replica's slice of the key's budget for `day` (`leases.rs`).
    lease: Option<Lease>,
    /// Every credit ever held against the budget (`Exposure::reserved_mark`).
    reserved: u64,
}

impl Daily {
    /// A new UTC day starts with nothing spent and no lease; holds in flight stay held.
    fn roll_to(&mut self, day: i64) {
        if self.day != day {
            *self = Daily { day, held: self.held, reserved: self.reserved, ..Daily::default() };
        }
    }
}

#[derive(Default)]
struct State {
    balances: HashMap<Source, Balance>,
    /// Each credit account's sources in spending order; an account not listed spends from
    /// its own vault only.
    sources: HashMap<Pubkey, Vec<Source>>,
    daily: HashMap<KeyHash, Daily>,
    /// Per source, the settlement batches (seq -> amount) not yet seen burned in a balance
    /// snapshot: still part of `unsettled`.
    batches: HashMap<Source, std::collections::BTreeMap<u64, u64>>,
    /// Sources a balance snapshot has been recorded for.
    known: std::collections::HashSet<Source>,
    /// Per source, the highest on-chain `settled_seq` a snapshot showed: batches up to it
    /// are already in the balance and must never be registered (and dropped) again.
    seen_seq: HashMap<Source, u64>,
    /// With replicas (a shared Postgres ledger): what this replica may still hold per
    /// source under its balance lease (`leases.rs`). In lease mode a source without a lease
    /// has nothing available here.
    leased: bool,
    leases: HashMap<Source, Lease>,
    /// Vaults whose last snapshot was capped by the owner's daily burn ceiling: a refusal
    /// there names the ceiling, not the balance.
    ceiling_bound: std::collections::HashSet<Source>,
    /// Credits charged per source by this process.
    charged: HashMap<Source, u64>,
    /// Credits ever held per source by this process (`Exposure::reserved_mark`).
    reserved: HashMap<Source, u64>,
    /// When balances are read from the chain (the refresher runs): the oldest they may be
    /// for the cap to admit a request, and when they were last read in full.
    max_age: Option<std::time::Duration>,
    last_read: Option<std::time::Instant>,
    /// Sources whose next settlement batch failed to land, by the settler's count.
    settlement: HashMap<Source, SettleTrouble>,
    /// Per source, the slot of the newest balance snapshot applied and of the newest freeze
    /// seen: an older read never overwrites a newer one, nor clears a freeze.
    slots: HashMap<Source, Slots>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    balance: u64,
    frozen: u64,
}

/// A source whose next settlement batch has not landed: since when, how often tried, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleTrouble {
    pub seq: u64,
    pub attempts: u32,
    pub since_ms: i64,
    pub error: String,
}

/// Failed attempts after which a batch that cannot land is an incident (ERROR, `/metrics`,
/// readiness and usage show it), not a retry.
pub const STUCK_AFTER: u32 = 3;

impl SettleTrouble {
    pub fn stuck(&self) -> bool {
        self.attempts >= STUCK_AFTER
    }
}

/// This replica's slice of a source's available balance.
#[derive(Clone, Copy, Debug)]
struct Lease {
    /// May still be held (holds take from it; what a charge leaves unused comes back).
    remaining: u64,
    /// Stop spending at this time unless renewed (before the lease expires for the others).
    until: std::time::Instant,
}

impl State {
    /// What `source` can still give a hold here: its available balance, and with replicas
    /// no more than this replica's live lease on it.
    fn spendable(&self, source: Source, bal: &Balance, now: std::time::Instant) -> u64 {
        let available = bal.available();
        if !self.leased {
            return available;
        }
        available.min(self.leases.get(&source).filter(|l| l.until > now).map_or(0, |l| l.remaining))
    }

    /// Why `amount` more would break the key's daily budget `per_day` (its `Daily` for the
    /// right day), if it would: spent + held + amount over the budget, or, with replicas,
    /// more than this replica's lease of what is left today.
    fn over_budget(&self, d: &Daily, per_day: u64, amount: u64, now: std::time::Instant) -> Option<Refused> {
        let used = d.spent.saturating_add(d.held);
        let lease = d.lease.filter(|l| l.until > now).map_or(0, |l| l.remaining);
        if used.saturating_add(amount) <= per_day && !(self.leased && amount > lease) {
            return None;
        }
        let used = if self.leased { per_day.saturating_sub(lease) } else { used };
        Some(Refused::DailyLimit { limit: per_day, used, needed: amount })
    }

    /// Holds `amount` more on `source` and, with a budget, on `key`, taking it from their
    /// leases too.
    fn reserve(&mut self, source: Source, key: Option<&KeyHash>, amount: u64) {
        if let Some(b) = self.balances.get_mut(&source) {
            b.held += amount;
        }
        let reserved = self.reserved.entry(source).or_default();
        *reserved = reserved.saturating_add(amount);
        if let Some(l) = self.leases.get_mut(&source) {
            l.remaining = l.remaining.saturating_sub(amount);
        }
        if let Some(d) = key.and_then(|k| self.daily.get_mut(k)) {
            d.held += amount;
            d.reserved = d.reserved.saturating_add(amount);
            if let Some(l) = d.lease.as_mut() {
                l.remaining = l.remaining.saturating_sub(amount);
            }
        }
    }
}

#[derive(Default)]
pub struct Meter {
    state: Mutex<State>,
    /// What leases, balance freshness and the gateway's daily budgets are timed by.
    clock: Clock,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meter")
    }
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// A meter on `clock` (tests move it forward).
    pub fn with_clock(clock: Clock) -> Arc<Meter> {
        Arc::new(Meter { clock, ..Meter::default() })
    }

    /// The clock the relayer runs on: the meter's, shared with the gateway and the jobs.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<R>(&self, source: Source, f: impl FnOnce(&mut Balance) -> R) -> R {
        f(self.lock().balances.entry(source).or_default())
    }

    /// Records a source's on-chain balance (a snapshot without settlement state).
    pub fn set_onchain(&self, source: Source, onchain: u64) {
        self.set_chain(source, onchain, 0);
    }

    /// Spends only under balance leases from now on (replicas sharing a ledger).
    /// From now on, requests are admitted only while the last full balance read is at most
    /// `max_age` old (`mark_read`).
    pub fn require_fresh(&self, max_age: std::time::Duration) {
        self.lock().max_age = Some(max_age);
    }

    /// Every balance was just read from the chain.
    pub fn mark_read(&self) {
        self.lock().last_read = Some(self.clock.instant());
    }

    /// When balances must be fresh and are not: how old they are (`None`: never read).
    pub fn stale(&self) -> Option<Option<std::time::Duration>> {
        let s = self.lock();
        let max_age = s.max_age?;
        let age = s.last_read.map(|t| self.clock.instant().saturating_duration_since(t));
        match age {
            Some(a) if a <= max_age => None,
            _ => Some(age),
        }
    }

    pub fn require_leases(&self) {
        self.lock().leased = true;
    }

    /// The last snapshot of `source`: (on-chain credits, on-chain `settled_seq`), for a
    /// lease grant.
    pub fn snapshot(&self, source: Source) -> (u64, u64) {
        let s = self.lock();
        (s.balances.get(&source).map_or(0, |b| b.onchain), s.seen_seq.get(&source).copied().unwrap_or(0))
    }

    /// Credits charged from `source` so far (all time, this process): a lease renewal reads
    /// it before and after to count what was charged meanwhile.
    pub fn charged_total(&self, source: Source) -> u64 {
        self.lock().charged.get(&source).copied().unwrap_or(0)
    }

    /// What this replica has out of `source` that a ledger flushed up to `charged_before`
    /// (see `charged_total`) does not show: read for a lease grant, under its lock.
    pub fn exposure(&self, source: Source, charged_before: u64) -> Exposure {
        let s = self.lock();
        let since = s.charged.get(&source).copied().unwrap_or(0).saturating_sub(charged_before);
        let held = s.balances.get(&source).map_or(0, |b| b.held);
        let now = self.clock.instant();
        Exposure {
            in_flight: held.saturating_add(since),
            unspent: s.leases.get(&source).filter(|l| l.until > now).map_or(0, |l| l.remaining),
            reserved_mark: s.reserved.get(&source).copied().unwrap_or(0),
        }
    }

    /// Spends from `grant` on `source` until `until`: what was held since its exposure was
    /// read comes off it (that came from the old lease, which the grant's claim covers).
    pub fn set_lease(&self, source: Source, grant: &Grant, until: std::time::Instant) {
        let mut s = self.lock();
        let since = s.reserved.get(&source).copied().unwrap_or(0).saturating_sub(grant.from.reserved_mark);
        s.leases.insert(source, Lease { remaining: grant.spend.saturating_sub(since), until });
    }

    /// What `key` spent on `day` in this process so far: a budget lease renewal reads it
    /// before and after to count what was spent meanwhile.
    pub fn spent_on(&self, key: &KeyHash, day: i64) -> u64 {
        self.lock().daily.get(key).filter(|d| d.day == day).map_or(0, |d| d.spent)
    }

    /// `exposure` for `key`'s daily budget on `day`, from a ledger holding every charge up
    /// to `spent_before` (see `spent_on`).
    pub fn budget_exposure(&self, key: &KeyHash, day: i64, spent_before: u64) -> Exposure {
        let s = self.lock();
        let now = self.clock.instant();
        let d = s.daily.get(key).copied().unwrap_or_default();
        let today = d.day == day;
        Exposure {
            in_flight: d.held.saturating_add(if today { d.spent.saturating_sub(spent_before) } else { 0 }),
            unspent: d.lease.filter(|l| today && l.until > now).map_or(0, |l| l.remaining),
            reserved_mark: d.reserved,
        }
    }

    /// Spends from `grant` of `key`'s budget for `day` until `until` (as `set_lease`).
    pub fn set_budget_lease(&self, key: &KeyHash, day: i64, grant: &Grant, until: std::time::Instant) {
        let mut s = self.lock();
        let d = s.daily.entry(key.clone()).or_default();
        d.roll_to(day);
        let since = d.reserved.saturating_sub(grant.from.reserved_mark);
        d.lease = Some(Lease { remaining: grant.spend.saturating_sub(since), until });
    }

    /// With replicas, the pools whose lease, not their own truth, would refuse a hold of
    /// `amount` for `account` now: its unfrozen sources whose balance here covers `amount`
    /// and whose lease does not, and whether the key's budget is short by its lease only.
    /// Renewing those leases (`jobs::leases::Leaser::top_up`) may let the hold through;
    /// renewing any other cannot, so a request refused at zero costs no database work.
    pub fn short_leases(&self, account: Pubkey, amount: u64, budget: Option<Budget>) -> (Vec<Source>, bool) {
        let s = self.lock();
        if !s.leased {
            return (Vec::new(), false);
        }
        let now = self.clock.instant();
        let own = [Source::Vault(account)];
        let sources = s.sources.get(&account).map_or(&own[..], |v| &v[..]);
        let short = sources
            .iter()
            .filter(|source| {
                s.balances.get(source).is_some_and(|bal| {
                    !bal.frozen && bal.available() >= amount && s.spendable(**source, bal, now) < amount
                })
            })
            .copied()
            .collect();
        let budget_short = budget.is_some_and(|b| {
            let d = s.daily.get(b.key).copied().unwrap_or_default();
            let (spent, held) = if d.day == b.day { (d.spent, d.held) } else { (0, d.held) };
            let lease = d.lease.filter(|l| d.day == b.day && l.until > now).map_or(0, |l| l.remaining);
            spent.saturating_add(held).saturating_add(amount) <= b.per_day && lease < amount
        });
        (short, budget_short)
    }

    /// Records a balance snapshot: the source's on-chain credits and its on-chain
    /// `settled_seq`, read together. Batches up to that seq are in that balance, so they
    /// stop counting as unsettled in the same step (never before the balance shows them).
    pub fn set_chain(&self, source: Source, onchain: u64, settled_seq: u64) {
        self.apply_chain(&mut self.lock(), source, onchain, settled_seq);
    }

    /// A snapshot of `source` read at `slot` (confirmed): its credits, its `settled_seq`
    /// and whether it is frozen, read together. Ignored when a newer snapshot was applied
    /// already; it clears a freeze only when read after the freeze's slot. Returns whether
    /// it was applied.
    pub fn set_chain_at(
        &self,
        source: Source,
        onchain: u64,
        settled_seq: u64,
        frozen: bool,
        slot: u64,
    ) -> bool {
        let mut s = self.lock();
        let seen = s.slots.get(&source).copied().unwrap_or_default();
        if slot < seen.balance {
            return false;
        }
        self.apply_chain(&mut s, source, onchain, settled_seq);
        let frozen = frozen || (seen.frozen >= slot && s.balances.get(&source).is_some_and(|b| b.frozen));
        s.balances.entry(source).or_default().frozen = frozen;
        let slots = s.slots.entry(source).or_default();
        slots.balance = slot;
        if frozen {
            slots.frozen = slots.frozen.max(slot);
        }
        true
    }

    /// Whether `source`'s last snapshot was capped by its owner's daily burn ceiling.
    pub fn set_ceiling_bound(&self, source: Source, bound: bool) {
        let mut s = self.lock();
        if bound {
            s.ceiling_bound.insert(source);
        } else {
            s.ceiling_bound.remove(&source);
        }
    }

    /// The lender froze `source` in a transaction of `slot` (a chain event): its credits
    /// stop now, and no snapshot read before that slot brings them back.
    pub fn freeze_at(&self, source: Source, slot: u64) {
        let mut s = self.lock();
        s.balances.entry(source).or_default().frozen = true;
        let slots = s.slots.entry(source).or_default();
        slots.frozen = slots.frozen.max(slot);
    }

    fn apply_chain(&self, s: &mut State, source: Source, onchain: u64, settled_seq: u64) {
        let burned: u64 = match s.batches.get_mut(&source) {
            Some(b) => {
                let later = b.split_off(&(settled_seq + 1));
                let burned = std::mem::replace(b, later).values().sum();
                burned
            }
            None => 0,
        };
        let b = s.balances.entry(source).or_default();
        b.onchain = onchain;
        b.unsettled = b.unsettled.saturating_sub(burned);
        s.known.insert(source);
        let seen = s.seen_seq.entry(source).or_default();
        *seen = (*seen).max(settled_seq);
    }

    /// The settler could not land batch `seq` of `source`: counted (a new seq starts
    /// again). Returns the trouble as it now stands.
    pub fn settlement_failed(&self, source: Source, seq: u64, error: String) -> SettleTrouble {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let t = s.settlement.entry(source).or_insert(SettleTrouble {
            seq,
            attempts: 0,
            since_ms: now,
            error: String::new(),
        });
        if t.seq != seq {
            *t = SettleTrouble { seq, attempts: 0, since_ms: now, error: String::new() };
        }
        t.attempts = t.attempts.saturating_add(1);
        t.error = error;
        t.clone()
    }

    /// A batch of `source` landed: its trouble, if any, is over.
    pub fn settlement_landed(&self, source: Source) {
        self.lock().settlement.remove(&source);
    }

    /// Every source whose settlement is in trouble.
    pub fn settlement_troubles(&self) -> Vec<(Source, SettleTrouble)> {
        let s = self.lock();
        let mut v: Vec<_> = s.settlement.iter().map(|(k, t)| (*k, t.clone())).collect();
        v.sort_by_key(|(k, _)| k.to_string());
        v
    }

    /// `source`'s settlement trouble, if any.
    pub fn settlement_trouble(&self, source: Source) -> Option<SettleTrouble> {
        self.lock().settlement.get(&source).cloned()
    }

    /// Whether a balance snapshot of `source` has been recorded yet.
    pub fn known(&self, source: Source) -> bool {
        self.lock().known.contains(&source)
    }

    /// A settlement batch was cut from `source`'s unsettled charges (they keep counting
    /// until a balance snapshot shows the burn).
    /// Idempotent; a batch a snapshot already showed burned is ignored.
    pub fn add_batch(&self, source: Source, seq: u64, amount: u64) {
        let mut s = self.lock();
        if s.seen_seq.get(&source).is_some_and(|&seen| seq <= seen) {
            return;
        }
        s.batches.entry(source).or_default().insert(seq, amount);
    }

    /// Unsettled charges moved from one source to another (a frozen facility's late usage
    /// settles from the borrower's vault); batches of `from` from `from_seq` on are void.
    pub fn move_unsettled(&self, from: Source, to: Source, amount: u64, from_seq: Option<u64>) {
        let mut s = self.lock();
        if let (Some(seq), Some(b)) = (from_seq, s.batches.get_mut(&from)) {
            b.split_off(&seq);
        }
        let f = s.balances.entry(from).or_default();
        f.unsettled = f.unsettled.saturating_sub(amount);
        let t = s.balances.entry(to).or_default();
        t.unsettled = t.unsettled.saturating_add(amount);
    }

    pub fn set_frozen(&self, source: Source, frozen: bool) {
        self.with(source, |b| b.frozen = frozen);
    }

    /// Sets the sources `account` spends from, in order (its facilities, then its vault).
    pub fn set_sources(&self, account: Pubkey, sources: Vec<Source>) {
        self.lock().sources.insert(account, sources);
    }

    /// The sources `account` spends from, in order.
    pub fn sources(&self, account: Pubkey) -> Vec<Source> {
        self.lock().sources.get(&account).cloned().unwrap_or_else(|| vec![Source::Vault(account)])
    }

    /// Adds charges found unsettled in the ledger (at start).
    pub fn add_unsettled(&self, source: Source, amount: u64) {
        self.with(source, |b| b.unsettled = b.unsettled.saturating_add(amount));
    }

    /// Adds credits a key already spent on `day` (from the ledger, at start).
    pub fn add_spent(&self, key: &KeyHash, day: i64, amount: u64) {
        let mut s = self.lock();
        let d = s.daily.entry(key.clone()).or_default();
        d.roll_to(day);
        d.spent = d.spent.saturating_add(amount);
    }

    /// Sums over every source: (held, unsettled), for `/metrics`.
    pub fn totals(&self) -> (u64, u64) {
        self.lock()
            .balances
            .values()
            .fold((0u64, 0u64), |(h, u), b| (h.saturating_add(b.held), u.saturating_add(b.unsettled)))
    }

    pub fn balance(&self, source: Source) -> Balance {
        self.with(source, |b| *b)
    }

    /// Reserves `amount` for one request of `account` from the first of its sources that
    /// can cover it, within the key's daily budget if it has one.
    pub fn hold(
        self: &Arc<Self>,
        account: Pubkey,
        amount: u64,
        budget: Option<Budget>,
    ) -> Result<Hold, Refused> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let now = self.clock.instant();
        if let Some(b) = budget {
            let d = s.daily.entry(b.key.clone()).or_default();
            d.roll_to(b.day);
            let d = *d;
            if let Some(refused) = s.over_budget(&d, b.per_day, amount, now) {
                return Err(refused);
            }
        }
        let own = [Source::Vault(account)];
        let sources = s.sources.get(&account).map_or(&own[..], |v| &v[..]);
        let mut best = 0;
        let mut frozen = None;
        let mut chosen = None;
        let mut unleased = false;
        for source in sources {
            let Some(bal) = s.balances.get(source) else { continue };
            let available = s.spendable(*source, bal, now);
            unleased |=
                s.leased && bal.available() >= amount && s.leases.get(source).is_none_or(|l| l.until <= now);
            if bal.frozen {
                if available >= amount && frozen.is_none() {
                    frozen = Some((*source, available));
                }
                continue;
            }
            if available >= amount {
                chosen = Some(*source);
                break;
            }
            best = best.max(available);
        }
        let Some(source) = chosen else {
            return Err(match frozen {
                Some((facility, available)) => {
                    Refused::Frozen { facility: facility.address(), available, needed: amount }
                }
                None if unleased => Refused::Unleased { needed: amount },
                None if s.ceiling_bound.contains(&Source::Vault(account)) => {
                    Refused::BurnCeiling { available: best, needed: amount }
                }
                None => Refused::Insufficient { available: best, needed: amount },
            });
        };
        s.reserve(source, budget.map(|b| b.key), amount);
        drop(guard);
        let key = budget.map(|b| b.key.clone());
        let per_day = budget.map(|b| b.per_day);
        let admitted_at_ms = crate::clock::now_ms();
        let day = budget.map(|b| b.day);
        Ok(Hold { meter: self.clone(), source, key, per_day, day, amount, admitted_at_ms, done: false })
    }
}

/// Credits reserved for a request in flight. Charging or dropping it releases the hold; a
/// request that fails or is abandoned is never charged.
#[derive(Debug)]
pub struct Hold {
    meter: Arc<Meter>,
    source: Source,
    key: Option<KeyHash>,
    /// The key's daily budget, for extensions.
    per_day: Option<u64>,
    /// The budget day the request was admitted on: its charge counts there, as the ledger
    /// records it (by admission time), not on the day it finished.
    day: Option<i64>,
    amount: u64,
    /// When the request was admitted (system clock, ms): the moment its usage belongs to.
    admitted_at_ms: i64,
    done: bool,
}

impl Hold {
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The source the request spends from (a credit account, or a facility).
    pub fn source(&self) -> Source {
        self.source
    }

    /// When the request was admitted: its usage record's time. A request admitted against
    /// a facility before its freeze or maturity was held in the facility's credits, and is
    /// the facility's to settle however long it ran (`Facility::settles_until`).
    pub fn admitted_at_ms(&self) -> i64 {
        self.admitted_at_ms
    }

    /// Grows the hold to `to` in the same source (a failover to a dearer provider), within
    /// the source's balance, this replica's leases and the key's daily budget; unchanged
    /// when refused.
    pub fn extend(&mut self, to: u64) -> Result<(), Refused> {
        let Some(delta) = to.checked_sub(self.amount).filter(|d| *d > 0) else { return Ok(()) };
        let now = self.meter.clock.instant();
        let mut guard = self.meter.lock();
        let s = &mut *guard;
        let bal = s.balances.get(&self.source).copied().unwrap_or_default();
        let available = s.spendable(self.source, &bal, now);
        if bal.frozen {
            return Err(Refused::Frozen { facility: self.source.address(), available, needed: delta });
        }
        if available < delta {
            return Err(Refused::Insufficient { available, needed: delta });
        }
        if let (Some(key), Some(per_day)) = (&self.key, self.per_day) {
            let d = s.daily.get(key).copied().unwrap_or_default();
            if let Some(refused) = s.over_budget(&d, per_day, delta, now) {
                return Err(refused);
            }
        }
        s.reserve(self.source, self.key.as_ref(), delta);
        self.amount = to;
        Ok(())
    }

    /// Grows the hold toward `to` as far as the source's balance allows (a provider billed
    /// more than the hold: the account pays what it can). Returns the new amount.
    pub fn extend_toward(&mut self, to: u64) -> u64 {
        match self.extend(to) {
            Ok(()) => {}
            Err(Refused::Insufficient { available, .. }) if available > 0 => {
                let _ = self.extend(self.amount.saturating_add(available).min(to));
            }
            Err(_) => {}
        }
        self.amount
    }

    fn release(&self, charged: u64) {
        let mut s = self.meter.lock();
        if let Some(b) = s.balances.get_mut(&self.source) {
            b.held -= self.amount;
            b.unsettled = b.unsettled.saturating_add(charged);
        }
        if let Some(l) = s.leases.get_mut(&self.source) {
            l.remaining = l.remaining.saturating_add(self.amount - charged);
        }
        let total = s.charged.entry(self.source).or_default();
        *total = total.saturating_add(charged);
        if let Some(d) = self.key.as_ref().and_then(|k| s.daily.get_mut(k)) {
            d.held -= self.amount;
            // A request admitted yesterday and finished today was within yesterday's budget,
            // and the ledger counts it there: today's spend and lease stay as they are.
            if self.day == Some(d.day) {
                d.spent = d.spent.saturating_add(charged);
                if let Some(l) = d.lease.as_mut() {
                    l.remaining = l.remaining.saturating_add(self.amount - charged);
                }
            }
        }
    }

    /// Charges the request's real cost, never more than was held (no overage, ever).
    /// Returns what was charged.
    pub fn charge(mut self, cost: u64) -> u64 {
        let charged = cost.min(self.amount);
        self.release(charged);
        self.done = true;
        charged
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.release(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A lease of `spend` credits on `source`, granted now.
    fn lease(m: &Meter, source: Source, spend: u64, until: std::time::Instant) {
        let from = m.exposure(source, m.charged_total(source));
        m.set_lease(source, &Grant { spend, claim: spend, from }, until);
    }

    fn budget_lease(m: &Meter, k: &KeyHash, day: i64, spend: u64, until: std::time::Instant) {
        let from = m.budget_exposure(k, day, m.spent_on(k, day));
        m.set_budget_lease(k, day, &Grant { spend, claim: spend, from }, until);
    }

    fn key() -> KeyHash {
        KeyHash::of("sk-test")
    }

    /// A fresh credit account, and its vault as a source.
    fn account() -> (Pubkey, Source) {
        let a = Pubkey::new_unique();
        (a, Source::Vault(a))
    }

    /// Snapshots are ordered by the slot they were read at: an older read (a slow RPC
    /// node, a refresh that started before the last one) never overwrites a newer balance,
    /// and a freeze seen in a chain event is cleared only by a read after its slot.
    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one_nor_clears_a_freeze() {
        let m = Meter::new();
        let (_, vault) = account();
        assert!(m.set_chain_at(vault, 500, 0, false, 20));
        assert!(!m.set_chain_at(vault, 900, 0, false, 19), "older: ignored");
        assert_eq!(m.balance(vault).onchain, 500);
        assert!(m.set_chain_at(vault, 400, 0, false, 20), "the same slot: the same state");

        let facility = Source::Facility(Pubkey::new_unique());
        assert!(m.set_chain_at(facility, 1_000, 0, false, 10));
        m.freeze_at(facility, 30);
        assert!(m.balance(facility).frozen);
        // A refresh read at slot 25 (before the freeze landed, or from a lagging node)
        // says "not frozen": the freeze stands.
        assert!(m.set_chain_at(facility, 1_000, 0, false, 25));
        assert!(m.balance(facility).frozen, "an older read does not undo the freeze");
        assert!(m.set_chain_at(facility, 1_000, 0, false, 30));
        assert!(m.balance(facility).frozen, "nor one of the freeze's own slot");
        assert!(m.set_chain_at(facility, 1_000, 0, true, 31));
        assert!(m.balance(facility).frozen);
    }

    #[test]
    fn holds_charges_and_releases() {
        let m = Meter::new();
        let (acct, vault) = account();
        m.set_onchain(vault, 100);
        let h = m.hold(acct, 60, None).unwrap();
        assert_eq!(m.hold(acct, 41, None).unwrap_err(), Refused::Insufficient { available: 40, needed: 41 });
        assert_eq!(h.charge(25), 25);
        assert_eq!(m.balance(vault), Balance { onchain: 100, unsettled: 25, held: 0, frozen: false });
        let h = m.hold(acct, 75, None).unwrap();
        drop(h);
        assert_eq!(m.balance(vault).available(), 75, "a dropped hold is released, not charged");
        assert_eq!(m.hold(acct, 10, None).unwrap().charge(1_000), 10, "never more than held");
        assert_eq!(m.balance(vault), Balance { onchain: 100, unsettled: 35, held: 0, frozen: false });
    }

    #[test]
    fn spends_sources_in_order_and_refuses_frozen_credits() {
        let m = Meter::new();
        let (acct, vault) = account();
        let fac = Source::Facility(Pubkey::new_unique());
        m.set_sources(acct, vec![fac, vault]);
        m.set_onchain(fac, 50);
        m.set_onchain(vault, 30);
        let h = m.hold(acct, 40, None).unwrap();
        assert_eq!(h.source(), fac, "the facility's credits are spent first");
        let v = m.hold(acct, 20, None).unwrap();
        assert_eq!(v.source(), vault, "then the vault, when the facility cannot cover it");
        assert_eq!(
            m.hold(acct, 11, None).unwrap_err(),
            Refused::Insufficient { available: 10, needed: 11 },
            "a request is never split across sources: the most one source has is reported"
        );
        drop((h, v));
        m.set_frozen(fac, true);
        assert_eq!(m.hold(acct, 30, None).unwrap().source(), vault, "the vault still serves");
        assert_eq!(
            m.hold(acct, 45, None).unwrap_err(),
            Refused::Frozen { facility: fac.address(), available: 50, needed: 45 },
            "only the frozen facility could have covered it"
        );
        assert_eq!(m.balance(fac).held, 0, "nothing held from a frozen facility");
    }

    #[test]
    fn a_hold_grows_for_a_dearer_attempt_only_within_the_balance_and_the_budget() {
        let m = Meter::new();
        let (acct, vault) = account();
        m.set_onchain(vault, 100);
        let k = key();
        let b = Some(Budget { key: &k, per_day: 80, day: 1 });
        let mut h = m.hold(acct, 30, b).unwrap();
        let other = m.hold(acct, 20, None).unwrap();
        assert_eq!(h.extend(60), Ok(()));
        assert_eq!((h.amount(), m.balance(vault).held), (60, 80));
        drop(other);
        assert_eq!(
            h.extend(90),
            Err(Refused::DailyLimit { limit: 80, used: 60, needed: 30 }),
            "the budget binds"
        );
        let mut plain = m.hold(acct, 10, None).unwrap();
        assert_eq!(
            plain.extend(51),
            Err(Refused::Insufficient { available: 30, needed: 41 }),
            "the balance binds"
        );
        assert_eq!((plain.amount(), m.balance(vault).held), (10, 70), "a refused extension changes nothing");
        assert_eq!(h.extend(40), Ok(()), "never shrinks");
        assert_eq!(h.charge(55), 55);
        assert_eq!(plain.charge(100), 10, "never more than held");
        assert_eq!(m.balance(vault), Balance { onchain: 100, unsettled: 65, held: 0, frozen: false });
    }

    #[test]
    fn with_replicas_a_daily_budget_is_spent_only_from_this_replicas_lease() {
        let m = Meter::new();
        let (acct, vault) = account();
        m.require_leases();
        m.set_onchain(vault, 1_000);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        lease(&m, vault, 1_000, until);
        let k = key();
        let budget = Budget { key: &k, per_day: 100, day: 7 };
        let b = Some(budget);
        assert!(matches!(m.hold(acct, 1, b), Err(Refused::DailyLimit { .. })), "no budget lease yet");
        budget_lease(&m, &k, 7, 40, until);
        let h = m.hold(acct, 30, b).unwrap();
        assert_eq!(
            m.hold(acct, 11, b).unwrap_err(),
            Refused::DailyLimit { limit: 100, used: 90, needed: 11 },
            "the rest of the budget is other replicas' to spend"
        );
        h.charge(10);
        assert!(m.hold(acct, 30, b).is_ok(), "what a charge leaves unused comes back to the lease");
        budget_lease(&m, &k, 8, 40, until);
        assert!(m.hold(acct, 40, Some(Budget { day: 7, ..budget })).is_err(), "a lease is for its day");
    }

    #[test]
    fn a_lease_stops_spending_when_it_expires_and_balances_go_stale_by_the_clock() {
        let clock = Clock::adjustable();
        let m = Meter::with_clock(clock.clone());
        let (acct, vault) = account();
        m.require_leases();
        m.require_fresh(std::time::Duration::from_secs(30));
        assert_eq!(m.stale(), Some(None), "never read");
        m.set_onchain(vault, 1_000);
        m.mark_read();
        lease(&m, vault, 500, clock.instant() + std::time::Duration::from_secs(60));
        m.hold(acct, 100, None).unwrap().charge(100);
        clock.advance(std::time::Duration::from_secs(31));
        assert!(
            matches!(m.stale(), Some(Some(age)) if age >= std::time::Duration::from_secs(31)),
            "older than 30 s"
        );
        m.mark_read();
        assert_eq!(m.stale(), None);
        m.hold(acct, 100, None).expect("the lease runs 60 s").charge(100);
        clock.advance(std::time::Duration::from_secs(29));
        assert_eq!(
            m.hold(acct, 100, None).unwrap_err(),
            Refused::Unleased { needed: 100 },
            "an expired lease spends nothing, whatever the balance, and says so (503, not 402)"
        );
        lease(&m, vault, 50, clock.instant() + std::time::Duration::from_secs(60));
        assert_eq!(
            m.hold(acct, 100, None).unwrap_err(),
            Refused::Insufficient { available: 50, needed: 100 },
            "a current lease too small for the request is the caller's lack of credits here"
        );
    }

    #[test]
    fn a_daily_budget_caps_a_key_across_sources_and_resets_each_day() {
        let m = Meter::new();
        let (acct, vault) = account();
        m.set_onchain(vault, 1_000);
        let k = key();
        let budget = |day| Some(Budget { key: &k, per_day: 100, day });
        m.add_spent(&k, 7, 30);
        let h = m.hold(acct, 60, budget(7)).unwrap();
        assert_eq!(
            m.hold(acct, 11, budget(7)).unwrap_err(),
            Refused::DailyLimit { limit: 100, used: 90, needed: 11 }
        );
        assert_eq!(h.charge(20), 20);
        assert!(m.hold(acct, 50, budget(7)).is_ok(), "the unused part of the hold came back");
        assert_eq!(
            m.hold(acct, 51, budget(7)).unwrap_err(),
            Refused::DailyLimit { limit: 100, used: 50, needed: 51 }
        );
        assert!(m.hold(acct, 100, budget(8)).is_ok(), "a new UTC day starts from zero");
        assert!(m.hold(acct, 1_000, None).is_err(), "the balance still binds a key without a budget");
    }

    /// The auditor's finding on admission stamps: a request admitted before midnight and
    /// finished after it counts on the day it was admitted, as the ledger records it, so a
    /// restart (which restores today's spend from the ledger) sees what the meter saw.
    #[test]
    fn a_request_straddling_midnight_counts_on_the_day_it_was_admitted() {
        let m = Meter::new();
        let (acct, vault) = account();
        m.set_onchain(vault, 1_000);
        let k = key();
        let budget = |day| Some(Budget { key: &k, per_day: 100, day });
        let late = m.hold(acct, 60, budget(7)).unwrap();
        // Midnight passes while it runs: the new day sees it held, not spent.
        let next = m.hold(acct, 40, budget(8)).unwrap();
        assert!(m.hold(acct, 1, budget(8)).is_err(), "held across midnight still binds");
        assert_eq!(late.charge(50), 50);
        assert_eq!(m.spent_on(&k, 8), 0, "yesterday's request is yesterday's spend");
        assert_eq!(next.charge(40), 40);
        assert_eq!(m.spent_on(&k, 8), 40);
        assert!(m.hold(acct, 60, budget(8)).is_ok());
    }

    #[test]
    fn a_batch_stops_counting_only_when_a_snapshot_shows_its_burn() {
        let m = Meter::new();
        let (acct, vault) = account();
        let fac = Source::Facility(Pubkey::new_unique());
        m.set_sources(acct, vec![fac]);
        m.set_chain(fac, 100, 0);
        m.hold(acct, 60, None).unwrap().charge(60);
        m.add_batch(fac, 1, 40);
        m.add_batch(fac, 2, 20);
        m.set_chain(fac, 100, 0);
        assert_eq!(m.balance(fac).available(), 40, "a stale snapshot changes nothing");
        m.set_chain(fac, 60, 1);
        assert_eq!(m.balance(fac).unsettled, 20, "batch 1 is in the balance now");
        assert_eq!(m.balance(fac).available(), 40);
        m.move_unsettled(fac, vault, 20, Some(2));
        m.set_chain(fac, 60, 5);
        assert_eq!(
            (m.balance(fac).unsettled, m.balance(vault).unsettled),
            (0, 20),
            "a void batch burns nothing"
        );
        // A batch learnt again after a snapshot showed it (anvault process cut it) is not
        // subtracted twice.
        m.hold(acct, 10, None).unwrap().charge(10);
        m.add_batch(fac, 1, 40);
        m.set_chain(fac, 60, 5);
        assert_eq!(m.balance(fac).unsettled, 10);
    }

    proptest! {
        /// Whatever the interleaving of holds, charges and releases across threads, the
        /// charged total never exceeds the balance.
        #[test]
        fn concurrent_requests_never_overspend(balance in 0u64..10_000, asks in proptest::collection::vec((1u64..500, 0u64..600, any::<bool>()), 1..64)) {
            let m = Meter::new();
            let (acct, vault) = account();
            m.set_onchain(vault, balance);
            let threads: Vec<_> = asks.chunks(8).map(|chunk| {
                let m = m.clone();
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for (hold, cost, fail) in chunk {
                        if let Ok(h) = m.hold(acct, hold, None) {
                            if !fail { h.charge(cost); }
                        }
                    }
                })
            }).collect();
            for t in threads { t.join().unwrap(); }
            let b = m.balance(vault);
            prop_assert_eq!(b.held, 0);
            prop_assert!(b.unsettled <= balance);
        }
    }
}
