//! The verdict on one policy request from the trust state: prefix, alignment,
//! TLS binding and TLS policy checks, turned into one Postfix action.
//!
//! The decision is stage-aware: at DATA (`smtpd_data_restrictions`, once per
//! message) a pass PREPENDs the header; at earlier stages a pass is `DUNNO`
//! and a failure rejects early; END-OF-MESSAGE is always `DUNNO`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::model::config::{PolicyMode, TlsAead};
use crate::model::prefixes::Verdict;
use crate::model::time::to_timestamp;
use crate::statement::body::normalise_tls_fingerprint;

use super::header;
use super::recipients::{per_recipient, RecipientLog};
use super::request::{xtext_decode, Request};
use super::trust::{Claim, TrustSnapshot};

/// What the verdict needs from `[policy]`, with the authserv-id resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictSettings {
    pub authserv_id: String,
    pub mode: PolicyMode,
    pub header_name: String,
    pub max_state_age: Duration,
    pub sender_alignment: bool,
    pub helo_alignment: bool,
    pub tls_aead: TlsAead,
    pub policy_url: Option<String>,
}

/// One reply to Postfix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Dunno,
    /// A header line, `Name: value`.
    Prepend(String),
    /// `REJECT 5.7.1 text`.
    Reject(String),
    /// `DEFER_IF_PERMIT 4.7.1 text`: temporary trouble, never a permit.
    Defer(String),
}

impl Reply {
    /// The reply as sent: `action=...` and the empty line.
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_wire(&mut out);
        String::from_utf8(out).expect("replies are text")
    }

    /// Appends the reply as sent to `out` (a server reuses one buffer).
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        let (word, text) = match self {
            Reply::Dunno => {
                out.extend_from_slice(b"action=DUNNO\n\n");
                return;
            }
            Reply::Prepend(h) => ("PREPEND ", h),
            Reply::Reject(t) => ("REJECT 5.7.1 ", t),
            Reply::Defer(t) => ("DEFER_IF_PERMIT 4.7.1 ", t),
        };
        out.extend_from_slice(b"action=");
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// The outcome of the checks, before the stage and mode make it a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Pass {
        ip: String,
        prefix: String,
        /// `None`: the operator's static allow.
        claim: Option<&'a Claim>,
        checks: Vec<&'static str>,
    },
    Fail {
        ip: String,
        check: &'static str,
        detail: String,
        claim: Option<&'a Claim>,
    },
    /// No usable trust state.
    Temporary(String),
}

/// Keeps printable ASCII (what a reply or header may carry), at most `max` bytes.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(max)
        .collect()
}

