//! Every time the project reads or writes: statement timestamps (strict RFC 3339
//! UTC), reference times from the command line, durations. chrono owns the calendar.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};

/// Seconds since the Unix epoch, as written in statements.
pub type Timestamp = u64;

/// The latest time any parser accepts: 9999-12-31T23:59:59Z. Four-digit years
/// keep every written time in the strict statement format.
pub const MAX_TIMESTAMP: Timestamp = 253_402_300_799;

/// A time or duration that could not be read; `input` is what was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not {expected}")]
pub struct TimeError {
    pub input: String,
    pub expected: &'static str,
}

const RFC3339_UTC: &str = "a UTC time like 2026-11-25T10:00:00Z (1970..9999)";
const REFERENCE: &str =
    "a time: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, @UNIX-SECONDS (up to year 9999) or `now`";
const DURATION: &str = "a duration like 90d, 12h, 30m, 3600s or 2w";

fn err(input: &str, expected: &'static str) -> TimeError {
    TimeError {
        input: input.to_string(),
        expected,
    }
}

fn from_naive(dt: NaiveDateTime) -> Option<Timestamp> {
    u64::try_from(dt.and_utc().timestamp())
        .ok()
        .filter(|&t| t <= MAX_TIMESTAMP)
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (years 1970-9999, no leap second,
/// no offset): the one spelling statements allow.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
    const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";
    let bad = || err(s, RFC3339_UTC);
    // chrono is lenient about widths and accepts a leap second; insisting on
    // the exact round trip leaves one spelling per instant.
    if s.len() != 20 || !s.is_ascii() {
        return Err(bad());
    }
    let dt = NaiveDateTime::parse_from_str(s, FORMAT).map_err(|_| bad())?;
    // A leap second (`:60`) parses as 59 s plus a second of nanoseconds.
    if dt.nanosecond() != 0 || dt.format(FORMAT).to_string() != s {
        return Err(bad());
    }
    from_naive(dt).ok_or_else(bad)
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ` (clamped to [`MAX_TIMESTAMP`]).
pub fn format_rfc3339(t: Timestamp) -> String {
    let secs = i64::try_from(t.min(MAX_TIMESTAMP)).unwrap_or(0);
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses a reference time given by an operator: `YYYY-MM-DD`,
/// `YYYY-MM-DDTHH:MM:SS[Z]` (UTC), `@UNIX-SECONDS`, or `now`.
pub fn parse_reference_time(s: &str) -> Result<SystemTime, TimeError> {
    let bad = || err(s, REFERENCE);
    if s == "now" {
        return Ok(SystemTime::now());
    }
    if let Some(secs) = s.strip_prefix('@') {
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = secs.parse().map_err(|_| bad())?;
        return (n <= MAX_TIMESTAMP)
            .then(|| to_system_time(n))
            .ok_or_else(bad);
    }
    if s.len() == 10 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
        if d.format("%Y-%m-%d").to_string() != s {
            return Err(bad());
        }
        let t = d
            .and_hms_opt(0, 0, 0)
            .and_then(from_naive)
            .ok_or_else(bad)?;
        return Ok(to_system_time(t));
    }
    let full = if s.ends_with('Z') {
        s.to_string()
    } else {
        format!("{s}Z")
    };
    parse_rfc3339(&full).map(to_system_time).map_err(|_| bad())
}

/// Formats a reference time as `YYYY-MM-DDTHH:MM:SSZ` (times before 1970
/// show as 1970-01-01T00:00:00Z).
pub fn format_time(t: SystemTime) -> String {
    format_rfc3339(to_timestamp(t))
}

/// Parses `30d`, `12h`, `90m`, `3600s`, `2w` (not zero).
pub fn parse_duration(s: &str) -> Result<Duration, TimeError> {
    let bad = || err(s, DURATION);
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .filter(|&secs| secs > 0 && secs <= MAX_TIMESTAMP)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// A `SystemTime` as whole seconds since the epoch (earlier times become 0).
pub fn to_timestamp(t: SystemTime) -> Timestamp {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A timestamp as a `SystemTime` (clamped to [`MAX_TIMESTAMP`], so it never
/// overflows).
pub fn to_system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.min(MAX_TIMESTAMP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_rejects() {
        for t in [
            0u64,
            951_782_400,
            1_764_064_800,
            4_102_444_799,
            MAX_TIMESTAMP,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(
            parse_rfc3339("2026-11-25T10:00:00Z").unwrap(),
            1_795_600_800
        );
        for bad in [
            "2026-11-25 10:00:00Z",
            "2026-02-29T00:00:00Z",
            "2025-02-31T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-25T10:00:60Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00+01:00",
            "1969-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
            "2026-1-25T10:00:00ZZZ",
            "２026-11-25T10:00:00Z",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reference_times_at_their_limits() {
        let secs = |s: &str| to_timestamp(parse_reference_time(s).unwrap());
        assert_eq!(secs("2025-01-01"), 1_735_689_600);
        assert_eq!(secs("2024-02-29T12:34:56Z"), 1_709_210_096);
        assert_eq!(secs("2024-02-29T12:34:56"), 1_709_210_096);
        assert_eq!(secs("@1735689600"), 1_735_689_600);
        assert_eq!(secs("@0"), 0);
        assert_eq!(secs(&format!("@{MAX_TIMESTAMP}")), MAX_TIMESTAMP);
        assert_eq!(secs("9999-12-31"), MAX_TIMESTAMP - 86_399);
        assert!(parse_reference_time("now").is_ok());
        for bad in [
            "@18446744073709551615",
            "@18446744073709551616",
            &format!("@{}", MAX_TIMESTAMP + 1),
            "@-1",
            "@+1",
            "@",
            "@1e9",
            "2025-02-31",
            "2025-13-01",
            "2025-1-01",
            "1969-12-31",
            "10000-01-01",
            "2025-01-01T25:00:00Z",
            "2025-01-01T10:00Z",
            "@9223372036854775808",
            "1970-01-01T00:00:-1Z",
            "25000000000000-01-01",
            "T-5:00:00Z",
            "2025-01-01T10:00:00ZZZZ",
            "+2025-01-01",
            "@+5",
            " 2025-01-01",
            "2025-01-01 ",
            "yesterday",
            "",
        ] {
            let e = parse_reference_time(bad).unwrap_err();
            assert_eq!(e.input, bad);
        }
    }

    #[test]
    fn durations_and_conversions_at_their_limits() {
        assert_eq!(parse_duration("90d").unwrap().as_secs(), 90 * 86400);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86400);
        for bad in [
            "",
            "d",
            "0d",
            "5y",
            "-1d",
            "1.5d",
            "18446744073709551615w",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(to_timestamp(to_system_time(u64::MAX)), MAX_TIMESTAMP);
        assert_eq!(to_timestamp(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }
}
