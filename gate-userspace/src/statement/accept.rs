//! The acceptance rules: from signed bytes to an allow, a deny or a rejection
//! that names the statement, its domain and the rule, with every check explained.

use std::{collections::BTreeMap, fmt, time::SystemTime};

use ipnet::Ipv6Net;
use sequoia_openpgp::{policy::Policy, Fingerprint};

use crate::model::prefixes::Verdict;
pub use crate::model::settings::AcceptRules;
use crate::model::time::{format_rfc3339, to_timestamp, Timestamp};

use super::{
    body::Statement,
    signed::{open, EnvelopeError, Opened},
    state::SerialState,
    view::{SignerTrust, TrustView},
};

/// The rule a statement failed; the names are stable and appear in output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The statement could not be read at all (a missing file, a failed fetch).
    Unreadable,
    Oversized,
    Malformed,
    UnknownSigner,
    BadSignature,
    Body,
    UntrustedSigner,
    RefusedSigner,
    DomainNotAuthenticated,
    NotYetValid,
    Expired,
    Rollback,
    Superseded,
    PrefixNotGlobal,
    DocumentationPrefix,
    PrefixTooBroad,
    TooManyPrefixes,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        use Rule::*;
        match self {
            Unreadable => "unreadable",
            Oversized => "oversized",
            Malformed => "malformed",
            UnknownSigner => "unknown-signer",
            BadSignature => "bad-signature",
            Body => "body",
            UntrustedSigner => "untrusted-signer",
            RefusedSigner => "refused-signer",
            DomainNotAuthenticated => "domain-not-authenticated",
            NotYetValid => "not-yet-valid",
            Expired => "expired",
            Rollback => "rollback",
            Superseded => "superseded",
            PrefixNotGlobal => "prefix-not-global",
            DocumentationPrefix => "documentation-prefix",
            PrefixTooBroad => "prefix-too-broad",
            TooManyPrefixes => "too-many-prefixes",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected statement: which file, which domain (once known), which rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{file}: {}: rejected by rule {rule}: {detail}", domain.as_deref().unwrap_or("(domain unknown)"))]
pub struct Rejection {
    pub file: String,
    pub domain: Option<String>,
    pub signer: Option<String>,
    pub rule: Rule,
    pub detail: String,
}

/// A statement that passed every rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    pub file: String,
    pub statement: Statement,
    /// Signer certificate fingerprint (hex).
    pub signer: String,
    /// Trust depth (0: a root); `None` for a refused signer.
    pub depth: Option<usize>,
    pub role: Verdict,
    pub signed_at: Timestamp,
}

/// The verdict on one statement, with the checks that led to it in order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Judgement {
    pub file: String,
    pub result: Result<Accepted, Rejection>,
    pub explanation: Vec<String>,
}

/// Everything acceptance depends on; no wall clock inside.
pub struct Acceptor<'a> {
    pub rules: &'a AcceptRules,
    pub trust: &'a dyn TrustView,
    pub policy: &'a dyn Policy,
    pub at: SystemTime,
    pub state: &'a SerialState,
}

