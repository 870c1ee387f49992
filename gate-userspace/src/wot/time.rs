//! UTC timestamps for reference times: parse `YYYY-MM-DD[THH:MM:SS[Z]]` or
//! `@UNIX-SECONDS`, and format as ISO 8601, without a date-time dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A reference time that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid time {input:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or @UNIX-SECONDS")]
pub struct TimeError {
    pub input: String,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses a UTC time.
pub fn parse_time(s: &str) -> Result<SystemTime, TimeError> {
    let err = || TimeError {
        input: s.to_string(),
    };
    if let Some(secs) = s.strip_prefix('@') {
        return secs
            .parse::<u64>()
            .map(|n| UNIX_EPOCH + Duration::from_secs(n))
            .map_err(|_| err());
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let num = |p: &str| p.parse::<i64>().map_err(|_| err());
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 {
        return Err(err());
    }
    let (y, m, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(err());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let tp: Vec<&str> = t.split(':').collect();
        if tp.len() != 3 {
            return Err(err());
        }
        let (h, mi, se) = (num(tp[0])?, num(tp[1])?, num(tp[2])?);
        if h > 23 || mi > 59 || se > 60 {
            return Err(err());
        }
        secs += h * 3600 + mi * 60 + se;
    }
    Ok(UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r % 3600 / 60,
        r % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_time("2025-01-01").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_735_689_600));
        assert_eq!(format_time(t), "2025-01-01T00:00:00Z");
        let t = parse_time("2024-02-29T12:34:56Z").unwrap();
        assert_eq!(format_time(t), "2024-02-29T12:34:56Z");
        assert_eq!(
            parse_time("@1735689600").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_735_689_600)
        );
        assert!(parse_time("2025-13-01").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
