//! A change to the trusted set (prefix to new entry or removal), and how
//! much two sets differ, in one merge pass over both.

use std::collections::BTreeMap;

use ipnet::Ipv6Net;

use crate::model::prefixes::{PrefixEntry, PrefixSet};

/// A change to the trusted set: for each prefix, its new entry, or `None`
/// to remove it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub(super) by_prefix: BTreeMap<Ipv6Net, Option<PrefixEntry>>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes::default()
    }

    /// What turns `old` into `new`: one pass over both (they are sorted).
    pub fn between(old: &PrefixSet, new: &PrefixSet) -> Changes {
        Self::between_at_most(old, new, usize::MAX).expect("no limit")
    }

    /// As [`Changes::between`], but `None` as soon as more than `limit`
    /// entries differ (nothing more is copied then).
    pub fn between_at_most(old: &PrefixSet, new: &PrefixSet, limit: usize) -> Option<Changes> {
        // References first, in prefix order: no entry is copied (and no map
        // built) unless the change stays within the limit, so giving up on
        // a new set costs a walk, not a million copies.
        let mut diff: Vec<(Ipv6Net, Option<&PrefixEntry>)> = Vec::new();
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        loop {
            if diff.len() > limit {
                return None;
            }
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(o), None) => {
                    diff.push((o.prefix, None));
                    a.next();
                }
                (None, Some(n)) => {
                    diff.push((n.prefix, Some(*n)));
                    b.next();
                }
                (Some(o), Some(n)) => match o.prefix.cmp(&n.prefix) {
                    std::cmp::Ordering::Less => {
                        diff.push((o.prefix, None));
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        diff.push((n.prefix, Some(*n)));
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if o != n {
                            diff.push((n.prefix, Some(*n)));
                        }
                        a.next();
                        b.next();
                    }
                },
            }
        }
        // Sorted already: the map is built in bulk.
        Some(Changes {
            by_prefix: diff.into_iter().map(|(p, e)| (p, e.cloned())).collect(),
        })
    }

    /// Removes `prefix` (nothing when the set does not hold it).
    pub fn remove(&mut self, prefix: Ipv6Net) -> &mut Self {
        self.by_prefix.insert(prefix.trunc(), None);
        self
    }

    /// Adds `entry`, or replaces the entry for its prefix.
    pub fn upsert(&mut self, entry: PrefixEntry) -> &mut Self {
        let prefix = entry.prefix.trunc();
        self.by_prefix
            .insert(prefix, Some(PrefixEntry { prefix, ..entry }));
        self
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

/// How many entries differ between two sets: (removed, added or changed).
/// One merge pass, nothing copied.
pub(super) fn count_changes(old: &PrefixSet, new: &PrefixSet) -> (usize, usize) {
    let (mut removed, mut written) = (0, 0);
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => {
                removed += 1;
                a.next();
            }
            (None, Some(_)) => {
                written += 1;
                b.next();
            }
            (Some(o), Some(n)) => match o.prefix.cmp(&n.prefix) {
                std::cmp::Ordering::Less => {
                    removed += 1;
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    written += 1;
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if o != n {
                        written += 1;
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    (removed, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> PrefixSet {
        PrefixSet::parse(text, "t").unwrap()
    }

    #[test]
    fn changes_between_two_sets_are_what_turns_one_into_the_other() {
        let old = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\ndeny 2001:db8:3::/48 c\n");
        let new =
            set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 B\nallow 2001:db8:4::/48 d\n");
        let c = Changes::between(&old, &new);
        let want: Vec<(String, Option<String>)> = c
            .by_prefix
            .iter()
            .map(|(p, e)| (p.to_string(), e.as_ref().map(|e| e.label.clone())))
            .collect();
        assert_eq!(
            want,
            [
                ("2001:db8:2::/48".into(), Some("B".into())),
                ("2001:db8:3::/48".into(), None),
                ("2001:db8:4::/48".into(), Some("d".into())),
            ]
        );
        assert!(Changes::between(&new, &new).is_empty());
        assert_eq!(count_changes(&old, &new), (1, 2));
        assert_eq!(Changes::between_at_most(&old, &new, 3), Some(c.clone()));
        assert_eq!(Changes::between_at_most(&old, &new, 2), None);
        assert_eq!(Changes::between(&PrefixSet::new(), &new).len(), 3);
    }
}
