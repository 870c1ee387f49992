//! Per-recipient verdicts: at RCPT each recipient is judged in its own web
//! (or the system's); DATA then labels the message once with what RCPT found.
//!
//! Postfix asks once per recipient at RCPT (`smtpd_recipient_restrictions`)
//! and once per message at DATA, where a PREPEND adds exactly one header.
//! The per-recipient results wait in a bounded log keyed by Postfix's
//! `instance` attribute (one per message transaction).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::header::resinfo;
use super::request::Request;
use super::trust::TrustSnapshot;
use super::verdict::{check, printable, reject, Counted, Outcome, Reply, Tally, VerdictSettings};
use crate::model::config::PolicyMode;

/// How long a transaction's RCPT results wait for its DATA request.
const KEEP: Duration = Duration::from_secs(3600);

/// Per-transaction results between RCPT and DATA, bounded in entries.
#[derive(Debug)]
pub struct RecipientLog {
    max: usize,
    entries: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl RecipientLog {
    /// A log of at most `max` transactions (0: remembers nothing).
    pub fn new(max: usize) -> RecipientLog {
        RecipientLog {
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records one recipient's result for transaction `instance`. When
    /// full, old transactions go first, then (a flood) everything: a lost
    /// record only means DATA judges in the system web.
    fn add(&self, instance: &str, result: String) {
        if self.max == 0 || instance.is_empty() {
            return;
        }
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.max && !m.contains_key(instance) {
            let now = Instant::now();
            m.retain(|_, (t, _)| now.duration_since(*t) < KEEP);
            if m.len() >= self.max {
                m.clear();
            }
        }
        let e = m
            .entry(instance.to_string())
            .or_insert_with(|| (Instant::now(), Vec::new()));
        if !e.1.contains(&result) && e.1.len() < 64 {
            e.1.push(result);
        }
    }

    /// Takes the results of transaction `instance`.
    fn take(&self, instance: &str) -> Option<Vec<String>> {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(instance).map(|(_, r)| r)
    }

    /// Transactions waiting for their DATA request.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The reply when per-recipient webs are configured and the stage is RCPT
/// or DATA; `None` leaves the request to the system-web verdict.
pub(super) fn per_recipient(
    req: &Request,
    snapshot: Option<&TrustSnapshot>,
    now: SystemTime,
    s: &VerdictSettings,
    log: &RecipientLog,
    stage: &str,
    tally: &mut Tally,
) -> Option<Reply> {
    let snap = snapshot.filter(|s| s.has_recipient_webs())?;
    let idx = snap.webs.as_ref()?;
    let instance = req.get("instance").unwrap_or("");
    match stage {
        "RCPT" => {
            let rcpt = req.get("recipient").unwrap_or("");
            let web = idx.web_for(rcpt);
            let name = web.map(|w| idx.name(w));
            let c = check(req, Some(snap), now, s, web);
            tally.checked(&c);
            let o = c.into_outcome();
            Some(match o {
                Outcome::Temporary(why) => Reply::Defer(format!("wotgate: {why}; try again later")),
                Outcome::Pass { .. } => {
                    log.add(instance, resinfo(&o, name));
                    Reply::Dunno
                }
                Outcome::Fail { .. } if s.mode == PolicyMode::Observe => {
                    log.add(instance, resinfo(&o, name));
                    Reply::Dunno
                }
                Outcome::Fail { check, detail, .. } => {
                    let whose = match name {
                        Some(n) => format!("the web of trust of {n}"),
                        None => "this server's web of trust".to_string(),
                    };
                    let rcpt = printable(rcpt, 120);
                    reject(s, check, &format!("{detail} (recipient <{rcpt}>, {whose})"))
                }
            })
        }
        "DATA" | "BDAT" => {
            let results = log.take(instance)?;
            tally.verdict = Counted::Dunno;
            let mut h = format!("{}: {}", s.header_name, s.authserv_id);
            // One line under 998 bytes: the first results that fit.
            for r in results {
                if h.len() + r.len() + 2 > 960 {
                    break;
                }
                h.push_str("; ");
                h.push_str(&r);
            }
            Some(Reply::Prepend(h))
        }
        _ => None,
    }
}
