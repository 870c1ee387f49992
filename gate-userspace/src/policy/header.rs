//! The `Authentication-Results` header (RFC 8601) the policy server PREPENDs:
//! our authserv-id, method `x-wot`, the statement's domain, signer and depth.
//!
//! One line (a policy reply cannot carry a fold), printable ASCII, values
//! with `:` or `/` quoted, well under 998 bytes.

use std::fmt::Write;

use super::verdict::{printable, Outcome, VerdictSettings};

/// The method name: unregistered, so experimental (RFC 8601 section 2.7.6).
pub const METHOD: &str = "x-wot";

/// An RFC 5322 quoted-string of printable ASCII.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in printable(s, 300).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `Name: authserv-id; x-wot=RESULT ...` for a pass or a (labelled) fail.
pub fn header(s: &VerdictSettings, o: &Outcome<'_>) -> String {
    format!("{}: {}; {}", s.header_name, s.authserv_id, resinfo(o, None))
}

/// The result for one message: `x-wot=RESULT ...`, naming the
/// per-recipient web that decided when it is not the system's.
pub fn resinfo(o: &Outcome<'_>, web: Option<&str>) -> String {
    let mut h = format!("{METHOD}=");
    let web = web.map_or(String::new(), |w| {
        format!(" policy.web={}", printable(w, 254))
    });
    let (ip, claim) = match o {
        Outcome::Pass {
            ip,
            prefix,
            claim,
            checks,
        } => {
            h.push_str("pass");
            h.push_str(&web);
            // Writing into a String cannot fail.
            let _ = write!(
                h,
                " policy.remote-ip={} policy.prefix={}",
                quoted(ip),
                quoted(prefix)
            );
            match claim {
                None => h.push_str(" policy.source=static"),
                Some(c) => {
                    let _ = write!(
                        h,
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
            let _ = write!(h, " policy.checks={}", quoted(&checks.join(",")));
            return h;
        }
        Outcome::Fail {
            ip,
            check,
            detail,
            claim,
        } => {
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
