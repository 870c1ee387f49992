//! Updates of the trusted set. Both tries hold the same set between
//! updates ("in sync"). An update writes the inactive trie, flips the
//! one-word selector the datapath reads, then writes the other trie the
//! same way, so it costs in proportion to the change: a diff is applied
//! entry by entry (every write's flags prove what the trie held), a large
//! change or a trie of unknown content is emptied and filled with batch
//! operations instead. A journal in the pinned metadata says which update
//! is under way; a writer killed at any step leaves the active trie a
//! complete set, and the next writer copies it to the other trie
//! ([`Gate::repair`]). Label ids are stable across updates (reference
//! counted here, the same ids in both tries), so an update writes only the
//! labels it adds and removes only those nothing uses any more.

mod batch;
mod changes;
mod check;
mod entries;
mod journal;
mod read;
mod records;
mod report;
mod update;

use std::{collections::HashMap, time::SystemTime};

use aya::maps::IterableMap;
use ipnet::Ipv6Net;

pub(crate) use self::journal::{intact_half, journal_text, step_settings};
use self::{
    changes::count_changes,
    entries::{check_label, digest_add, digest_sub, plan_labels, Labels},
};
pub use self::{
    changes::Changes,
    entries::set_digest,
    journal::{Mirror, AHEAD_STEPS, FAIL_AT_STEP_ENV, KILL_AT_STEP_ENV, SETTINGS_STEP, STEPS},
    read::Settled,
    report::LoadReport,
};
use super::{Gate, GateError, Result};
use crate::model::prefixes::{PrefixEntry, PrefixSet};

/// One update, planned before anything is written.
struct Plan {
    /// Prefixes to delete (each held by the old set).
    remove: Vec<Ipv6Net>,
    /// Entries for prefixes the old set does not hold.
    add: Vec<PrefixEntry>,
    /// Entries for prefixes the old set holds with another value.
    change: Vec<PrefixEntry>,
    /// Labels to write before the entries, and to delete after them.
    new_labels: Vec<(u32, String)>,
    dead_labels: Vec<u32>,
    labels: Labels,
    /// The new set's digest; for a rewrite of a given set, computed while
    /// the first trie is written (`None` until then).
    digest: Option<[u64; 4]>,
    entries: usize,
    /// Entries removed, and added or changed (also for a rewrite, whose
    /// lists above stay empty).
    removed: usize,
    written: usize,
    /// Written from scratch with batch operations.
    full: bool,
    /// Whether the new set is kept in the records (it compiles and fits
    /// them; the tries then hold only its prefixes shorter than /32), and
    /// whether the old one was. Set by `update` before any write.
    record: bool,
    was_record: bool,
}

/// The set a rewrite writes: given by the caller, or built here.
enum Target<'s> {
    Given(&'s PrefixSet),
    Built(PrefixSet),
}

impl Target<'_> {
    fn set(&self) -> &PrefixSet {
        match self {
            Target::Given(s) => s,
            Target::Built(s) => s,
        }
    }
}

