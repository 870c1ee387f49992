//! What an update did and how long each step took: the `LoadReport` the
//! CLI prints, the daemon records and the benchmarks read.

use std::time::Duration;

use crate::model::prefixes::PrefixSet;

/// What an update did and how long each step took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    pub generation: u64,
    /// The trie the datapath reads after the update.
    pub trie: usize,
    pub entries: usize,
    pub labels: usize,
    /// `diff` (entry by entry), `full` (emptied and filled with batch
    /// operations), `full-ahead` (the same, but the new set's compiled copy
    /// was enforced first and its trie written after the flip: a rewrite
    /// that fits the compiled lookup and has no prefix shorter than /32) or
    /// `unchanged` (nothing written, see apply).
    pub mode: &'static str,
    /// Entries of the old set that the new one no longer has.
    pub removed: usize,
    /// Entries added or changed.
    pub written: usize,
    /// Entries deleted from the first trie written (the inactive one; its
    /// record is zeroed whole, not counted).
    pub cleared: usize,
    /// Deleting from the first trie written, writing it, checking it:
    /// before the flip, or after it for `full-ahead` (then inside
    /// `sync_time`).
    #[serde(serialize_with = "secs")]
    pub clear_time: Duration,
    #[serde(serialize_with = "secs")]
    pub fill_time: Duration,
    #[serde(serialize_with = "secs")]
    pub check_time: Duration,
    /// From the start of the update to the flip: when the datapath
    /// enforces the new set.
    #[serde(serialize_with = "secs")]
    pub enforce_time: Duration,
    /// After the flip: bringing the other half to the same set (and for
    /// `full-ahead` first writing the new set's own trie).
    #[serde(serialize_with = "secs")]
    pub sync_time: Duration,
    /// What the datapath looks sources up in: `compiled` (the compiled
    /// lookup) or `trie` (the LPM trie: the set did not fit the compiled
    /// lookup's capacity).
    pub lookup: &'static str,
    /// How the compiled copies were written: `groups` (only the /32 groups
    /// the change touched), `whole` (compiled afresh) or `none`.
    pub recompiled: &'static str,
    /// Compiling the set (or the groups a diff touches), part of
    /// `enforce_time`; writing the copy into the arrays is not in it.
    #[serde(serialize_with = "secs")]
    pub compile_time: Duration,
    /// After the flip: the wait until nothing reads the old copy, before
    /// it is written (part of `sync_time`).
    #[serde(serialize_with = "secs")]
    pub grace_time: Duration,
    /// An interrupted update was repaired first (or the pair after this
    /// one's own failure past the flip).
    pub repaired: bool,
}

impl LoadReport {
    /// The report of a load that found `set` enforced already.
    pub fn unchanged(trie: usize, generation: u64, set: &PrefixSet) -> LoadReport {
        let labels: std::collections::BTreeSet<&str> =
            set.iter().map(|e| e.label.as_str()).collect();
        LoadReport {
            generation,
            trie,
            entries: set.len(),
            labels: labels.len(),
            mode: "unchanged",
            removed: 0,
            written: 0,
            cleared: 0,
            clear_time: Duration::ZERO,
            fill_time: Duration::ZERO,
            check_time: Duration::ZERO,
            enforce_time: Duration::ZERO,
            sync_time: Duration::ZERO,
            lookup: "unchanged",
            recompiled: "none",
            compile_time: Duration::ZERO,
            grace_time: Duration::ZERO,
            repaired: false,
        }
    }

    /// One line for people: what was written and how long it took.
    pub fn summary(&self) -> String {
        format!(
            "{} update: {} removed, {} added or changed; enforced after {:.3}s ({}cleared {} in {:.3}s, wrote in {:.3}s, checked in {:.3}s, compiled the {} lookup in {:.3}s), other half in sync after {:.3}s more{}",
            self.mode,
            self.removed,
            self.written,
            self.enforce_time.as_secs_f64(),
            if self.mode == "full-ahead" {
                "its record and trie after the flip: "
            } else {
                ""
            },
            self.cleared,
            self.clear_time.as_secs_f64(),
            self.fill_time.as_secs_f64(),
            self.check_time.as_secs_f64(),
            self.lookup,
            self.compile_time.as_secs_f64(),
            self.sync_time.as_secs_f64(),
            if self.repaired {
                "; an interrupted update was repaired"
            } else {
                ""
            }
        )
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