/// Global unicast: the only addresses a statement may name.
const GLOBAL_UNICAST: &str = "2000::/3";
/// The special ranges outside global unicast, by name.
const SPECIAL: [(&str, &str); 6] = [
    ("::/128", "the unspecified address"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];
const DOCUMENTATION: [&str; 2] = ["2001:db8::/32", "3fff::/20"];

fn net(s: &str) -> Ipv6Net {
    s.parse().expect("constant prefix")
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// What a prefix outside global unicast is: the special range it lies in,
/// else the special ranges it covers (a prefix that covers loopback is not
/// loopback).
fn not_global(p: &Ipv6Net) -> String {
    if let Some((range, name)) = SPECIAL.iter().find(|(n, _)| net(n).contains(p)) {
        return if net(range) == *p {
            format!("{p} is {name}")
        } else {
            format!("{p} is {name} ({range})")
        };
    }
    let covered: Vec<&str> = SPECIAL
        .iter()
        .filter(|(n, _)| p.contains(&net(n)))
        .map(|(_, name)| *name)
        .collect();
    if covered.is_empty() {
        format!("{p} is not global unicast")
    } else {
        format!(
            "{p} is not global unicast: it covers {}",
            and_list(&covered)
        )
    }
}

/// Checks one prefix against the prefix rules.
pub fn check_prefix(p: &Ipv6Net, rules: &AcceptRules) -> Result<(), (Rule, String)> {
    if !net(GLOBAL_UNICAST).contains(p) {
        return Err((
            Rule::PrefixNotGlobal,
            format!(
                "{}; only global unicast ({GLOBAL_UNICAST}) is accepted",
                not_global(p)
            ),
        ));
    }
    if !rules.allow_documentation_prefixes {
        for d in DOCUMENTATION {
            let how = if net(d).contains(p) {
                "is inside"
            } else if p.contains(&net(d)) {
                "covers"
            } else {
                continue;
            };
            return Err((
                Rule::DocumentationPrefix,
                format!(
                    "{p} {how} the documentation prefix {d} (allow_documentation_prefixes is off)"
                ),
            ));
        }
    }
    if p.prefix_len() < rules.min_prefix_len {
        return Err((
            Rule::PrefixTooBroad,
            format!(
                "{p} is broader than /{} (min_prefix_len)",
                rules.min_prefix_len
            ),
        ));
    }
    Ok(())
}

/// What is known so far about the statement being judged, to name it in a
/// rejection: the file always, the signer once verified, the domain once read.
pub(super) struct Subject<'f> {
    pub(super) file: &'f str,
    pub(super) domain: Option<String>,
    pub(super) signer: Option<String>,
}

impl Subject<'_> {
    /// A rejection of this statement by `rule`.
    fn reject(&self, rule: Rule, detail: String) -> Rejection {
        Rejection {
            file: self.file.to_string(),
            domain: self.domain.clone(),
            signer: self.signer.clone(),
            rule,
            detail,
        }
    }
}

/// The acceptance rule an envelope error breaks.
fn envelope_rule(e: &EnvelopeError) -> Rule {
    match e {
        EnvelopeError::UnknownSigner(_) => Rule::UnknownSigner,
        EnvelopeError::BadSignature { .. }
        | EnvelopeError::PolicyRejected { .. }
        | EnvelopeError::MadeAfter { .. }
        | EnvelopeError::SignatureExpired { .. }
        | EnvelopeError::BadKey { .. }
        | EnvelopeError::UnboundKey { .. } => Rule::BadSignature,
        EnvelopeError::Malformed(_)
        | EnvelopeError::Framing(_)
        | EnvelopeError::Compressed
        | EnvelopeError::Encrypted
        | EnvelopeError::SignatureCount(_)
        | EnvelopeError::NotSigned
        | EnvelopeError::NeverChecked => Rule::Malformed,
    }
}

