//! The journal of an update, its kill points for tests, and the repair of
//! the pair of halves after a writer died or failed midway.

use std::{collections::BTreeMap, sync::OnceLock};

use gate_common::{maps, Journal, Meta};

use super::entries::{set_digest, text_of, Labels};
use crate::{
    gate::{compiled::Live, read_err as rd, update_err as upd, Gate, GateError, Result},
    model::prefixes::PrefixSet,
};

/// The environment variable that makes a writer SIGKILL itself right after
/// step N of an update (1 to [`STEPS`]): for tests only, which run the
/// writer in a child process and check that the next writer repairs what
/// it left.
pub const KILL_AT_STEP_ENV: &str = "WOTGATE_TEST_KILL_AT_STEP";

/// The environment variable that makes a writer fail (return an error, as
/// a failed write would) right after step N, where a step can fail: 12 to
/// 16 (see [`AHEAD_STEPS`]), and 2 to 4 and 7 to 9 of a full rewrite. For
/// tests only, like [`KILL_AT_STEP_ENV`].
pub const FAIL_AT_STEP_ENV: &str = "WOTGATE_TEST_FAIL_AT_STEP";

/// Steps of an update written behind its trie (a diff, or a rewrite that
/// cannot be enforced ahead), in order: 1 journal written; 2 the inactive
/// trie's new labels written (a full update: the trie emptied); 3 half its
/// entries written; 4 all of them, and unused labels removed; 5 its
/// generation and the journal's next phase recorded; 6 the selector
/// flipped; 7 to 9 the same as 2 to 4 on the other trie; 10 the journal
/// closed.
pub const STEPS: u32 = 10;

/// Steps of an update enforced ahead of its trie (`full-ahead`), in order:
/// 1 journal written (state `AHEAD`); 12 the inactive half's compiled copy
/// written; 13 the selector flipped to it; 14 its trie and labels emptied;
/// 15 half its entries written; 16 all of them; then 5 and 7 to 10 as in
/// [`STEPS`] (SYNC recorded, the other half, the journal closed).
pub const AHEAD_STEPS: [u32; 11] = [1, 12, 13, 14, 15, 16, 5, 7, 8, 9, 10];

/// The step of a settings update (`Gate::set_settings`) between writing
/// the inactive settings slot and flipping to it.
pub const SETTINGS_STEP: u32 = 11;

/// The kill point of a settings update (see [`SETTINGS_STEP`]).
pub(crate) fn step_settings() {
    step(SETTINGS_STEP);
}