/// `name` is `domain` or a subdomain of it (case-insensitive, a final dot ignored).
fn aligned(name: &str, domain: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == domain
        || n.strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// TLS 1.3 suites are all AEAD; TLS 1.2 ones by name (CBC suites do not say CBC).
fn aead_ok(protocol: &str, cipher: &str) -> bool {
    let c = cipher.to_ascii_uppercase();
    match protocol {
        "TLSv1.3" => true,
        "TLSv1.2" => c.contains("GCM") || c.contains("CHACHA20") || c.contains("CCM"),
        _ => false,
    }
}

/// Runs the configured checks for one statement; the checks that held, or
/// the first that failed and why.
fn check_claim(
    req: &Request,
    c: &Claim,
    s: &VerdictSettings,
    now: u64,
) -> Result<Vec<&'static str>, (&'static str, String)> {
    let mut held = vec!["prefix"];
    if now >= c.not_after {
        return Err(("prefix", format!("the statement of {} expired", c.domain)));
    }
    let helo = req.get("helo_name");
    let helo_ok = helo.is_some_and(|h| aligned(h, &c.domain));
    if s.sender_alignment {
        match req.get("sender") {
            Some(sender) => {
                let dom = sender.rsplit_once('@').map_or("", |(_, d)| d);
                if !aligned(dom, &c.domain) {
                    return Err((
                        "sender",
                        format!(
                            "envelope sender <{}> is not in {} or a subdomain of it",
                            printable(sender, 120),
                            c.domain
                        ),
                    ));
                }
            }
            // A bounce (null sender) is judged by its HELO name, as SPF does.
            None if !helo_ok => {
                return Err((
                    "sender",
                    format!(
                        "null sender and HELO name {:?} is not in {} or a subdomain of it",
                        printable(helo.unwrap_or(""), 120),
                        c.domain
                    ),
                ));
            }
            None => {}
        }
        held.push("sender");
    }
    if s.helo_alignment {
        if !helo_ok {
            return Err((
                "helo",
                format!(
                    "HELO name {:?} is not {} or a subdomain of it",
                    printable(helo.unwrap_or(""), 120),
                    c.domain
                ),
            ));
        }
        held.push("helo");
    }
    if !c.tls_keys.is_empty() {
        let Some(raw) = req.get("ccert_pubkey_fingerprint") else {
            return Err(("tls-key", format!("no client certificate: {}'s statement lists TLS keys, so present one of them with STARTTLS", c.domain)));
        };
        let fpr = xtext_decode(raw).unwrap_or_default();
        let hex_len = fpr.chars().filter(char::is_ascii_hexdigit).count();
        if hex_len == 32 {
            return Err(("tls-key", "the receiving server reports MD5 certificate fingerprints; it needs smtpd_tls_fingerprint_digest = sha256 (postmaster: fix main.cf)".into()));
        }
        let Ok(fpr) = normalise_tls_fingerprint(&fpr) else {
            return Err((
                "tls-key",
                format!(
                    "certificate key fingerprint {:?} is not SHA-256",
                    printable(&fpr, 100)
                ),
            ));
        };
        if !c.tls_keys.contains(&fpr) {
            return Err((
                "tls-key",
                format!(
                    "client certificate key {fpr} is not one of the TLS keys in {}'s statement",
                    c.domain
                ),
            ));
        }
        held.push("tls-key");
    }
    let aead = match s.tls_aead {
        TlsAead::Always => true,
        TlsAead::Auto => !c.tls_keys.is_empty(),
        TlsAead::Never => false,
    };
    if aead {
        let proto = req.get("encryption_protocol").unwrap_or("");
        let cipher = req.get("encryption_cipher").unwrap_or("");
        if proto.is_empty() {
            return Err((
                "tls-aead",
                "no TLS: use STARTTLS with TLS 1.2 or 1.3 and an AEAD cipher".into(),
            ));
        }
        if !aead_ok(proto, cipher) {
            return Err(("tls-aead", format!("{} with {} is not TLS 1.2 or 1.3 with an AEAD cipher (AES-GCM, ChaCha20-Poly1305)", printable(proto, 20), printable(cipher, 60))));
        }
        held.push("tls-aead");
    }
    Ok(held)
}

/// The checks for one request against `snapshot` at `now`.
pub fn evaluate<'a>(
    req: &Request,
    snapshot: Option<&'a TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
) -> Outcome<'a> {
    evaluate_in(req, snapshot, now, s, None)
}

