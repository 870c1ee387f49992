//! The trusted prefix plan: accepted statements become allow entries, refused
//! signers' statements deny entries, each with provenance; folded for the kernel.

mod render;

use std::collections::BTreeMap;

use ipnet::Ipv6Net;

use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict, MAX_LABEL};
pub use crate::model::settings::TestingPolicy;
use crate::statement::{Accepted, Mode, Rejection};

/// Where one entry comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Provenance {
    pub domain: String,
    pub serial: u64,
    pub signer: String,
    /// Trust depth; `None` for a refused signer.
    pub depth: Option<usize>,
    pub mode: Mode,
    pub file: String,
}

/// One prefix of the plan with everything that asked for it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanEntry {
    pub prefix: Ipv6Net,
    pub verdict: Verdict,
    /// Sorted; for a deny, the refused statements first.
    pub provenance: Vec<Provenance>,
    /// Allow provenance overridden by a deny on the same prefix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<Provenance>,
    /// Set when the kernel does not need this entry: the broader entry with
    /// the same verdict that covers it.
    pub folded_into: Option<Ipv6Net>,
}

/// The whole plan: kernel entries, counted testing entries, rejections.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Reference time the statements were judged at (RFC 3339).
    pub at: String,
    pub entries: Vec<PlanEntry>,
    /// Testing-mode prefixes that are only counted (`testing = "count"`).
    pub counted: Vec<PlanEntry>,
    pub rejected: Vec<Rejection>,
    pub accepted_statements: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the plan has {count} kernel entries, more than the gate holds ({max})")]
    TooMany { count: usize, max: usize },
}

/// Where an accepted statement's entries come from.
fn provenance(a: &Accepted) -> Provenance {
    Provenance {
        domain: a.statement.domain.clone(),
        serial: a.statement.serial,
        signer: a.signer.clone(),
        depth: a.depth,
        mode: a.statement.mode,
        file: a.file.clone(),
    }
}

/// Everything that asked for one prefix, by what it asked for.
#[derive(Default)]
struct Requests {
    allow: Vec<Provenance>,
    deny: Vec<Provenance>,
    counted: Vec<Provenance>,
}

/// The accepted statements' requests, by prefix.
fn requests(accepted: &[Accepted], testing: TestingPolicy) -> BTreeMap<Ipv6Net, Requests> {
    let mut nodes: BTreeMap<Ipv6Net, Requests> = BTreeMap::new();
    for a in accepted {
        let prov = provenance(a);
        for p in &a.statement.prefixes {
            let node = nodes.entry(p.trunc()).or_default();
            match (a.role, a.statement.mode, testing) {
                (Verdict::Deny, _, _) => node.deny.push(prov.clone()),
                (Verdict::Allow, Mode::Testing, TestingPolicy::Count) => {
                    node.counted.push(prov.clone())
                }
                (Verdict::Allow, _, _) => node.allow.push(prov.clone()),
            }
        }
    }
    nodes
}

/// The plan entries (a deny overrides allows on the same prefix) and the
/// counted testing entries, in prefix order, before folding.
fn entries(nodes: BTreeMap<Ipv6Net, Requests>) -> (Vec<PlanEntry>, Vec<PlanEntry>) {
    let mut entries = Vec::with_capacity(nodes.len());
    let mut counted = Vec::new();
    for (prefix, mut n) in nodes {
        n.allow.sort();
        n.deny.sort();
        n.counted.sort();
        if !n.counted.is_empty() {
            counted.push(PlanEntry {
                prefix,
                verdict: Verdict::Allow,
                provenance: n.counted,
                overridden: vec![],
                folded_into: None,
            });
        }
        let entry = if !n.deny.is_empty() {
            PlanEntry {
                prefix,
                verdict: Verdict::Deny,
                provenance: n.deny,
                overridden: n.allow,
                folded_into: None,
            }
        } else if !n.allow.is_empty() {
            PlanEntry {
                prefix,
                verdict: Verdict::Allow,
                provenance: n.allow,
                overridden: vec![],
                folded_into: None,
            }
        } else {
            continue;
        };
        entries.push(entry);
    }
    (entries, counted)
}

