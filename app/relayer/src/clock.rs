//! Wall-clock time as the relayer records it: milliseconds since the Unix epoch, and the
//! UTC day (the period of daily credit budgets). The bottom of the crate: imports nothing.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Days since the Unix epoch, UTC: the period of daily credit limits.
pub fn today() -> i64 {
    now_ms().div_euclid(86_400_000)
}
