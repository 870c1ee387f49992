//! The gate's set for many webs: an address is allowed when ANY web's
//! longest match allows it, so a deny stays only where every web denies.
//!
//! Each web's answer at a prefix is what its own plan would say: its
//! statements at that prefix (a deny wins), else its answer at the nearest
//! covering prefix. Prefixes are visited in order, covering ones first, with
//! one bit per web carried down.

use std::collections::BTreeMap;

use ipnet::Ipv6Net;

use super::{Webs, SYSTEM_WEB};
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict, MAX_LABEL};
use crate::plan::PlanError;

/// One web's request at one prefix.
#[derive(Clone, Copy)]
struct Ask {
    web: u32,
    candidate: u32,
    deny: bool,
    depth: u8,
}

type Bits = Vec<u64>;

fn set_bit(b: &mut Bits, i: usize, on: bool) {
    if on {
        b[i / 64] |= 1 << (i % 64);
    } else {
        b[i / 64] &= !(1 << (i % 64));
    }
}

fn first_bit(b: &Bits) -> Option<usize> {
    b.iter()
        .enumerate()
        .find(|(_, w)| **w != 0)
        .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
}

impl Webs {
    /// The union of every web's set, folded, labelled with the statement
    /// and (when the system web does not allow it) the web that admits it.
    pub fn union_set(&self) -> Result<PrefixSet, PlanError> {
        let mut nodes: BTreeMap<Ipv6Net, Vec<Ask>> = BTreeMap::new();
        for (w, roles) in self.roles.iter().enumerate() {
            for r in roles.iter().filter(|r| self.counts(r)) {
                let ask = Ask {
                    web: w as u32,
                    candidate: r.candidate as u32,
                    deny: r.verdict == Verdict::Deny,
                    depth: r.depth.unwrap_or(0).min(255) as u8,
                };
                for p in &self.candidates[r.candidate].statement.prefixes {
                    nodes.entry(p.trunc()).or_default().push(ask);
                }
            }
        }
        let words = self.names.len().div_ceil(64).max(1);
        // (prefix, allowing webs, verdict kept in the output or None)
        let mut stack: Vec<(Ipv6Net, Bits, Option<Verdict>)> = Vec::new();
        let mut out = PrefixSet::new();
        for (prefix, asks) in nodes {
            while stack.last().is_some_and(|(p, _, _)| !p.contains(&prefix)) {
                stack.pop();
            }
            let mut bits = stack
                .last()
                .map_or_else(|| vec![0; words], |(_, b, _)| b.clone());
            for a in asks.iter().filter(|a| !a.deny) {
                set_bit(&mut bits, a.web as usize, true);
            }
            for a in asks.iter().filter(|a| a.deny) {
                set_bit(&mut bits, a.web as usize, false);
            }
            let verdict = match first_bit(&bits) {
                Some(_) => Verdict::Allow,
                None => Verdict::Deny,
            };
            // The kernel's answer above this prefix; an equal one is folded
            // (a deny with nothing above is no entry at all: no match drops).
            let above = stack.iter().rev().find_map(|(_, _, v)| *v);
            let keep = match above {
                Some(v) => v != verdict,
                None => verdict == Verdict::Allow,
            };
            if keep {
                let label = self.label(&asks, &bits, verdict);
                let _ = out.insert(PrefixEntry {
                    prefix,
                    verdict,
                    label,
                });
            }
            stack.push((prefix, bits, keep.then_some(verdict)));
        }
        let max = gate_common::TRUST_MAX_ENTRIES as usize;
        if out.len() > max {
            return Err(PlanError::TooMany {
                count: out.len(),
                max,
            });
        }
        Ok(out)
    }

    /// `domain s7 d1 ABCD1234EF567890[ web=alice@example.org]`, or
    /// `domain refused s7 ABCD...` for a deny, cut to the kernel's length.
    fn label(&self, asks: &[Ask], bits: &Bits, verdict: Verdict) -> String {
        let allowing = first_bit(bits);
        let ask = match allowing {
            Some(w) => asks
                .iter()
                .filter(|a| !a.deny && a.web as usize == w)
                .min_by_key(|a| a.depth),
            None => asks.iter().find(|a| a.deny),
        };
        let mut l = match ask {
            Some(a) => {
                let c = &self.candidates[a.candidate as usize];
                let fpr = c.signer.to_hex();
                let fpr = &fpr[..fpr.len().min(16)];
                let s = &c.statement;
                match verdict {
                    Verdict::Allow => format!("{} s{} d{} {fpr}", s.domain, s.serial, a.depth),
                    Verdict::Deny => format!("{} refused s{} {fpr}", s.domain, s.serial),
                }
            }
            None => match verdict {
                Verdict::Allow => "inherited".to_string(),
                Verdict::Deny => "denied in every web".to_string(),
            },
        };
        if let Some(w) = allowing.filter(|&w| self.names[w] != SYSTEM_WEB) {
            l.push_str(&format!(" web={}", self.names[w]));
        }
        if l.len() > MAX_LABEL {
            let mut cut = MAX_LABEL;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
        }
        l
    }
}
