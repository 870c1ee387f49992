//! Per-recipient webs of trust: every web's accepted statements from one
//! keyring, one verified graph and one pass over the statements' signatures.
//!
//! Web 0 is the system default; webs 1.. are the recipients' own
//! (`[trust] recipients_directory`). The gate cannot know the recipient, so
//! it loads the union ([`Webs::union_set`]: a prefix is allowed when any
//! web allows it); the policy server decides per recipient.

mod union;

use std::collections::HashMap;

use sequoia_openpgp::Fingerprint;

use crate::model::prefixes::Verdict;
use crate::model::settings::{TestingPolicy, TrustSettings};
use crate::statement::{Acceptor, Candidate, Judgement, Mode, Role};
use crate::wot::{SharedGraph, Standing};

/// The name of web 0 in labels, logs and headers.
pub const SYSTEM_WEB: &str = "system";

/// Every web's accepted statements.
#[derive(Clone, Debug, Default)]
pub struct Webs {
    /// Web names: [`SYSTEM_WEB`] first, then recipients (an address or a
    /// domain).
    pub names: Vec<String>,
    /// Statements accepted in at least one web.
    pub candidates: Vec<Candidate>,
    /// Per web, what it accepted (indices into `candidates`).
    pub roles: Vec<Vec<Role>>,
    /// Per web, how many keys it trusts (roots included); 0 when unknown.
    pub trusted_keys: Vec<usize>,
    /// What testing-mode statements do (as in the plan).
    pub testing: TestingPolicy,
}

impl Webs {
    /// The system web alone, from its judgements.
    pub fn system_only(
        judgements: &[Judgement],
        trusted_keys: usize,
        testing: TestingPolicy,
    ) -> Webs {
        let mut webs = Webs {
            names: vec![SYSTEM_WEB.to_string()],
            roles: vec![Vec::new()],
            trusted_keys: vec![trusted_keys],
            testing,
            ..Webs::default()
        };
        for a in judgements.iter().filter_map(|j| j.result.as_ref().ok()) {
            let Ok(signer) = a.signer.parse::<Fingerprint>() else {
                continue;
            };
            webs.roles[0].push(Role {
                candidate: webs.candidates.len(),
                verdict: a.role,
                depth: a.depth,
            });
            webs.candidates.push(Candidate {
                file: a.file.clone(),
                statement: a.statement.clone(),
                signer,
                signed_at: a.signed_at,
            });
        }
        webs
    }

    /// Judges `statements` once and accepts them in every web of `defs`
    /// (the first is the system's): one graph, one signature check each.
    pub fn judge<'f>(
        acceptor: &Acceptor<'_>,
        statements: impl IntoIterator<Item = (&'f str, &'f [u8])>,
        graph: &SharedGraph<'_>,
        defs: &[(String, TrustSettings)],
        testing: TestingPolicy,
    ) -> Webs {
        let all = acceptor.candidates(statements);
        let mut signers: Vec<Fingerprint> = all.iter().map(|c| c.signer.clone()).collect();
        signers.sort();
        signers.dedup();
        let mut roles = Vec::with_capacity(defs.len());
        let mut trusted_keys = Vec::with_capacity(defs.len());
        for (_, settings) in defs {
            // One search per web answers both.
            let (standings, trusted) = graph.standings_and_count(settings, &signers);
            let standing: HashMap<&Fingerprint, Standing> = signers.iter().zip(standings).collect();
            roles.push(acceptor.accept_in(&all, |f| standing.get(f)));
            trusted_keys.push(trusted);
        }
        // Keep only candidates some web accepted, renumbered.
        let mut keep = vec![usize::MAX; all.len()];
        let mut candidates = Vec::new();
        for r in roles.iter().flatten() {
            if keep[r.candidate] == usize::MAX {
                keep[r.candidate] = candidates.len();
                candidates.push(all[r.candidate].clone());
            }
        }
        for r in roles.iter_mut().flatten() {
            r.candidate = keep[r.candidate];
        }
        Webs {
            names: defs.iter().map(|(n, _)| n.clone()).collect(),
            candidates,
            roles,
            trusted_keys,
            testing,
        }
    }

    /// Whether a role counts in verdicts: a testing statement under
    /// `testing = "count"` is only counted, as in the plan.
    pub fn counts(&self, role: &Role) -> bool {
        !(role.verdict == Verdict::Allow
            && self.testing == TestingPolicy::Count
            && self.candidates[role.candidate].statement.mode == Mode::Testing)
    }

    /// The index of a web by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}
