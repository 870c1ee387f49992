//! What a load changes, found in one pass over the loaded set and the new one
//! (both sorted): the gate's [`Changes`], the plan diff and the guard's facts.

use std::cmp::Ordering;

use crate::gate::swap::Changes;
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict};
use crate::plan::PlanDiff;

/// The prefixes whose entries differ between two sets, as (old, new): no
/// old entry for an added prefix, no new one for a removed prefix. Only the
/// differing entries are copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pairs: Vec<(Option<PrefixEntry>, Option<PrefixEntry>)>,
}

impl Delta {
    /// One merge pass over `old` and `new` (both iterate in prefix order).
    pub fn between(old: &PrefixSet, new: &PrefixSet) -> Delta {
        let mut pairs = Vec::new();
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(o), Some(n)) => o.prefix.cmp(&n.prefix),
            };
            match order {
                Ordering::Less => pairs.push((a.next().cloned(), None)),
                Ordering::Greater => pairs.push((None, b.next().cloned())),
                Ordering::Equal => {
                    let (o, n) = (a.next().expect("peeked"), b.next().expect("peeked"));
                    if o != n {
                        pairs.push((Some(o.clone()), Some(n.clone())));
                    }
                }
            }
        }
        Delta { pairs }
    }

    /// Prefixes that differ.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// (old, new) per differing prefix, in prefix order.
    pub fn pairs(&self) -> &[(Option<PrefixEntry>, Option<PrefixEntry>)] {
        &self.pairs
    }

    /// What the gate writes to turn the old set into the new one.
    pub fn changes(&self) -> Changes {
        let mut c = Changes::new();
        for (old, new) in &self.pairs {
            match (old, new) {
                (_, Some(n)) => c.upsert(n.clone()),
                (Some(o), None) => c.remove(o.prefix),
                (None, None) => continue,
            };
        }
        c
    }

    /// The same changes as [`PlanDiff::between`] the two sets.
    pub fn plan_diff(&self) -> PlanDiff {
        let mut d = PlanDiff::default();
        for (old, new) in &self.pairs {
            match (old, new) {
                (None, Some(n)) => d.added.push(n.clone()),
                (Some(o), None) => d.removed.push(o.clone()),
                (Some(o), Some(n)) => d.changed.push((o.clone(), n.clone())),
                (None, None) => {}
            }
        }
        d
    }

    /// Allow entries of the old set that the new one removes or turns to
    /// deny, and allow entries the new set gains (new or turned from deny).
    pub(crate) fn allow_moves(&self) -> (Vec<PrefixEntry>, usize) {
        let is_allow =
            |e: &Option<PrefixEntry>| e.as_ref().is_some_and(|e| e.verdict == Verdict::Allow);
        let mut lost = Vec::new();
        let mut gained = 0;
        for (old, new) in &self.pairs {
            match (is_allow(old), is_allow(new)) {
                (true, false) => lost.push(old.clone().expect("an allow")),
                (false, true) => gained += 1,
                _ => {}
            }
        }
        (lost, gained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &str) -> PrefixSet {
        PrefixSet::parse(lines, "t").unwrap()
    }

    #[test]
    fn one_pass_gives_the_plan_diff_and_the_changes() {
        let old = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\ndeny 2001:db8:2:1::/64 m\nallow 2001:db8:4::/48 d\n");
        let new = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b2\nallow 2001:db8:3::/48 c\nallow 2001:db8:4::/48 d\ndeny 2001:db8:4:1::/64 m\n");
        let d = Delta::between(&old, &new);
        // b relabelled, m removed, c and the second m added.
        assert_eq!(d.len(), 4);
        assert_eq!(d.plan_diff(), PlanDiff::between(&old, &new));
        assert_eq!(d.changes(), Changes::between(&old, &new));
        assert!(Delta::between(&new, &new).is_empty());
        let (lost, gained) = Delta::between(&old, &set("deny 2001:db8:1::/48 x\n")).allow_moves();
        assert_eq!((lost.len(), gained), (3, 0));
        let (lost, gained) = d.allow_moves();
        assert_eq!((lost.len(), gained), (0, 1));
        // Into and out of nothing.
        assert_eq!(Delta::between(&PrefixSet::new(), &new).len(), new.len());
        assert_eq!(Delta::between(&old, &PrefixSet::new()).len(), old.len());
    }
}
