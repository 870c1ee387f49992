//! The verdict on one policy request from the trust state: prefix, alignment,
//! TLS binding and TLS policy checks, turned into one Postfix action.
//!
//! The decision is stage-aware: at DATA (`smtpd_data_restrictions`, once per
//! message) a pass PREPENDs the header; at earlier stages a pass is `DUNNO`
//! and a failure rejects early; END-OF-MESSAGE is always `DUNNO`.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;
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
    let n = name.trim_end_matches('.').as_bytes();
    let d = domain.as_bytes();
    // `domain` is as the statement has it; compared as the lower-cased name.
    let lower_eq = |a: &[u8], b: &[u8]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_ascii_lowercase() == *y)
    };
    lower_eq(n, d)
        || (n.len() > d.len()
            && n[n.len() - d.len() - 1] == b'.'
            && lower_eq(&n[n.len() - d.len()..], d))
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

/// The checks that held for a pass, in the order they ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Checks(u8);

impl Checks {
    /// Every check, in the order they run.
    pub const NAMES: [&'static str; 5] = ["prefix", "sender", "helo", "tls-key", "tls-aead"];

    fn push(&mut self, name: &'static str) {
        if let Some(i) = Checks::NAMES.iter().position(|n| *n == name) {
            self.0 |= 1 << i;
        }
    }

    /// The names of the checks that held.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Checks::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// Runs the configured checks for one statement; the checks that held, or
/// the first that failed and why.
fn check_claim(
    req: &Request,
    c: &Claim,
    s: &VerdictSettings,
    now: u64,
) -> Result<Checks, (&'static str, String)> {
    let mut held = Checks(0);
    held.push("prefix");
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
    check(req, snapshot, now, s, web).into_outcome()
}

/// The statements behind a match: a snapshot's indices or a web's list.
enum Claims<'a> {
    Snap(&'a TrustSnapshot, &'a [u32]),
    Web(Vec<&'a Claim>),
}

impl<'a> Claims<'a> {
    fn len(&self) -> usize {
        match self {
            Claims::Snap(_, r) => r.len(),
            Claims::Web(v) => v.len(),
        }
    }

    fn at(&self, i: usize) -> &'a Claim {
        match self {
            Claims::Snap(snap, r) => snap.claim(r[i]),
            Claims::Web(v) => v[i],
        }
    }
}

/// A pass, before any text is made for it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Passed<'r, 'a> {
    /// The client address as sent.
    pub ip: &'r str,
    pub prefix: Ipv6Net,
    pub claim: Option<&'a Claim>,
    pub checks: Checks,
}

impl<'a> Passed<'_, 'a> {
    pub fn into_outcome(self) -> Outcome<'a> {
        Outcome::Pass {
            ip: printable(self.ip, 64),
            prefix: self.prefix.to_string(),
            claim: self.claim,
            checks: self.checks.names().collect(),
        }
    }
}

/// [`Outcome`], a pass without its strings (the usual case costs none).
pub(super) enum Checked<'r, 'a> {
    Pass(Passed<'r, 'a>),
    Other(Outcome<'a>),
}

impl<'a> Checked<'_, 'a> {
    pub fn into_outcome(self) -> Outcome<'a> {
        match self {
            Checked::Pass(p) => p.into_outcome(),
            Checked::Other(o) => o,
        }
    }
}

/// [`evaluate_in`] without strings for a pass.
pub(super) fn check<'r, 'a>(
    req: &'r Request,
    snapshot: Option<&'a TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    web: Option<usize>,
) -> Checked<'r, 'a> {
    let Some(snap) = snapshot else {
        return Checked::Other(Outcome::Temporary(
            "no trust state yet (the first refresh has not succeeded)".into(),
        ));
    };
    let age = now.duration_since(snap.built_at).unwrap_or_default();
    if age > s.max_state_age {
        return Checked::Other(Outcome::Temporary(format!(
            "the trust state is {} s old, older than policy.max_state_age",
            age.as_secs()
        )));
    }
    let raw = req.get("client_address").unwrap_or("");
    let fail = |check, detail| {
        Checked::Other(Outcome::Fail {
            ip: printable(raw, 64),
            check,
            detail,
            claim: None,
        })
    };
    // IPv6 first: what Postfix sends here, parsed without trying IPv4.
    let addr = match raw
        .parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .or_else(|_| raw.parse())
    {
        Ok(IpAddr::V6(a)) => a,
        Ok(IpAddr::V4(_)) => {
            let ip = printable(raw, 64);
            return fail("prefix", format!("client {ip} is IPv4; only IPv6 networks named in a trusted signed statement are accepted"));
        }
        Err(_) => {
            let ip = printable(raw, 64);
            return fail(
                "prefix",
                format!("client address {ip:?} is not an IP address"),
            );
        }
    };
    let found = match (web, &snap.webs) {
        (Some(w), Some(idx)) => idx
            .lookup(addr, w)
            .map(|m| (m.prefix, m.verdict, Claims::Web(m.claims))),
        _ => snap
            .find(addr)
            .map(|f| (f.prefix, f.verdict, Claims::Snap(snap, f.claims))),
    };
    let Some((prefix, verdict, claims)) = found else {
        let ip = printable(raw, 64);
        return fail(
            "prefix",
            format!("{ip} is in no network of a signed statement this server trusts"),
        );
    };
    if verdict == Verdict::Deny {
        let by = if claims.len() == 0 {
            "the operator".to_string()
        } else {
            format!("a refused key's statement for {}", claims.at(0).domain)
        };
        let ip = printable(raw, 64);
        return fail("prefix", format!("{ip} is in {prefix}, denied by {by}"));
    }
    if claims.len() == 0 {
        let mut checks = Checks(0);
        checks.push("prefix");
        return Checked::Pass(Passed {
            ip: raw,
            prefix,
            claim: None,
            checks,
        });
    }
    let now = to_timestamp(now);
    let mut first_failure = None;
    for i in 0..claims.len() {
        let c = claims.at(i);
        match check_claim(req, c, s, now) {
            Ok(checks) => {
                return Checked::Pass(Passed {
                    ip: raw,
                    prefix,
                    claim: Some(c),
                    checks,
                })
            }
            Err(f) => {
                first_failure.get_or_insert((f, c));
            }
        }
    }
    let ((check, detail), claim) = first_failure.expect("at least one claim");
    Checked::Other(Outcome::Fail {
        ip: printable(raw, 64),
        check,
        detail,
        claim: Some(claim),
    })
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
    match decide(req, snapshot, now, s, log, &mut Tally::default()) {
        Decision::Dunno => Reply::Dunno,
        Decision::Label(p) => {
            let mut h = String::new();
            header::write_pass_header(&mut h, s, &p);
            Reply::Prepend(h)
        }
        Decision::Reply(r) => r,
    }
}