pub(super) fn step(k: u32) {
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    let at = *AT.get_or_init(|| {
        std::env::var(KILL_AT_STEP_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if at == Some(k) {
        // SAFETY: plain kill(2) on this process; SIGKILL is not caught.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The kill point after step `k` (see [`KILL_AT_STEP_ENV`]) where the
/// step can also fail (see [`FAIL_AT_STEP_ENV`]); `trie`: the one written.
pub(super) fn checkpoint(k: u32, trie: usize) -> Result<()> {
    step(k);
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    let at = *AT.get_or_init(|| {
        std::env::var(FAIL_AT_STEP_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if at == Some(k) {
        return Err(GateError::Verify {
            trie,
            problem: format!("a fault injected after step {k} ({FAIL_AT_STEP_ENV})"),
        });
    }
    Ok(())
}

/// The half whose trie holds the complete set the gate stands by: the
/// selector's, except while an update is enforced ahead of its trie
/// (journal `AHEAD`): trie `target` may then be half written while its
/// compiled copy is enforced, and the other half holds the previous set
/// intact (trie, labels and copy); a repair flips back to it.
pub(crate) fn intact_half(selector: usize, meta: &Meta) -> usize {
    if meta.journal.state == gate_common::JOURNAL_AHEAD {
        1 - (meta.journal.target as usize & 1)
    } else {
        selector
    }
}

pub(crate) fn journal_text(j: &Journal) -> String {
    let state = match j.state {
        gate_common::JOURNAL_FILL => "writing the inactive trie",
        gate_common::JOURNAL_AHEAD => {
            "enforced ahead from the compiled copy, writing its trie (a repair restores the previous set)"
        }
        gate_common::JOURNAL_SYNC => "flipped, writing the other trie",
        gate_common::JOURNAL_IDLE => "idle",
        _ => "unknown state",
    };
    let kind = if j.kind == gate_common::JOURNAL_FULL {
        "full"
    } else {
        "diff"
    };
    format!(
        "{kind} update by pid {} from generation {} to {}, {state} (trie {}), {} removed, {} written",
        j.pid, j.from_generation, j.to_generation, j.target, j.removed, j.written
    )
}

/// Whether the metadata says anything but "both tries hold the same set".
pub(super) fn out_of_sync(m: &Meta) -> bool {
    m.journal.state != gate_common::JOURNAL_IDLE
        || m.generation[0] != m.generation[1]
        || m.entries[0] != m.entries[1]
        || m.digest[0] != m.digest[1]
        || (m.layout != gate_common::META_LAYOUT && (m.generation[0] | m.generation[1]) != 0)
}

/// What both tries hold, as this handle last wrote or read them. Trusted
/// only while the metadata names its generation and digest for both tries
/// and no update is under way.
#[derive(Clone, Debug)]
pub struct Mirror {
    pub(super) generation: u64,
    pub(super) digest: [u64; 4],
    pub(super) set: PrefixSet,
    pub(super) labels: Labels,
    /// The compiled set as both copies hold it (same layout in both), when
    /// this handle wrote them; `None` after a repair or a read.
    pub(super) live: Option<Live>,
}

impl Gate {
    /// The set both tries hold, under the lock: this handle's copy when
    /// the metadata still names its generation and digest, else read from
    /// the active trie once (repairing an interrupted update first). It is
    /// what the datapath enforces.
    pub fn loaded_set(&mut self) -> Result<&PrefixSet> {
        let _guard = self.hold()?;
        self.ensure_mirror()?;
        Ok(&self.mirror.as_ref().expect("ensured").set)
    }

    /// Repairs the pair after an interrupted update (a journal that is not
    /// idle, or tries the metadata does not show in sync): the active trie
    /// is a complete set, so the other one is emptied and filled with it.
    /// An update interrupted while enforced ahead of its trie is undone:
    /// the selector goes back to the half that holds the previous set.
    /// Returns whether anything was repaired.
    pub fn repair(&mut self) -> Result<bool> {
        let _guard = self.hold()?;
        let meta = self.meta()?;
        if out_of_sync(&meta) {
            self.repair_locked()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Makes `self.mirror` what both tries hold; the caller holds the lock.
    /// Returns whether it had to repair the pair.
    pub(super) fn ensure_mirror(&mut self) -> Result<bool> {
        let meta = self.meta()?;
        if out_of_sync(&meta) {
            self.repair_locked()?;
            return Ok(true);
        }
        let a = self.active_trie()?;
        if let Some(m) = &self.mirror {
            if m.generation == meta.generation[a] && m.digest == meta.digest[a] {
                return Ok(false);
            }
        }
        self.mirror = None;
        let (set, table) = self.read_half(a)?;
        let digest = set_digest(&set);
        if digest != meta.digest[a] {
            // Not what the metadata says both tries hold: trust only the
            // active trie, and rewrite the other from it.
            self.repair_locked()?;
            return Ok(true);
        }
        let labels = Labels::of_table(&table, &set);
        self.mirror = Some(Mirror {
            generation: meta.generation[a],
            digest,
            set,
            labels,
            live: None,
        });
        Ok(false)
    }

    /// Points the datapath to half `to`: the trie bit alone; the settings
    /// bit stays as it is (both are written only under the pin directory's
    /// lock, held here).
    pub(super) fn flip(&mut self, to: usize) -> Result<()> {
        let word = self.active.get(&0, 0).map_err(rd(maps::ACTIVE))?;
        let word = (word & !gate_common::ACTIVE_TRIE) | to as u32;
        self.active.set(0, word, 0).map_err(upd(maps::ACTIVE))
    }

    /// One half's set (from its record or its trie) and its label table.
    pub(super) fn read_half(&self, h: usize) -> Result<(PrefixSet, BTreeMap<u32, String>)> {
        let set = self.read_set(h)?;
        let mut table = BTreeMap::new();
        for item in self.labels[h].iter() {
            let (k, v) = item.map_err(rd(maps::LABELS[h]))?;
            table.insert(k, text_of(&v));
        }
        Ok((set, table))
    }

    /// The repair itself, under the lock: copies the intact trie (the
    /// active one, or the one flipped back to; see [`intact_half`]) and its
    /// label ids to the other one, records both in sync, closes the journal.
    pub(super) fn repair_locked(&mut self) -> Result<()> {
        self.mirror = None;
        let mut meta = self.meta()?;
        let journal = journal_text(&meta.journal);
        let fail = |e: GateError| GateError::Repair {
            journal: journal.clone(),
            problem: e.to_string(),
        };
        let selector = self.active_trie()?;
        let a = intact_half(selector, &meta);
        if a != selector {
            // The other half's copy may be read until the grace below; its
            // trie is not read while that copy is valid (enforced ahead).
            self.flip(a).map_err(fail)?;
            tracing::warn!(%journal, "flipped back to the previous set: the update enforced ahead of its trie did not finish");
        }
        let (set, table) = self.read_half(a).map_err(fail)?;
        let labels = Labels::of_table(&table, &set);
        let h = 1 - a;
        // Half h (its copy, and its trie through it) may have been read
        // until the interrupted flip (or the flip back).
        self.grace().map_err(fail)?;
        let (compiled, _) = self.recompile(None, &set, None).map_err(fail)?;
        let record = self.keeps_in_record(compiled.is_some(), set.len());
        self.write_full(h, &set, &labels, None, (0, 0, 0), record)
            .map_err(fail)?;
        self.write_copy(h, compiled.as_ref().map(|(l, p)| (l, p)), record)
            .map_err(fail)?;
        let digest = set_digest(&set);
        let generation = meta.generation[a];
        meta.generation = [generation; 2];
        meta.entries = [set.len() as u64; 2];
        meta.digest = [digest; 2];
        meta.loaded_at[h] = meta.loaded_at[a];
        meta.layout = gate_common::META_LAYOUT;
        meta.record_slot = std::mem::size_of::<gate_common::record::RecordSlot>() as u64;
        meta.journal.state = gate_common::JOURNAL_IDLE;
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        tracing::info!(%journal, entries = set.len(), generation, "repaired the pair of tries after an interrupted update");
        // The copies may differ in layout now (the active one may have
        // been patched): the next update writes both whole.
        self.mirror = Some(Mirror {
            generation,
            digest,
            set,
            labels,
            live: None,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intact_half_is_the_other_one_only_while_enforced_ahead() {
        let mut m = Meta::default();
        assert_eq!(intact_half(1, &m), 1);
        for state in [gate_common::JOURNAL_FILL, gate_common::JOURNAL_SYNC] {
            m.journal.state = state;
            m.journal.target = 0;
            assert_eq!(intact_half(1, &m), 1);
            assert_eq!(intact_half(0, &m), 0);
        }
        // Flipped to the half being filled, or about to be: the other one.
        m.journal.state = gate_common::JOURNAL_AHEAD;
        m.journal.target = 1;
        assert_eq!(intact_half(1, &m), 0);
        assert_eq!(intact_half(0, &m), 0);
        assert!(journal_text(&m.journal).contains("enforced ahead"));
    }
}
