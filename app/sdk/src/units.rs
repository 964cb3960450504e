//! Amounts as people write them ("12.5") to base units and back, without floating point:
//! the CLI parses and prints with these, the localnet formats `uiAmountString` with them.

use anyhow::{bail, Result};

/// Parses a decimal amount with at most `decimals` fractional digits into base units.
pub fn parse(text: &str, decimals: u8) -> Result<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(whole) || (whole.is_empty() && digits(frac))) || !(frac.is_empty() || digits(frac)) {
        bail!("{text:?} is not an amount (write it like 12 or 12.5)");
    }
    if frac.len() > decimals as usize {
        bail!("{text:?} has more than {decimals} decimal places");
    }
    let scale = 10u64.pow(decimals as u32);
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| anyhow::anyhow!("{text:?} is too large"))?
    };
    let frac: u64 =
        if frac.is_empty() { 0 } else { format!("{frac:0<width$}", width = decimals as usize).parse()? };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is too large"))
}

/// Base units as a decimal string with trailing zeros trimmed.
pub fn format(amount: u64, decimals: u8) -> String {
    let scale = 10u64.pow(decimals as u32);
    let frac = format!("{:0width$}", amount % scale, width = decimals as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        (amount / scale).to_string()
    } else {
        format!("{}.{frac}", amount / scale)
    }
}

/// Durations like "30d", "12h", "90m", "45s" or plain seconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 =
        n.parse().map_err(|_| anyhow::anyhow!("{text:?} is not a duration (like 30d, 12h, 90m, 45s)"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("{text:?}: unknown unit {unit:?} (use d, h, m or s)"),
    };
    n.checked_mul(secs).ok_or_else(|| anyhow::anyhow!("{text:?} is too long"))
}

/// A positive duration as its two largest units: "2d 3h", "1h 0m", "59s".
pub fn format_secs(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The UTC day of a unix timestamp, `YYYY-MM-DD` (proleptic Gregorian: days since
/// 1970-01-01 to a civil date by Howard Hinnant's algorithm).
pub fn utc_day(ts: i64) -> String {
    let z = ts.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A unix timestamp as `YYYY-MM-DD HH:MM UTC` (no time zone data).
pub fn format_utc(ts: i64) -> String {
    let secs = ts.rem_euclid(86_400);
    format!("{} {:02}:{:02} UTC", utc_day(ts), secs / 3_600, secs % 3_600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_and_reject_garbage() {
        assert_eq!(parse("12.5", 6).unwrap(), 12_500_000);
        assert_eq!(parse("0.000001", 6).unwrap(), 1);
        assert_eq!(parse(".5", 6).unwrap(), 500_000);
        assert_eq!(parse("7", 0).unwrap(), 7);
        assert_eq!(format(12_500_000, 6), "12.5");
        assert_eq!(format(3, 0), "3");
        for bad in ["", ".", "1.2.3", "-1", "1e6", "0.0000001", "18446744073709551616"] {
            assert!(parse(bad, 6).is_err(), "{bad}");
        }
        assert!(parse("18446744073710", 6).is_err(), "overflow after scaling");
        assert_eq!(parse_duration("30d").unwrap(), 2_592_000);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert_eq!(
            [59, 61, 3_600, 90_000, -5].map(format_secs),
            ["59s", "1m 1s", "1h 0m", "1d 1h", "0s"].map(String::from)
        );
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_767_225_600 + 15 * 3_600 + 59), "2026-01-01 15:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(-86_400), "1969-12-31 00:00 UTC");
    }
}