impl Plan {
    /// Builds the plan. Same inputs, same plan: everything is sorted.
    pub fn build(
        at: &str,
        accepted: &[Accepted],
        rejected: Vec<Rejection>,
        testing: TestingPolicy,
    ) -> Plan {
        let (mut entries, counted) = entries(requests(accepted, testing));
        fold(&mut entries);
        let mut rejected = rejected;
        rejected.sort_by(|a, b| (&a.file, a.rule).cmp(&(&b.file, b.rule)));
        Plan {
            at: at.to_string(),
            entries,
            counted,
            rejected,
            accepted_statements: accepted.len(),
        }
    }

    /// The set the kernel loads: unfolded entries with short labels.
    pub fn to_prefix_set(&self) -> Result<PrefixSet, PlanError> {
        let mut set = PrefixSet::new();
        for e in self.entries.iter().filter(|e| e.folded_into.is_none()) {
            // Prefixes are unique in `entries`, so insert cannot conflict.
            let _ = set.insert(PrefixEntry {
                verdict: e.verdict,
                prefix: e.prefix,
                label: kernel_label(e),
            });
        }
        let max = gate_common::TRUST_MAX_ENTRIES as usize;
        if set.len() > max {
            return Err(PlanError::TooMany {
                count: set.len(),
                max,
            });
        }
        Ok(set)
    }

    /// What loading this plan changes in `loaded` (the set in the gate).
    pub fn diff(&self, loaded: &PrefixSet) -> Result<PlanDiff, PlanError> {
        let new = self.to_prefix_set()?;
        Ok(PlanDiff::between(loaded, &new))
    }
}

/// Folds, in place, entries whose nearest covering entry has the same
/// verdict: removing them changes no longest-prefix-match answer.
/// Entries must be sorted by prefix (address, then length): a covering
/// prefix then always precedes what it covers.
fn fold(entries: &mut [PlanEntry]) {
    let mut stack: Vec<(Ipv6Net, Verdict, Ipv6Net)> = Vec::new(); // (prefix, verdict, kernel entry it folds to)
    for e in entries.iter_mut() {
        while stack.last().is_some_and(|(p, _, _)| !p.contains(&e.prefix)) {
            stack.pop();
        }
        let folded = match stack.last() {
            Some((_, v, kernel)) if *v == e.verdict => Some(*kernel),
            _ => None,
        };
        e.folded_into = folded;
        stack.push((e.prefix, e.verdict, folded.unwrap_or(e.prefix)));
    }
}

/// `example.ch s7 d1 ABCD1234EF567890 [testing] [+2]` (deny: `refused ...`),
/// cut to what the kernel label holds.
fn kernel_label(e: &PlanEntry) -> String {
    let Some(p) = e.provenance.first() else {
        return String::new();
    };
    let fpr = &p.signer[..p.signer.len().min(16)];
    let mut l = match e.verdict {
        Verdict::Deny => format!("refused s{} {fpr}", p.serial),
        Verdict::Allow => format!("s{} d{} {fpr}", p.serial, p.depth.unwrap_or(0)),
    };
    if p.mode == Mode::Testing {
        l.push_str(" testing");
    }
    if e.provenance.len() > 1 {
        l.push_str(&format!(" +{}", e.provenance.len() - 1));
    }
    let room = MAX_LABEL.saturating_sub(l.len() + 1);
    let domain = if p.domain.len() > room {
        &p.domain[..room]
    } else {
        &p.domain[..]
    };
    format!("{domain} {l}")
}