impl Acceptor<'_> {
    /// Judges one armoured statement named `file`.
    pub fn judge(&self, file: &str, armoured: &[u8]) -> Judgement {
        let mut explanation = Vec::new();
        let result = self.judge_inner(file, armoured, &mut explanation);
        Judgement {
            file: file.to_string(),
            result,
            explanation,
        }
    }

    /// Applies the rules in their documented order; the first failure rejects.
    fn judge_inner(
        &self,
        file: &str,
        armoured: &[u8],
        why: &mut Vec<String>,
    ) -> Result<Accepted, Rejection> {
        let mut subject = Subject {
            file,
            domain: None,
            signer: None,
        };
        self.check_size(&subject, armoured)?;
        let opened = self.open_envelope(&subject, armoured, why)?;
        let fpr = opened.signer.to_hex();
        subject.signer = Some(fpr.clone());
        let st = parse_body(&subject, &opened.body, why)?;
        subject.domain = Some(st.domain.clone());
        let (role, depth) = self.check_signer(&subject, &opened.signer, &st, why)?;
        self.check_window(&subject, &st, why)?;
        if role == Verdict::Allow {
            self.check_serial(&subject, &st, why)?;
        }
        self.check_prefixes(&subject, &st, why)?;
        Ok(Accepted {
            file: file.to_string(),
            statement: st,
            signer: fpr,
            depth,
            role,
            signed_at: to_timestamp(opened.signed_at),
        })
    }

    /// The reference time as RFC 3339, for the explanation.
    fn at_text(&self) -> String {
        format_rfc3339(to_timestamp(self.at))
    }

    /// Rule `oversized`: the armoured statement fits `max_statement_size`.
    pub(super) fn check_size(&self, subject: &Subject, armoured: &[u8]) -> Result<(), Rejection> {
        if armoured.len() > self.rules.max_size {
            return Err(subject.reject(
                Rule::Oversized,
                format!(
                    "{} bytes, more than max_statement_size {}",
                    armoured.len(),
                    self.rules.max_size
                ),
            ));
        }
        Ok(())
    }

    /// Rules `malformed`, `unknown-signer`, `bad-signature`: the envelope
    /// opens and its one signature verifies at the reference time.
    pub(super) fn open_envelope(
        &self,
        subject: &Subject,
        armoured: &[u8],
        why: &mut Vec<String>,
    ) -> Result<Opened, Rejection> {
        let opened = open(armoured, self.trust, self.policy, self.at)
            .map_err(|e| subject.reject(envelope_rule(&e), e.to_string()))?;
        why.push(format!(
            "signature by {} made {} verifies under the standard policy at {}",
            opened.signer.to_hex(),
            format_rfc3339(to_timestamp(opened.signed_at)),
            self.at_text()
        ));
        Ok(opened)
    }

    /// Rules `untrusted-signer`, `domain-not-authenticated`, `refused-signer`:
    /// the signer's standing decides the statement's role (and depth).
    fn check_signer(
        &self,
        subject: &Subject,
        signer: &Fingerprint,
        st: &Statement,
        why: &mut Vec<String>,
    ) -> Result<(Verdict, Option<usize>), Rejection> {
        let fpr = signer.to_hex();
        match self.trust.signer(signer) {
            SignerTrust::Untrusted { reason } => Err(subject.reject(
                Rule::UntrustedSigner,
                format!("{fpr} is not trusted: {reason}"),
            )),
            SignerTrust::Trusted { depth, domains } => {
                if !domains.contains(&st.domain) {
                    return Err(subject.reject(Rule::DomainNotAuthenticated, format!(
                        "{fpr} is trusted (depth {depth}) but the web of trust authenticates none of its User IDs for {} (it speaks for: {})",
                        st.domain, list(&domains)
                    )));
                }
                why.push(format!(
                    "{fpr} is trusted at depth {depth} and authenticated for {}",
                    st.domain
                ));
                Ok((Verdict::Allow, Some(depth)))
            }
            SignerTrust::Refused { would_be_domains } => {
                if !would_be_domains.contains(&st.domain) {
                    return Err(subject.reject(Rule::RefusedSigner, format!(
                        "{fpr} is refused, and a refused key may only deny prefixes for its own domains ({}), not for {}",
                        list(&would_be_domains), st.domain
                    )));
                }
                why.push(format!(
                    "{fpr} is refused: its statement for {} becomes deny entries",
                    st.domain
                ));
                Ok((Verdict::Deny, None))
            }
        }
    }

    /// Rules `not-yet-valid`, `expired`: the reference time is in
    /// `[not-before, not-after)`.
    pub(super) fn check_window(
        &self,
        subject: &Subject,
        st: &Statement,
        why: &mut Vec<String>,
    ) -> Result<(), Rejection> {
        let now = to_timestamp(self.at);
        if now < st.not_before {
            return Err(subject.reject(
                Rule::NotYetValid,
                format!(
                    "valid from {}, it is {}",
                    format_rfc3339(st.not_before),
                    self.at_text()
                ),
            ));
        }
        if now >= st.not_after {
            return Err(subject.reject(
                Rule::Expired,
                format!(
                    "expired at {}, it is {}",
                    format_rfc3339(st.not_after),
                    self.at_text()
                ),
            ));
        }
        why.push(format!(
            "within its validity window {} .. {}",
            format_rfc3339(st.not_before),
            format_rfc3339(st.not_after)
        ));
        Ok(())
    }

    /// Rule `rollback` (allowing statements only): the serial is not lower
    /// than the last one accepted for the domain.
    fn check_serial(
        &self,
        subject: &Subject,
        st: &Statement,
        why: &mut Vec<String>,
    ) -> Result<(), Rejection> {
        match self.state.last(&st.domain) {
            Some(last) if st.serial < last => {
                return Err(subject.reject(
                    Rule::Rollback,
                    format!(
                        "serial {} is lower than the last accepted serial {last} for {}",
                        st.serial, st.domain
                    ),
                ))
            }
            Some(last) => why.push(format!(
                "serial {} is not lower than the last accepted {last}",
                st.serial
            )),
            None => why.push(format!("no serial recorded for {} yet", st.domain)),
        }
        Ok(())
    }

    /// Rule `too-many-prefixes` and the per-prefix rules of [`check_prefix`].
    pub(super) fn check_prefixes(
        &self,
        subject: &Subject,
        st: &Statement,
        why: &mut Vec<String>,
    ) -> Result<(), Rejection> {
        if st.prefixes.len() > self.rules.max_prefixes {
            return Err(subject.reject(
                Rule::TooManyPrefixes,
                format!(
                    "{} prefixes, at most {} (max_prefixes_per_statement)",
                    st.prefixes.len(),
                    self.rules.max_prefixes
                ),
            ));
        }
        for p in &st.prefixes {
            check_prefix(p, self.rules).map_err(|(rule, d)| subject.reject(rule, d))?;
        }
        why.push(format!(
            "{} prefixes, all global unicast and at least /{}",
            st.prefixes.len(),
            self.rules.min_prefix_len
        ));
        Ok(())
    }

    /// Judges a set of statements: each alone, then, per domain, allowing
    /// statements below the highest accepted serial are superseded.
    pub fn judge_all<'f>(
        &self,
        files: impl IntoIterator<Item = (&'f str, &'f [u8])>,
    ) -> Vec<Judgement> {
        let mut out: Vec<Judgement> = files.into_iter().map(|(f, b)| self.judge(f, b)).collect();
        let mut best: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for a in out
            .iter()
            .filter_map(|j| j.result.as_ref().ok())
            .filter(|a| a.role == Verdict::Allow)
        {
            let e = best
                .entry(a.statement.domain.clone())
                .or_insert((a.statement.serial, a.file.clone()));
            if a.statement.serial > e.0 {
                *e = (a.statement.serial, a.file.clone());
            }
        }
        for j in &mut out {
            let Ok(a) = &j.result else { continue };
            let (top, top_file) = &best.get(&a.statement.domain).cloned().unwrap_or_default();
            if a.role == Verdict::Allow && a.statement.serial < *top {
                let r = Rejection {
                    file: j.file.clone(),
                    domain: Some(a.statement.domain.clone()),
                    signer: Some(a.signer.clone()),
                    rule: Rule::Superseded,
                    detail: format!(
                        "serial {} is superseded by serial {top} in {top_file}",
                        a.statement.serial
                    ),
                };
                j.result = Err(r);
            }
        }
        out.sort_by(|a, b| a.file.cmp(&b.file));
        out
    }
}

/// Rule `body`: the signed bytes are a well-formed statement.
pub(super) fn parse_body(
    subject: &Subject,
    body: &[u8],
    why: &mut Vec<String>,
) -> Result<Statement, Rejection> {
    let st = Statement::parse(body)
        .map_err(|e| subject.reject(Rule::Body, format!("validly signed, but {e}")))?;
    why.push(format!(
        "body is a well-formed statement for {} (serial {}, {})",
        st.domain,
        st.serial,
        st.mode.as_str()
    ));
    Ok(st)
}

/// Domains for a message: comma-separated, or "no domain".
fn list(v: &[String]) -> String {
    if v.is_empty() {
        "no domain".into()
    } else {
        v.join(", ")
    }
}