/// [`judge_logged`], the reply appended to `out` as sent (as
/// [`Reply::write_wire`] writes it) and what it was counted as in `tally`.
/// The usual pass makes no string of its own: its header is written
/// straight into `out`.
pub fn judge_wire(
    req: &Request,
    snapshot: Option<&TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    log: &RecipientLog,
    out: &mut Vec<u8>,
    tally: &mut Tally,
) {
    match decide(req, snapshot, now, s, log, tally) {
        Decision::Dunno => Reply::Dunno.write_wire(out),
        Decision::Label(p) => {
            out.extend_from_slice(b"action=PREPEND ");
            header::write_pass_header(&mut header::Bytes(out), s, &p);
            out.extend_from_slice(b"\n\n");
        }
        Decision::Reply(r) => r.write_wire(out),
    }
}

/// The stage of a request, as the counters name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    Rcpt,
    /// DATA or BDAT.
    Data,
    #[default]
    Other,
}

/// What a request's verdict was, as the counters name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Counted {
    /// The checks held.
    Pass,
    /// A check failed (rejected, or labelled in observe mode).
    Fail,
    /// No usable trust state or an unsupported request: DEFER_IF_PERMIT.
    Defer,
    /// No verdict of its own: END-OF-MESSAGE, or a DATA label repeating
    /// what RCPT found per recipient.
    #[default]
    Dunno,
}

/// How one request counts: its stage, its verdict and which check failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub stage: Stage,
    pub verdict: Counted,
    /// For [`Counted::Fail`]: one of [`Checks::NAMES`].
    pub failed: Option<&'static str>,
}

impl Tally {
    /// Counts `c` as the verdict.
    pub(super) fn checked(&mut self, c: &Checked<'_, '_>) {
        (self.verdict, self.failed) = match c {
            Checked::Pass(_) | Checked::Other(Outcome::Pass { .. }) => (Counted::Pass, None),
            Checked::Other(Outcome::Fail { check, .. }) => (Counted::Fail, Some(*check)),
            Checked::Other(Outcome::Temporary(_)) => (Counted::Defer, None),
        };
    }
}

/// The protocol state, canonical: one of the stages we tell apart, else "".
fn stage_name(raw: &str) -> &'static str {
    ["RCPT", "DATA", "BDAT", "END-OF-MESSAGE"]
        .into_iter()
        .find(|n| raw.eq_ignore_ascii_case(n))
        .unwrap_or("")
}

/// What [`judge_logged`] answers, before any text for a pass is made.
enum Decision<'r, 'a> {
    Dunno,
    /// PREPEND the header of this pass.
    Label(Passed<'r, 'a>),
    Reply(Reply),
}

fn decide<'r, 'a>(
    req: &'r Request,
    snapshot: Option<&'a TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    log: &RecipientLog,
    tally: &mut Tally,
) -> Decision<'r, 'a> {
    let stage = stage_name(req.get("protocol_state").unwrap_or(""));
    tally.stage = match stage {
        "RCPT" => Stage::Rcpt,
        "DATA" | "BDAT" => Stage::Data,
        _ => Stage::Other,
    };
    match req.get("request") {
        Some("smtpd_access_policy") => {}
        other => {
            tally.verdict = Counted::Defer;
            return Decision::Reply(Reply::Defer(format!(
                "wotgate: unsupported request type {:?}",
                printable(other.unwrap_or(""), 40)
            )));
        }
    }
    if stage == "END-OF-MESSAGE" {
        tally.verdict = Counted::Dunno;
        return Decision::Dunno;
    }
    let data = tally.stage == Stage::Data;
    if let Some(r) = per_recipient(req, snapshot, now, s, log, stage, tally) {
        return Decision::Reply(r);
    }
    let c = check(req, snapshot, now, s, None);
    tally.checked(&c);
    match c {
        Checked::Pass(p) if data => Decision::Label(p),
        Checked::Pass(_) => Decision::Dunno,
        Checked::Other(o) => Decision::Reply(match o {
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
        }),
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
