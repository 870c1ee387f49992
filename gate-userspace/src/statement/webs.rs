//! Acceptance for many webs of trust: the checks that do not depend on trust
//! (envelope, signature, body, window, prefixes) run once per statement; each
//! web then decides only the signer's standing, rollback and supersession.

use std::collections::BTreeMap;

use sequoia_openpgp::Fingerprint;

use crate::model::prefixes::Verdict;
use crate::model::time::{to_timestamp, Timestamp};

use super::accept::{parse_body, Acceptor, Subject};
use super::body::Statement;
use crate::wot::Standing;

/// A statement that passed every check independent of the web of trust.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub file: String,
    pub statement: Statement,
    pub signer: Fingerprint,
    pub signed_at: Timestamp,
}

/// A candidate accepted in one web.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// Index into the candidates.
    pub candidate: usize,
    pub verdict: Verdict,
    /// Trust depth in this web; `None` for a refused signer (a deny).
    pub depth: Option<usize>,
}

impl Acceptor<'_> {
    /// The statements that pass size, envelope, signature, body, window and
    /// prefix rules (the acceptor's trust view serves only certificates here).
    pub fn candidates<'f>(
        &self,
        files: impl IntoIterator<Item = (&'f str, &'f [u8])>,
    ) -> Vec<Candidate> {
        files
            .into_iter()
            .filter_map(|(file, bytes)| {
                let mut why = Vec::new();
                let subject = Subject {
                    file,
                    domain: None,
                    signer: None,
                };
                self.check_size(&subject, bytes).ok()?;
                let opened = self.open_envelope(&subject, bytes, &mut why).ok()?;
                let st = parse_body(&subject, &opened.body, &mut why).ok()?;
                self.check_window(&subject, &st, &mut why).ok()?;
                self.check_prefixes(&subject, &st, &mut why).ok()?;
                Some(Candidate {
                    file: file.to_string(),
                    statement: st,
                    signer: opened.signer,
                    signed_at: to_timestamp(opened.signed_at),
                })
            })
            .collect()
    }

    /// The candidates one web accepts, by the same rules as
    /// [`Acceptor::judge_all`]: the signer's standing for the statement's
    /// domain, rollback for allowing statements, then per domain only the
    /// highest accepted allowing serial stays.
    pub fn accept_in<'s>(
        &self,
        candidates: &[Candidate],
        standing: impl Fn(&Fingerprint) -> Option<&'s Standing>,
    ) -> Vec<Role> {
        let mut roles: Vec<Role> = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let domain = &c.statement.domain;
            let (verdict, depth) = match standing(&c.signer) {
                Some(Standing::Trusted { depth, domains }) if domains.contains(domain) => {
                    (Verdict::Allow, Some(*depth))
                }
                Some(Standing::Refused { would_be_domains })
                    if would_be_domains.contains(domain) =>
                {
                    (Verdict::Deny, None)
                }
                _ => continue,
            };
            if verdict == Verdict::Allow
                && self
                    .state
                    .last(domain)
                    .is_some_and(|last| c.statement.serial < last)
            {
                continue;
            }
            roles.push(Role {
                candidate: i,
                verdict,
                depth,
            });
        }
        let mut best: BTreeMap<&str, u64> = BTreeMap::new();
        for r in roles.iter().filter(|r| r.verdict == Verdict::Allow) {
            let st = &candidates[r.candidate].statement;
            let e = best.entry(st.domain.as_str()).or_insert(st.serial);
            *e = (*e).max(st.serial);
        }
        roles.retain(|r| {
            let st = &candidates[r.candidate].statement;
            r.verdict == Verdict::Deny || best.get(st.domain.as_str()) == Some(&st.serial)
        });
        roles
    }
}