/// The checks in web `web` (`None`: the system's) of the snapshot.
pub fn evaluate_in<'a>(
    req: &Request,
    snapshot: Option<&'a TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    web: Option<usize>,
) -> Outcome<'a> {
    let Some(snap) = snapshot else {
        return Outcome::Temporary(
            "no trust state yet (the first refresh has not succeeded)".into(),
        );
    };
    let age = now.duration_since(snap.built_at).unwrap_or_default();
    if age > s.max_state_age {
        return Outcome::Temporary(format!(
            "the trust state is {} s old, older than policy.max_state_age",
            age.as_secs()
        ));
    }
    let raw = req.get("client_address").unwrap_or("");
    let ip = printable(raw, 64);
    let fail = |check, detail| Outcome::Fail {
        ip: ip.clone(),
        check,
        detail,
        claim: None,
    };
    let addr = match raw.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => a,
        Ok(IpAddr::V4(_)) => return fail("prefix", format!("client {ip} is IPv4; only IPv6 networks named in a trusted signed statement are accepted")),
        Err(_) => return fail("prefix", format!("client address {ip:?} is not an IP address")),
    };
    let found = match (web, &snap.webs) {
        (Some(w), Some(idx)) => idx.lookup(addr, w),
        _ => snap.lookup(addr),
    };
    let Some(m) = found else {
        return fail(
            "prefix",
            format!("{ip} is in no network of a signed statement this server trusts"),
        );
    };
    let prefix = m.prefix.to_string();
    if m.verdict == Verdict::Deny {
        let by = if m.claims.is_empty() {
            "the operator".to_string()
        } else {
            format!("a refused key's statement for {}", m.claims[0].domain)
        };
        return fail("prefix", format!("{ip} is in {prefix}, denied by {by}"));
    }
    if m.claims.is_empty() {
        return Outcome::Pass {
            ip,
            prefix,
            claim: None,
            checks: vec!["prefix"],
        };
    }
    let now = to_timestamp(now);
    let mut first_failure = None;
    for c in &m.claims {
        match check_claim(req, c, s, now) {
            Ok(checks) => {
                return Outcome::Pass {
                    ip,
                    prefix,
                    claim: Some(c),
                    checks,
                }
            }
            Err(f) => {
                first_failure.get_or_insert((f, *c));
            }
        }
    }
    let ((check, detail), claim) = first_failure.expect("at least one claim");
    Outcome::Fail {
        ip,
        check,
        detail,
        claim: Some(claim),
    }
}

/// The reply for one request: the checks, then the stage and the mode.
pub fn judge(
    req: &Request,
    snapshot: Option<&TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
) -> Reply {
    judge_logged(req, snapshot, now, s, &RecipientLog::new(0))
}

/// [`judge`], remembering per-recipient results in `log` between a
/// transaction's RCPT requests and its DATA request (per-recipient webs).
pub fn judge_logged(
    req: &Request,
    snapshot: Option<&TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    log: &RecipientLog,
) -> Reply {
    match req.get("request") {
        Some("smtpd_access_policy") => {}
        other => {
            return Reply::Defer(format!(
                "wotgate: unsupported request type {:?}",
                printable(other.unwrap_or(""), 40)
            ))
        }
    }
    let stage = req.get("protocol_state").unwrap_or("").to_ascii_uppercase();
    if stage == "END-OF-MESSAGE" {
        return Reply::Dunno;
    }
    let data = stage == "DATA" || stage == "BDAT";
    if let Some(r) = per_recipient(req, snapshot, now, s, log, &stage) {
        return r;
    }
    match evaluate(req, snapshot, now, s) {
        Outcome::Temporary(why) => Reply::Defer(format!("wotgate: {why}; try again later")),
        o @ Outcome::Pass { .. } if data => Reply::Prepend(header::header(s, &o)),
        Outcome::Pass { .. } => Reply::Dunno,
        o @ Outcome::Fail { .. } if s.mode == PolicyMode::Observe => {
            if data {
                Reply::Prepend(header::header(s, &o))
            } else {
                Reply::Dunno
            }
        }
        Outcome::Fail { check, detail, .. } => reject(s, check, &detail),
    }
}

/// `REJECT 5.7.1` naming the check, why, and where to read the policy.
pub(super) fn reject(s: &VerdictSettings, check: &str, detail: &str) -> Reply {
    let see = s
        .policy_url
        .as_ref()
        .map_or(String::new(), |u| format!("; see {u}"));
    Reply::Reject(printable(
        &format!("wotgate {check} check failed: {detail}{see}"),
        480,
    ))
}
