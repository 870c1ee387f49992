//! The statement body: a versioned `key: value` document, parsed strictly
//! (unknown keys, duplicates, bad syntax are errors) and written canonically.

use std::fmt::Write as _;

use ipnet::Ipv6Net;

use crate::model::time::{format_rfc3339, parse_rfc3339, Timestamp};

/// The first line of every statement of the version this code understands.
const VERSION_LINE: &str = "version: WOTGATEv1";
/// Hard cap on a body, whatever the configuration says (bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// `testing` statements are labelled and, by configuration, allowed or only
/// counted; `enforce` statements are allowed (as MTA-STS's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Testing,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Testing => "testing",
            Mode::Enforce => "enforce",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "testing" => Ok(Mode::Testing),
            "enforce" => Ok(Mode::Enforce),
            _ => Err(format!("mode {s:?} is neither \"testing\" nor \"enforce\"")),
        }
    }
}

/// A parsed statement body (syntax only: no policy is applied here).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    pub domain: String,
    pub serial: u64,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub mode: Mode,
    pub prefixes: Vec<Ipv6Net>,
    /// SHA-256 of the MTAs' TLS SubjectPublicKeyInfo, in Postfix's
    /// `ccert_pubkey_fingerprint` form (`AB:CD:...`).
    pub tls_key_sha256: Vec<String>,
}

/// Why a body is malformed; `line` counts from 1 (`None`: the body as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("body{}: {problem}", line.map_or_else(String::new, |n| format!(" line {n}")))]
pub struct BodyError {
    pub line: Option<usize>,
    pub problem: String,
}

/// A problem on line `line`.
fn err(line: usize, problem: impl Into<String>) -> BodyError {
    BodyError {
        line: Some(line),
        problem: problem.into(),
    }
}

/// A problem of the body as a whole.
fn whole(problem: impl Into<String>) -> BodyError {
    BodyError {
        line: None,
        problem: problem.into(),
    }
}

/// Checks a DNS domain: lower-case LDH labels (IDNs as `xn--`), at least two
/// labels, no trailing dot, at most 253 bytes.
pub fn check_domain(d: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    };
    if d.len() > 253 || d.split('.').count() < 2 || !d.split('.').all(ok_label) {
        return Err(format!(
            "{d:?} is not a lower-case domain name like example.ch (IDNs in xn-- form)"
        ));
    }
    Ok(())
}

/// Normalises a TLS public-key fingerprint (64 hex digits, colons optional)
/// to Postfix's form `AB:CD:...`.
pub fn normalise_tls_fingerprint(s: &str) -> Result<String, String> {
    let hex: String = s.chars().filter(|&c| c != ':').collect();
    let colons_ok = !s.contains(':') || (s.len() == 95 && s.split(':').all(|p| p.len() == 2));
    if hex.len() != 64 || !colons_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a SHA-256 fingerprint (64 hex digits, optionally AB:CD:... as Postfix prints it)"
        ));
    }
    let up = hex.to_ascii_uppercase();
    Ok(up
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(":"))
}

impl Statement {
    /// The canonical body text, with the prefixes and TLS key fingerprints
    /// sorted and each written once; `parse(to_body())` gives `self` back
    /// once it is [canonicalised](Statement::canonicalise).
    pub fn to_body(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{VERSION_LINE}");
        let _ = writeln!(s, "domain: {}", self.domain);
        let _ = writeln!(s, "serial: {}", self.serial);
        let _ = writeln!(s, "not-before: {}", format_rfc3339(self.not_before));
        let _ = writeln!(s, "not-after: {}", format_rfc3339(self.not_after));
        let _ = writeln!(s, "mode: {}", self.mode.as_str());
        for p in sorted(&self.prefixes) {
            let _ = writeln!(s, "prefix: {p}");
        }
        for f in sorted(&self.tls_key_sha256) {
            let _ = writeln!(s, "tls-key-sha256: {f}");
        }
        s
    }

    /// Puts the prefixes and TLS key fingerprints in the body's order
    /// (ascending, each once), as `parse` returns them.
    pub fn canonicalise(&mut self) {
        self.prefixes = sorted(&self.prefixes);
        self.tls_key_sha256 = sorted(&self.tls_key_sha256);
    }

    /// Parses a body strictly: ASCII, `\n`-terminated `key: value` lines, the
    /// version line first, each known key once (`prefix` and
    /// `tls-key-sha256` may repeat, in ascending order, each value once), no
    /// unknown keys, no blank lines.
    pub fn parse(body: &[u8]) -> Result<Statement, BodyError> {
        let text = checked_text(body)?;
        let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        check_version(lines.next().map(|(_, l)| l))?;
        let mut fields = Fields::default();
        for (n, line) in lines {
            fields.read_line(n, line)?;
        }
        fields.finish()
    }
}

