//! From the checks to one reply: the request type, the protocol stage and
//! the mode decide between DUNNO, a PREPENDed header, a defer and a reject.

use std::time::SystemTime;

use crate::model::config::PolicyMode;
use crate::policy::header;
use crate::policy::recipients::{per_recipient, RecipientLog};
use crate::policy::request::Request;
use crate::policy::trust::TrustSnapshot;

use super::lookup::check;
use super::{printable, Checked, Counted, Outcome, Passed, Reply, Stage, Tally, VerdictSettings};

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
pub(in crate::policy) fn reject(s: &VerdictSettings, check: &str, detail: &str) -> Reply {
    let see = s
        .policy_url
        .as_ref()
        .map_or(String::new(), |u| format!("; see {u}"));
    Reply::Reject(printable(
        &format!("wotgate {check} check failed: {detail}{see}"),
        480,
    ))
}