/// A change of more than half the work of a rewrite (deleting the old
/// entries and writing the new ones) is written as a rewrite: a batch
/// operation costs about half a single-entry syscall per entry, and the
/// rewrite's check is by construction (an emptied trie, distinct keys
/// written) instead of one flagged write per entry.
fn rewrite_is_cheaper(changed: usize, old: usize, new: usize) -> bool {
    changed > 0 && changed * 2 > old + new
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gate {
    /// Capacity of the tries and of the label tables, as pinned.
    fn capacity(&self) -> (u32, u32) {
        let entries = self.trust[0]
            .map()
            .info()
            .map(|i| i.max_entries())
            .unwrap_or(gate_common::TRUST_MAX_ENTRIES);
        let labels = self.labels[0]
            .map()
            .info()
            .map(|i| i.max_entries())
            .unwrap_or(gate_common::LABELS_MAX_ENTRIES);
        (entries, labels)
    }

    /// Replaces the trusted set atomically: the datapath sees the old set
    /// or the new one, never a mix. Every limit is checked before the first
    /// write; on any error before the flip the datapath keeps the set it
    /// had. Costs in proportion to the change when this handle (or the
    /// metadata's digest) knows what the tries hold; otherwise it reads the
    /// active set once first.
    pub fn load_set(&mut self, set: &PrefixSet) -> Result<LoadReport> {
        let (max_entries, max_labels) = self.capacity();
        if set.len() > max_entries as usize {
            return Err(GateError::TooManyEntries {
                got: set.len(),
                max: max_entries,
            });
        }
        let _guard = self.hold()?;
        let repaired = self.ensure_mirror()?;
        let mirror = self.mirror.as_ref().expect("ensured");
        // One pass that stops copying once the change is worth a rewrite.
        let limit = (mirror.set.len() + set.len()) / 2;
        let small = Changes::between_at_most(&mirror.set, set, limit);
        // A diff checks the labels it writes (the others are in the kernel
        // already); a rewrite checks them all. Both before any write.
        let mut r = if let Some(changes) = small {
            let mut plan = self.plan(&changes)?;
            let target = plan.full.then_some(Target::Given(set));
            if plan.full {
                plan_labels(set, max_entries, max_labels)?;
                plan.labels = Labels::of_set(set);
            }
            self.update(plan, target)?
        } else {
            plan_labels(set, max_entries, max_labels)?;
            let mirror = self.mirror.as_ref().expect("ensured");
            let (removed, written) = count_changes(&mirror.set, set);
            // Nothing copied for a change this large: the set is written
            // as it is given.
            let plan = Plan {
                remove: Vec::new(),
                add: Vec::new(),
                change: Vec::new(),
                new_labels: Vec::new(),
                dead_labels: Vec::new(),
                labels: Labels::of_set(set),
                digest: None,
                entries: set.len(),
                removed,
                written,
                full: true,
                record: false,
                was_record: false,
            };
            self.update(plan, Some(Target::Given(set)))?
        };
        r.repaired |= repaired;
        Ok(r)
    }

    /// Applies `changes` to the set the gate enforces, atomically, as
    /// [`Gate::load_set`] does with a whole set; the cost is in proportion
    /// to the change (after one read of the active set when this handle
    /// has not read or written it yet).
    pub fn apply_changes(&mut self, changes: &Changes) -> Result<LoadReport> {
        for e in changes.by_prefix.values().flatten() {
            check_label(e)?;
        }
        let _guard = self.hold()?;
        let repaired = self.ensure_mirror()?;
        let mut plan = self.plan(changes)?;
        let target = if plan.full {
            let set = self.applied(changes);
            plan.labels = Labels::of_set(&set);
            Some(Target::Built(set))
        } else {
            None
        };
        let mut r = self.update(plan, target)?;
        r.repaired |= repaired;
        Ok(r)
    }

    /// Plans `changes` against the mirror: what to delete, add and change,
    /// which labels to write and drop, the new digest; and whether to
    /// rewrite instead.
    fn plan(&self, changes: &Changes) -> Result<Plan> {
        let (max_entries, max_labels) = self.capacity();
        let m = self.mirror.as_ref().expect("ensured");
        let mut p = Plan {
            remove: Vec::new(),
            add: Vec::new(),
            change: Vec::new(),
            new_labels: Vec::new(),
            dead_labels: Vec::new(),
            labels: m.labels.clone(),
            digest: Some(m.digest),
            entries: m.set.len(),
            removed: 0,
            written: 0,
            full: false,
            record: false,
            was_record: false,
        };
        let mut digest = m.digest;
        // Reference deltas per label text, applied after the walk.
        let mut delta: HashMap<&str, i64> = HashMap::new();
        for (prefix, new) in &changes.by_prefix {
            let old = m.set.get(prefix);
            match (old, new) {
                (None, None) => {}
                (Some(o), None) => {
                    digest_sub(&mut digest, o);
                    *delta.entry(o.label.as_str()).or_default() -= 1;
                    p.remove.push(*prefix);
                    p.entries -= 1;
                }
                (Some(o), Some(n)) if o == n => {}
                (o, Some(n)) => {
                    check_label(n)?;
                    if let Some(o) = o {
                        digest_sub(&mut digest, o);
                        *delta.entry(o.label.as_str()).or_default() -= 1;
                        p.change.push(n.clone());
                    } else {
                        p.add.push(n.clone());
                        p.entries += 1;
                    }
                    digest_add(&mut digest, n);
                    *delta.entry(n.label.as_str()).or_default() += 1;
                }
            }
        }
        if p.entries > max_entries as usize {
            return Err(GateError::TooManyEntries {
                got: p.entries,
                max: max_entries,
            });
        }
        let mut added_labels = Vec::new();
        let mut dead = Vec::new();
        for (text, d) in delta {
            match p.labels.by_text.get_mut(text) {
                Some(v) => {
                    v.1 = (v.1 as i64 + d).max(0) as u64;
                    if v.1 == 0 {
                        dead.push(text.to_string());
                    }
                }
                None if d > 0 => added_labels.push((text.to_string(), d as u64)),
                None => {}
            }
        }
        let peak = p.labels.len() + added_labels.len();
        let after = peak - dead.len();
        if after > max_labels as usize {
            return Err(GateError::LabelsFull {
                got: after,
                max: max_labels,
            });
        }
        // New ids first, from ids free before this update: an id dropped
        // now is handed out only by a later update.
        added_labels.sort();
        for (text, refs) in added_labels {
            let id = p.labels.free.pop().unwrap_or_else(|| {
                p.labels.next += 1;
                p.labels.next - 1
            });
            p.labels.by_text.insert(text.clone(), (id, refs));
            p.new_labels.push((id, text));
        }
        for text in dead {
            if let Some((id, _)) = p.labels.by_text.remove(&text) {
                p.dead_labels.push(id);
                p.labels.free.push(id);
            }
        }
        p.digest = Some(digest);
        p.removed = p.remove.len();
        p.written = p.add.len() + p.change.len();
        // A rewrite (its caller gives the set and fresh label ids) when the
        // label table would overflow in the middle of a diff, or when the
        // change is that large.
        p.full = peak > max_labels as usize
            || rewrite_is_cheaper(p.removed + p.written, m.set.len(), p.entries);
        Ok(p)
    }

    /// The mirror's set with `changes` applied.
    fn applied(&self, changes: &Changes) -> PrefixSet {
        let mut set = self.mirror.as_ref().expect("ensured").set.clone();
        for (prefix, new) in &changes.by_prefix {
            match new {
                Some(e) => {
                    set.replace(e.clone());
                }
                None => {
                    set.remove(prefix);
                }
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_more_than_half_a_rewrite_is_rewritten() {
        assert!(!rewrite_is_cheaper(0, 0, 0));
        assert!(!rewrite_is_cheaper(1, 1_000_000, 1_000_000));
        assert!(!rewrite_is_cheaper(1_000_000, 1_000_000, 1_000_000));
        assert!(rewrite_is_cheaper(1_000_001, 1_000_000, 1_000_000));
        // A first load is all writes: rewritten.
        assert!(rewrite_is_cheaper(10, 0, 10));
    }
}