/// `v` sorted, each value once.
fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The body as text without its final newline, once it is within
/// [`MAX_BODY_BYTES`], ASCII, non-empty, newline-terminated and free of
/// control characters.
fn checked_text(body: &[u8]) -> Result<&str, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(whole(format!(
            "{} bytes, more than {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| whole("not ASCII text"))?;
    if text.is_empty() {
        return Err(whole("empty"));
    }
    let Some(text) = text.strip_suffix('\n') else {
        return Err(err(
            text.lines().count(),
            "last line does not end with a newline",
        ));
    };
    if let Some((n, _)) = text
        .split('\n')
        .enumerate()
        .find(|(_, l)| l.bytes().any(|c| c.is_ascii_control()))
    {
        return Err(err(
            n + 1,
            "control character (tabs and CR are not allowed)",
        ));
    }
    Ok(text)
}

/// The first line must be [`VERSION_LINE`]; another version is named as such.
fn check_version(first: Option<&str>) -> Result<(), BodyError> {
    match first {
        Some(VERSION_LINE) => Ok(()),
        Some(l) if l.starts_with("version: ") => Err(err(
            1,
            format!(
                "unsupported version {:?} (this wotgate reads {VERSION_LINE:?})",
                &l[9..]
            ),
        )),
        _ => Err(err(1, format!("the first line must be {VERSION_LINE:?}"))),
    }
}

/// Sets a field that may appear once, from its parsed value.
fn once<T>(
    slot: &mut Option<T>,
    n: usize,
    key: &str,
    v: Result<T, String>,
) -> Result<(), BodyError> {
    if slot.is_some() {
        return Err(err(n, format!("{key} given twice")));
    }
    *slot = Some(v.map_err(|p| err(n, format!("{key}: {p}")))?);
    Ok(())
}

/// The fields read so far, line by line.
#[derive(Default)]
struct Fields {
    domain: Option<String>,
    serial: Option<u64>,
    not_before: Option<Timestamp>,
    not_after: Option<Timestamp>,
    mode: Option<Mode>,
    prefixes: Vec<Ipv6Net>,
    fprs: Vec<String>,
}

impl Fields {
    /// Reads line `n` (after the version line): one `key: value` field.
    fn read_line(&mut self, n: usize, line: &str) -> Result<(), BodyError> {
        let (key, value) = line
            .split_once(": ")
            .ok_or_else(|| err(n, format!("{line:?} is not a `key: value` line")))?;
        if value.is_empty() || value.starts_with(' ') || value.ends_with(' ') {
            return Err(err(n, format!("{key}: value is empty or has extra spaces")));
        }
        let time = |v: &str| parse_rfc3339(v).map_err(|e| e.to_string());
        match key {
            "domain" => once(
                &mut self.domain,
                n,
                key,
                check_domain(value).map(|_| value.to_string()),
            ),
            "serial" => once(&mut self.serial, n, key, parse_serial(value)),
            "not-before" => once(&mut self.not_before, n, key, time(value)),
            "not-after" => once(&mut self.not_after, n, key, time(value)),
            "mode" => once(&mut self.mode, n, key, value.parse::<Mode>()),
            "prefix" => self.add_prefix(n, value),
            "tls-key-sha256" => self.add_tls_key(n, value),
            "version" => Err(err(n, "version given twice")),
            other => Err(err(
                n,
                format!("unknown field {other:?} in {VERSION_LINE:?}"),
            )),
        }
    }

    /// A `prefix` line: canonical, and after the one before.
    fn add_prefix(&mut self, n: usize, value: &str) -> Result<(), BodyError> {
        let p = parse_canonical_prefix(value).map_err(|p| err(n, format!("prefix: {p}")))?;
        in_order(n, "prefix", self.prefixes.last(), &p, PREFIX_ORDER)?;
        self.prefixes.push(p);
        Ok(())
    }

    /// A `tls-key-sha256` line: in Postfix's form, and after the one before.
    fn add_tls_key(&mut self, n: usize, value: &str) -> Result<(), BodyError> {
        let f =
            normalise_tls_fingerprint(value).map_err(|p| err(n, format!("tls-key-sha256: {p}")))?;
        if f != value {
            return Err(err(n, format!("tls-key-sha256: write it as {f}")));
        }
        in_order(n, "tls-key-sha256", self.fprs.last(), &f, TLS_ORDER)?;
        self.fprs.push(f);
        Ok(())
    }

    /// The statement, once every required field is there and the window is
    /// not empty.
    fn finish(self) -> Result<Statement, BodyError> {
        let missing = |k: &str| whole(format!("missing field {k:?}"));
        let st = Statement {
            domain: self.domain.ok_or_else(|| missing("domain"))?,
            serial: self.serial.ok_or_else(|| missing("serial"))?,
            not_before: self.not_before.ok_or_else(|| missing("not-before"))?,
            not_after: self.not_after.ok_or_else(|| missing("not-after"))?,
            mode: self.mode.ok_or_else(|| missing("mode"))?,
            prefixes: self.prefixes,
            tls_key_sha256: self.fprs,
        };
        if st.prefixes.is_empty() {
            return Err(missing("prefix"));
        }
        if st.not_after <= st.not_before {
            return Err(whole("not-after is not later than not-before"));
        }
        Ok(st)
    }
}

const PREFIX_ORDER: &str =
    "prefixes are listed in ascending order (by address, then length), each once";
const TLS_ORDER: &str = "tls-key-sha256 values are listed in ascending order, each once";

/// A repeated field's value `v` on line `n` must come after `last`, the one
/// before it: one order, so one spelling.
fn in_order<T: Ord + std::fmt::Display>(
    n: usize,
    key: &str,
    last: Option<&T>,
    v: &T,
    rule: &str,
) -> Result<(), BodyError> {
    match last {
        Some(last) if v == last => Err(err(n, format!("{key} {v} given twice ({rule})"))),
        Some(last) if v < last => Err(err(
            n,
            format!("{key} {v} must come before {last} ({rule})"),
        )),
        _ => Ok(()),
    }
}

fn parse_serial(v: &str) -> Result<u64, String> {
    if v.len() > 1 && v.starts_with('0') || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{v:?} is not a decimal number without leading zeros"
        ));
    }
    v.parse()
        .map_err(|_| format!("{v:?} is not a number below 2^64"))
}

