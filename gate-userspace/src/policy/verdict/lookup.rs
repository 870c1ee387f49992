//! The checks for one request: the trust state's age, the client address,
//! the prefix that holds it and the statements behind that prefix.

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use crate::model::prefixes::Verdict;
use crate::model::time::to_timestamp;
use crate::policy::request::Request;
use crate::policy::trust::{Claim, TrustSnapshot};

use super::claim::check_claim;
use super::{printable, Checked, Checks, Outcome, Passed, VerdictSettings};

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

/// [`evaluate_in`] without strings for a pass.
pub(in crate::policy) fn check<'r, 'a>(
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
