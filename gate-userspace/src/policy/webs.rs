//! Per-recipient trust for the verdicts: which web decides for a recipient,
//! and the longest match in that web over every web's statements.
//!
//! One index holds the prefixes of every statement any web accepted; a cell
//! per (statement, web) says whether and how it counts in that web, so a
//! thousand webs share one copy of the prefixes.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::trust::{Claim, Match};
use crate::model::config::lookup_names;
use crate::model::prefixes::{PrefixSet, Verdict};
use crate::statement::Mode;
use crate::webs::Webs;

const NONE: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    prefix: Ipv6Net,
    /// Range in `WebIndex::stmt_refs` (statement indices).
    first: u32,
    count: u32,
    /// The operator's static entry at this prefix, for every web.
    fixed: Option<Verdict>,
    /// Strictly inside a static deny: a web's allow here does not count.
    under_static_deny: bool,
}

/// Every web's statements, indexed for per-web longest match.
#[derive(Debug)]
pub struct WebIndex {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    claims: Vec<Claim>,
    /// `stmt * webs + web` → claim index, or `NONE` when the statement does
    /// not count in that web.
    cells: Vec<u32>,
    webs: usize,
    stmt_refs: Vec<u32>,
    by_len: Vec<(u8, HashMap<u128, Entry>)>,
}

impl WebIndex {
    /// The index of `webs` with the operator's static overrides (the same
    /// for every web: a static deny removes allows inside it, a static allow
    /// fills gaps only).
    pub fn build(webs: &Webs, overrides: Option<&PrefixSet>) -> WebIndex {
        let n = webs.names.len();
        let mut claims = Vec::new();
        let mut claim_of: HashMap<(usize, Option<usize>), u32> = HashMap::new();
        let mut cells = vec![NONE; webs.candidates.len() * n];
        for (w, roles) in webs.roles.iter().enumerate() {
            for r in roles.iter().filter(|r| webs.counts(r)) {
                let c = &webs.candidates[r.candidate];
                let depth = if r.verdict == Verdict::Deny {
                    None
                } else {
                    r.depth
                };
                let id = *claim_of.entry((r.candidate, depth)).or_insert_with(|| {
                    claims.push(Claim {
                        domain: c.statement.domain.clone(),
                        signer: c.signer.to_hex().to_ascii_uppercase(),
                        depth,
                        serial: c.statement.serial,
                        not_after: c.statement.not_after,
                        tls_keys: c
                            .statement
                            .tls_key_sha256
                            .iter()
                            .map(|k| k.to_ascii_uppercase())
                            .collect(),
                        testing: c.statement.mode == Mode::Testing,
                    });
                    (claims.len() - 1) as u32
                });
                cells[r.candidate * n + w] = id;
            }
        }
        let mut items: HashMap<Ipv6Net, (Vec<u32>, Option<Verdict>)> = HashMap::new();
        for (i, c) in webs.candidates.iter().enumerate() {
            for p in &c.statement.prefixes {
                items.entry(p.trunc()).or_default().0.push(i as u32);
            }
        }
        let mut denies = Vec::new();
        for e in overrides.into_iter().flat_map(|o| o.iter()) {
            let it = items.entry(e.prefix.trunc()).or_default();
            match e.verdict {
                Verdict::Deny => {
                    *it = (Vec::new(), Some(Verdict::Deny));
                    denies.push(e.prefix.trunc());
                }
                Verdict::Allow => it.1 = it.1.or(Some(Verdict::Allow)),
            }
        }
        let mut stmt_refs = Vec::new();
        let mut maps: HashMap<u8, HashMap<u128, Entry>> = HashMap::new();
        for (prefix, (mut stmts, fixed)) in items {
            stmts.sort_unstable();
            stmts.dedup();
            let entry = Entry {
                prefix,
                first: stmt_refs.len() as u32,
                count: stmts.len() as u32,
                fixed,
                under_static_deny: denies.iter().any(|d| d.contains(&prefix) && *d != prefix),
            };
            stmt_refs.extend(stmts);
            maps.entry(prefix.prefix_len())
                .or_default()
                .insert(u128::from(prefix.network()), entry);
        }
        let mut by_len: Vec<_> = maps.into_iter().collect();
        by_len.sort_by_key(|b| std::cmp::Reverse(b.0));
        WebIndex {
            by_name: webs
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_ascii_lowercase(), i))
                .collect(),
            names: webs.names.clone(),
            claims,
            cells,
            webs: n,
            stmt_refs,
            by_len,
        }
    }

    /// The web that decides for `recipient` (an address), by the
    /// configuration's rule ([`lookup_names`]); `None`: the system default.
    pub fn web_for(&self, recipient: &str) -> Option<usize> {
        lookup_names(recipient)
            .iter()
            .find_map(|n| self.by_name.get(n).copied().filter(|&w| w > 0))
    }

    pub fn name(&self, web: usize) -> &str {
        &self.names[web]
    }

    /// Number of webs, the system's included.
    pub fn len(&self) -> usize {
        self.webs
    }

    pub fn is_empty(&self) -> bool {
        self.webs == 0
    }

    /// The longest match for `addr` in web `web`: at each prefix, the
    /// statements that count in the web (a deny wins), else the static entry.
    pub fn lookup(&self, addr: Ipv6Addr, web: usize) -> Option<Match<'_>> {
        let bits = u128::from(addr);
        for (len, map) in &self.by_len {
            let mask = if *len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(*len))
            };
            let Some(e) = map.get(&(bits & mask)) else {
                continue;
            };
            let refs = &self.stmt_refs[e.first as usize..(e.first + e.count) as usize];
            let mut active: Vec<&Claim> = refs
                .iter()
                .map(|&s| self.cells[s as usize * self.webs + web])
                .filter(|&c| c != NONE)
                .map(|c| &self.claims[c as usize])
                .collect();
            if !active.is_empty() {
                let deny = active.iter().any(|c| c.depth.is_none());
                if deny {
                    active.retain(|c| c.depth.is_none());
                } else if e.under_static_deny {
                    continue;
                }
                active.sort_by(|a, b| (a.depth, &a.domain).cmp(&(b.depth, &b.domain)));
                return Some(Match {
                    prefix: e.prefix,
                    verdict: if deny { Verdict::Deny } else { Verdict::Allow },
                    claims: active,
                });
            }
            if let Some(v) = e.fixed {
                return Some(Match {
                    prefix: e.prefix,
                    verdict: v,
                    claims: Vec::new(),
                });
            }
        }
        None
    }
}