/// An IPv6 prefix with explicit length, zero host bits, in RFC 5952 form.
fn parse_canonical_prefix(v: &str) -> Result<Ipv6Net, String> {
    let p = crate::model::prefixes::parse_prefix(v)?;
    if !v.contains('/') || p.to_string() != v {
        return Err(format!("{v:?} is not canonical: write {p}"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Statement {
        Statement {
            domain: "example.ch".into(),
            serial: 7,
            not_before: 1_795_600_800,
            not_after: 1_795_600_800 + 90 * 86400,
            mode: Mode::Enforce,
            prefixes: vec![
                "2001:db8:1::/48".parse().unwrap(),
                "2001:db8:2::/48".parse().unwrap(),
            ],
            tls_key_sha256: vec![normalise_tls_fingerprint(&"ab".repeat(32)).unwrap()],
        }
    }

    fn perr(body: &str) -> String {
        Statement::parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn canonical_body_roundtrips() {
        let s = sample();
        let body = s.to_body();
        assert!(body.starts_with("version: WOTGATEv1\ndomain: example.ch\nserial: 7\nnot-before: 2026-11-25T10:00:00Z\n"), "{body}");
        assert_eq!(Statement::parse(body.as_bytes()).unwrap(), s);
    }

    #[test]
    fn strictness() {
        let body = sample().to_body();
        assert!(
            perr(&body.replace("mode: enforce\n", "mode: enforce\ncolour: blue\n"))
                .contains("unknown field \"colour\"")
        );
        assert!(perr(&body.replace("serial: 7\n", "serial: 7\nserial: 8\n"))
            .contains("serial given twice"));
        assert!(perr(&body.replace("WOTGATEv1", "WOTGATEv2")).contains("unsupported version"));
        assert!(perr(&body.replace('\n', "\r\n")).contains("control character"));
        assert!(perr(body.trim_end()).contains("does not end with a newline"));
        assert!(
            perr(&body.replace("prefix: 2001:db8:1::/48", "prefix: 2001:db8:1:0::/48"))
                .contains("not canonical")
        );
        assert!(
            perr(&body.replace("prefix: 2001:db8:1::/48", "prefix: 192.0.2.0/24")).contains("IPv4")
        );
        assert!(perr(&body.replace("serial: 7", "serial: 07")).contains("leading zeros"));
        assert!(
            perr(&body.replace("domain: example.ch", "domain: Example.ch"))
                .contains("lower-case domain")
        );
        assert!(perr(&body.replace("mode: enforce\n", "")).contains("missing field \"mode\""));
        assert!(perr(&body.replace("2027", "2025")).contains("not later than"));
        assert!(perr("").contains("empty"));
        assert!(perr("\u{0}\u{1}garbage").contains("does not end with a newline"));
        assert!(perr("version: WOTGATEv1\n\u{0}\n").contains("line 2: control character"));
        assert!(perr("version: WOTGATEv1\ndomain: é.ch\n").contains("not ASCII"));
        assert!(
            perr(&body.replace("domain: example.ch\n", "domain: example.ch\n\n"))
                .contains("not a `key: value` line")
        );
    }

    #[test]
    fn tls_fingerprints_normalise() {
        let f = normalise_tls_fingerprint(&"aB".repeat(32)).unwrap();
        assert_eq!(f.len(), 95);
        assert_eq!(normalise_tls_fingerprint(&f).unwrap(), f);
        assert!(normalise_tls_fingerprint("abcd").is_err());
        assert!(normalise_tls_fingerprint(&"g".repeat(64)).is_err());
    }
}