/// Changes between two kernel sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanDiff {
    pub added: Vec<PrefixEntry>,
    pub removed: Vec<PrefixEntry>,
    /// Same prefix, other verdict or label: (old, new).
    pub changed: Vec<(PrefixEntry, PrefixEntry)>,
}

impl PlanDiff {
    pub fn between(old: &PrefixSet, new: &PrefixSet) -> PlanDiff {
        let mut d = PlanDiff::default();
        for n in new.iter() {
            match old.get(&n.prefix) {
                None => d.added.push(n.clone()),
                Some(o) if o != n => d.changed.push((o.clone(), n.clone())),
                Some(_) => {}
            }
        }
        d.removed = old
            .iter()
            .filter(|o| new.get(&o.prefix).is_none())
            .cloned()
            .collect();
        d
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str, verdict: Verdict) -> PlanEntry {
        PlanEntry {
            prefix: p.parse().unwrap(),
            verdict,
            provenance: vec![],
            overridden: vec![],
            folded_into: None,
        }
    }

    /// Folding must not change any longest-prefix-match answer: compare the
    /// full set and the folded one on random nested sets and addresses.
    #[test]
    fn folding_preserves_every_lookup() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _round in 0..50 {
            let mut map = BTreeMap::new();
            for _ in 0..40 {
                // Few distinct bits so prefixes nest often.
                let addr =
                    0x2a00u128 << 112 | u128::from(rnd() % 16) << 100 | u128::from(rnd() % 4) << 90;
                let len = [32u8, 36, 40, 48, 56, 64][(rnd() % 6) as usize];
                let p = Ipv6Net::new(addr.into(), len).unwrap().trunc();
                let v = if rnd() % 3 == 0 {
                    Verdict::Deny
                } else {
                    Verdict::Allow
                };
                map.insert(p, v);
            }
            let mut entries: Vec<PlanEntry> =
                map.iter().map(|(p, v)| entry(&p.to_string(), *v)).collect();
            fold(&mut entries);
            let full: BTreeMap<Ipv6Net, Verdict> = map.clone();
            let kernel: BTreeMap<Ipv6Net, Verdict> = entries
                .iter()
                .filter(|e| e.folded_into.is_none())
                .map(|e| (e.prefix, e.verdict))
                .collect();
            let lpm = |m: &BTreeMap<Ipv6Net, Verdict>, a: std::net::Ipv6Addr| {
                (0..=128u8)
                    .rev()
                    .find_map(|l| m.get(&Ipv6Net::new(a, l).unwrap().trunc()).copied())
            };
            for e in &entries {
                if let Some(into) = e.folded_into {
                    assert!(into.contains(&e.prefix) && kernel.contains_key(&into));
                }
            }
            for _ in 0..100 {
                let a: std::net::Ipv6Addr = (0x2a00u128 << 112
                    | u128::from(rnd() % 16) << 100
                    | u128::from(rnd() % 4) << 90
                    | u128::from(rnd()) << 20)
                    .into();
                assert_eq!(lpm(&full, a), lpm(&kernel, a), "{a}");
            }
        }
    }

    #[test]
    fn folds_only_under_the_same_verdict() {
        let mut e = vec![
            entry("2001:db8::/32", Verdict::Allow),
            entry("2001:db8:1::/48", Verdict::Allow),
            entry("2001:db8:2::/48", Verdict::Deny),
            entry("2001:db8:2:1::/64", Verdict::Allow),
            entry("2001:db8:2:1:1::/80", Verdict::Allow),
            entry("2001:db8:2:2::/64", Verdict::Deny),
        ];
        fold(&mut e);
        let f: Vec<Option<String>> = e
            .iter()
            .map(|e| e.folded_into.map(|p| p.to_string()))
            .collect();
        assert_eq!(
            f,
            [
                None,
                Some("2001:db8::/32".into()),
                None,
                None,
                Some("2001:db8:2:1::/64".into()),
                Some("2001:db8:2::/48".into())
            ]
        );
    }
}
