//! The `Authentication-Results` header (RFC 8601) the policy server PREPENDs:
//! our authserv-id, method `x-wot`, the statement's domain, signer and depth.
//!
//! One line (a policy reply cannot carry a fold), printable ASCII, values
//! with `:` or `/` quoted, well under 998 bytes.

use std::fmt::Write;

use super::trust::Claim;
use super::verdict::{printable, Outcome, Passed, VerdictSettings};

/// The method name: unregistered, so experimental (RFC 8601 section 2.7.6).
pub const METHOD: &str = "x-wot";

/// An RFC 5322 quoted-string of printable ASCII.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_quoted(&mut out, s, 300);
    out
}

/// [`quoted`] of [`printable`]`(s, max)`, written to `w`.
fn write_quoted<W: Write>(w: &mut W, s: &str, max: usize) {
    let _ = w.write_char('"');
    for c in s.chars().take(max) {
        let c = if (' '..='~').contains(&c) { c } else { '?' };
        if c == '"' || c == '\\' {
            let _ = w.write_char('\\');
        }
        let _ = w.write_char(c);
    }
    let _ = w.write_char('"');
}

/// Bytes as a [`Write`] (what is written is UTF-8).
pub(super) struct Bytes<'a>(pub &'a mut Vec<u8>);

impl Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// [`header`] of a pass, written to `w` (the same text; no strings made).
pub(super) fn write_pass_header<W: Write>(w: &mut W, s: &VerdictSettings, p: &Passed<'_, '_>) {
    let _ = write!(w, "{}: {}; {METHOD}=", s.header_name, s.authserv_id);
    let prefix = |w: &mut W| {
        // An address and a length: printable, nothing to escape.
        let _ = write!(w, "\"{}\"", p.prefix);
    };
    write_pass(
        w,
        None,
        |w| write_quoted(w, p.ip, 64),
        prefix,
        p.claim,
        p.checks.names(),
    );
}

/// A pass's result after `x-wot=`; `ip` and `prefix` write them quoted.
fn write_pass<W: Write>(
    w: &mut W,
    web: Option<&str>,
    ip: impl FnOnce(&mut W),
    prefix: impl FnOnce(&mut W),
    claim: Option<&Claim>,
    checks: impl Iterator<Item = &'static str>,
) {
    let _ = w.write_str("pass");
    if let Some(web) = web {
        let _ = w.write_str(" policy.web=");
        let _ = w.write_str(&printable(web, 254));
    }
    let _ = w.write_str(" policy.remote-ip=");
    ip(w);
    let _ = w.write_str(" policy.prefix=");
    prefix(w);
    match claim {
        None => {
            let _ = w.write_str(" policy.source=static");
        }
        Some(c) => {
            let _ = write!(
                w,
                " policy.domain={} policy.signer={} policy.depth={}{}",
                c.domain,
                c.signer,
                c.depth.unwrap_or(0),
                if c.testing {
                    " policy.statement=testing"
                } else {
                    ""
                }
            );
        }
    }
    let _ = w.write_str(" policy.checks=\"");
    for (i, c) in checks.enumerate() {
        if i > 0 {
            let _ = w.write_char(',');
        }
        let _ = w.write_str(c);
    }
    let _ = w.write_char('"');
}

/// `Name: authserv-id; x-wot=RESULT ...` for a pass or a (labelled) fail.
pub fn header(s: &VerdictSettings, o: &Outcome<'_>) -> String {
    format!("{}: {}; {}", s.header_name, s.authserv_id, resinfo(o, None))
}

/// The result for one message: `x-wot=RESULT ...`, naming the
/// per-recipient web that decided when it is not the system's.
pub fn resinfo(o: &Outcome<'_>, web: Option<&str>) -> String {
    let mut h = format!("{METHOD}=");
    let (ip, claim) = match o {
        Outcome::Pass {
            ip,
            prefix,
            claim,
            checks,
        } => {
            // The check names are printable, without quotes.
            write_pass(
                &mut h,
                web,
                |w| write_quoted(w, ip, 300),
                |w| write_quoted(w, prefix, 300),
                *claim,
                checks.iter().copied(),
            );
            return h;
        }
        Outcome::Fail {
            ip,
            check,
            detail,
            claim,
        } => {
            let web = web.map_or(String::new(), |w| {
                format!(" policy.web={}", printable(w, 254))
            });
            h.push_str(&format!(
                "fail{web} reason={}",
                quoted(&format!("{check}: {detail}"))
            ));
            (ip, claim)
        }
        Outcome::Temporary(why) => {
            h.push_str(&format!("temperror reason={}", quoted(why)));
            return h;
        }
    };
    h.push_str(&format!(" policy.remote-ip={}", quoted(ip)));
    if let Some(c) = claim {
        h.push_str(&format!(
            " policy.domain={} policy.signer={}",
            c.domain, c.signer
        ));
        if let Some(d) = c.depth {
            h.push_str(&format!(" policy.depth={d}"));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{PolicyMode, TlsAead};
    use crate::policy::trust::Claim;

    fn settings() -> VerdictSettings {
        VerdictSettings {
            authserv_id: "mx.example".into(),
            mode: PolicyMode::Enforce,
            header_name: "Authentication-Results".into(),
            max_state_age: std::time::Duration::from_secs(3600),
            sender_alignment: false,
            helo_alignment: false,
            tls_aead: TlsAead::Auto,
            policy_url: None,
        }
    }

    #[test]
    fn quoting_escapes_and_strips() {
        assert_eq!(quoted("a\"b\\c\r\nd\u{e9}"), "\"a\\\"b\\\\c??d?\"");
    }

    #[test]
    fn static_pass_and_fail_without_claim() {
        let s = settings();
        let pass = Outcome::Pass {
            ip: "2001:db8::1".into(),
            prefix: "2001:db8::/32".into(),
            claim: None,
            checks: vec!["prefix"],
        };
        assert_eq!(
            header(&s, &pass),
            "Authentication-Results: mx.example; x-wot=pass policy.remote-ip=\"2001:db8::1\" policy.prefix=\"2001:db8::/32\" policy.source=static policy.checks=\"prefix\""
        );
        let c = Claim {
            domain: "alpha.example".into(),
            signer: "AB".repeat(20),
            depth: Some(1),
            serial: 1,
            not_after: u64::MAX,
            tls_keys: vec![],
            testing: false,
        };
        let fail = Outcome::Fail {
            ip: "2001:db8::1".into(),
            check: "helo",
            detail: "HELO name \"x\" is not alpha.example".into(),
            claim: Some(&c),
        };
        let h = header(&s, &fail);
        assert_eq!(
            h,
            format!("Authentication-Results: mx.example; x-wot=fail reason=\"helo: HELO name \\\"x\\\" is not alpha.example\" policy.remote-ip=\"2001:db8::1\" policy.domain=alpha.example policy.signer={} policy.depth=1", "AB".repeat(20))
        );
    }
}
