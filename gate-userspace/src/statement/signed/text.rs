//! Error text for the envelope's failures: an error's causes on one line,
//! each said once, with sequoia's `SystemTime` Debug output as RFC 3339.

/// An error and its causes on one line, each said once (a cause the text
/// before already contains is left out), times in RFC 3339.
pub(in crate::statement) fn reason(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    readable(text)
}

/// `text` with any `SystemTime { tv_sec: S, tv_nsec: N }` (Debug output
/// in some sequoia errors) written as RFC 3339.
pub(super) fn readable(text: String) -> String {
    const OPEN: &str = "SystemTime { tv_sec: ";
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let secs_len = after
            .find(|c: char| c != '-' && !c.is_ascii_digit())
            .unwrap_or(after.len());
        let close = after.find('}');
        match (after[..secs_len].parse::<i64>(), close) {
            (Ok(secs), Some(j)) => {
                out.push_str(&rest[..i]);
                out.push_str(&rfc3339_signed(secs));
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str(&rest[..i + OPEN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Seconds since 1970 (possibly negative) as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_signed(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(t) => crate::model::time::format_rfc3339(t),
        Err(_) => chrono::DateTime::from_timestamp(secs, 0).map_or_else(
            || format!("{secs} s since 1970"),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp as openpgp;
    use std::time::SystemTime;

    #[test]
    fn system_time_debug_output_becomes_rfc3339() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let text = format!(
            "Signature (created {:?}) predates key ({:?})",
            t(1_795_600_800),
            t(1_795_600_801)
        );
        assert_eq!(
            readable(text),
            "Signature (created 2026-11-25T10:00:00Z) predates key (2026-11-25T10:00:01Z)"
        );
        let before = format!(
            "{:?}",
            SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1)
        );
        assert_eq!(readable(before), "1969-12-31T23:59:59Z");
        assert_eq!(
            readable("SystemTime { tv_sec: x }".into()),
            "SystemTime { tv_sec: x }"
        );
    }

    #[test]
    fn causes_are_said_once() {
        let e = anyhow::Error::from(std::io::Error::other("disk full")).context("disk full");
        assert_eq!(reason(&e), "disk full");
        let e = anyhow::Error::from(openpgp::Error::Expired(SystemTime::UNIX_EPOCH))
            .context("signing key is not alive");
        assert_eq!(
            reason(&e),
            "signing key is not alive: Expired on 1970-01-01T00:00:00Z"
        );
    }
}
