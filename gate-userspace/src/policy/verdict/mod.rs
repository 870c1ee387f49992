//! The verdict on one policy request from the trust state: prefix, alignment,
//! TLS binding and TLS policy checks, turned into one Postfix action.
//!
//! The decision is stage-aware: at DATA (`smtpd_data_restrictions`, once per
//! message) a pass PREPENDs the header; at earlier stages a pass is `DUNNO`
//! and a failure rejects early; END-OF-MESSAGE is always `DUNNO`.

use ipnet::Ipv6Net;
use std::time::Duration;

use crate::model::config::{PolicyMode, TlsAead};

use super::trust::Claim;

mod claim;
mod decide;
mod lookup;

pub(super) use decide::reject;
pub use decide::{judge, judge_logged, judge_wire};
pub(super) use lookup::check;
pub use lookup::{evaluate, evaluate_in};

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
    /// For [`Counted::Fail`]: one of the check names (`Checks::NAMES`:
    /// prefix, sender, helo, tls-key, tls-aead).
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
