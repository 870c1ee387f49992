//! Writing an update into the two halves in order: the inactive half (trie,
//! then compiled copy), the flip, the other half; the journal at each phase.

use std::time::{Duration, Instant};

use gate_common::{maps, Journal};
use ipnet::Ipv6Net;

use super::{
    journal::{journal_text, step, Mirror},
    now_secs, set_digest, LoadReport, Plan, Target,
};
use crate::{
    gate::{
        compiled::{Live, Patch},
        read_err as rd, update_err as upd, Gate, GateError, Result,
    },
    model::prefixes::PrefixSet,
};

impl Gate {
    /// The update, under the lock, from a trusted mirror: journal, the
    /// inactive trie, flip, the other trie, journal closed.
    pub(super) fn update(
        &mut self,
        mut plan: Plan,
        target: Option<Target<'_>>,
    ) -> Result<LoadReport> {
        let start = Instant::now();
        let mut meta = self.meta()?;
        let a = self.active_trie()?;
        let t = 1 - a;
        let from = meta.generation[a];
        let generation = meta.generation[0].max(meta.generation[1]) + 1;
        meta.layout = gate_common::META_LAYOUT;
        meta.journal = Journal {
            state: gate_common::JOURNAL_FILL,
            target: t as u32,
            kind: if plan.full {
                gate_common::JOURNAL_FULL
            } else {
                gate_common::JOURNAL_DIFF
            },
            pid: std::process::id(),
            from_generation: from,
            to_generation: generation,
            removed: plan.removed as u64,
            written: plan.written as u64,
            digest: plan.digest.unwrap_or_default(),
        };
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        step(1);

        // Before the flip: the active trie is untouched, so on any error
        // the datapath keeps its set; the other trie is repaired from it.
        // A rewrite of a given set: its copy for the mirror and its digest
        // are made on another thread while this one writes the trie.
        let target_set = target.as_ref().map(Target::set);
        let (before, copied) = std::thread::scope(|scope| {
            let copy = match (&target, plan.digest) {
                (Some(Target::Given(s)), None) => {
                    let s: &PrefixSet = s;
                    Some(scope.spawn(move || (s.clone(), set_digest(s))))
                }
                _ => None,
            };
            let before = self.write_half(t, &plan, target_set, (2, 3, 4));
            (before, copy.map(|h| h.join().expect("copying the set")))
        });
        let mut new_set = match (copied, target) {
            (Some((set, digest)), _) => {
                plan.digest = Some(digest);
                Some(set)
            }
            (None, Some(Target::Given(s))) => Some(s.clone()),
            (None, Some(Target::Built(s))) => Some(s),
            (None, None) => None,
        };
        if plan.digest.is_none() {
            plan.digest = new_set.as_ref().map(set_digest);
        }
        let digest = plan.digest.unwrap_or_default();
        meta.journal.digest = digest;
        // The compiled copy of the same half, from the new set (a diff's
        // is the mirror's set with the plan applied).
        let mut applied = None;
        let before = before.and_then(|times| {
            let (mut old_live, mut changed) = (None, None);
            if new_set.is_none() {
                let mut m = self.mirror.take().expect("ensured");
                old_live = m.live.take();
                changed = Some(
                    plan.remove
                        .iter()
                        .copied()
                        .chain(plan.add.iter().chain(&plan.change).map(|e| e.prefix))
                        .collect::<Vec<_>>(),
                );
                for p in &plan.remove {
                    m.set.remove(p);
                }
                for e in plan.add.iter().chain(&plan.change) {
                    m.set.replace(e.clone());
                }
                applied = Some(m.set);
            }
            let set = new_set.as_ref().or(applied.as_ref()).expect("one of them");
            let (compiled, compile_time) = self.recompile(old_live, set, changed)?;
            self.write_copy(t, compiled.as_ref().map(|(l, p)| (l, p)))?;
            Ok((times, compiled, compile_time))
        });
        let ((cleared, clear_time, fill_time, check_time), compiled, compile_time) = match before {
            Ok(r) => r,
            Err(e) => {
                self.mirror = None;
                if let Err(r) = self.repair_locked() {
                    tracing::warn!(error = %r, "repairing after a failed update");
                }
                return Err(e);
            }
        };
        meta.generation[t] = generation;
        meta.entries[t] = plan.entries as u64;
        meta.digest[t] = digest;
        meta.loaded_at[t] = now_secs();
        meta.journal.state = gate_common::JOURNAL_SYNC;
        meta.journal.target = a as u32;
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        step(5);
        // The trie bit alone; the settings bit stays as it is (both are
        // written only under the pin directory's lock, held here).
        let word = self.active.get(&0, 0).map_err(rd(maps::ACTIVE))?;
        let word = (word & !gate_common::ACTIVE_TRIE) | t as u32;
        self.active.set(0, word, 0).map_err(upd(maps::ACTIVE))?;
        step(6);
        let enforce_time = start.elapsed();

        // After the flip: the new set is enforced; the old active trie is
        // brought to it the same way.
        let t2 = Instant::now();
        let mut repaired = false;
        let mut grace_time = Duration::ZERO;
        let sync = self.grace().and_then(|g| {
            grace_time = g;
            self.write_copy(a, compiled.as_ref().map(|(l, p)| (l, p)))?;
            self.write_half(a, &plan, new_set.as_ref(), (7, 8, 9))
        });
        if let Err(e) = sync {
            tracing::warn!(error = %e, "bringing the other trie in sync; repairing it from the active one");
            self.repair_locked().map_err(|r| GateError::Repair {
                journal: journal_text(&meta.journal),
                problem: format!(
                    "{e}; then {r} (the new set IS enforced, generation {generation})"
                ),
            })?;
            repaired = true;
        } else {
            meta.generation[a] = generation;
            meta.entries[a] = plan.entries as u64;
            meta.digest[a] = digest;
            meta.loaded_at[a] = meta.loaded_at[t];
            meta.journal.state = gate_common::JOURNAL_IDLE;
            self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
            step(10);
        }
        let sync_time = t2.elapsed();

        let (removed, written) = (plan.removed, plan.written);
        let mode = if plan.full { "full" } else { "diff" };
        let labels = plan.labels.len();
        let lookup = if compiled.is_some() {
            "compiled"
        } else {
            "trie"
        };
        let recompiled = match &compiled {
            Some((_, p)) if p.buckets.is_some() => "groups",
            Some(_) => "whole",
            None => "none",
        };
        if !repaired {
            let set = new_set.take().or(applied).expect("one of them");
            self.mirror = Some(Mirror {
                generation,
                digest,
                set,
                labels: plan.labels,
                live: compiled.map(|(l, _)| l),
            });
        }
        Ok(LoadReport {
            generation,
            trie: t,
            entries: plan.entries,
            labels,
            mode,
            removed,
            written,
            cleared,
            clear_time,
            fill_time,
            check_time,
            enforce_time,
            sync_time,
            lookup,
            recompiled,
            compile_time,
            grace_time,
            repaired,
        })
    }

    /// The compiled lookup for `set` after an update, the patch to write
    /// into each copy, and the time it took: `live` changed group by group
    /// when it is given with the `changed` prefixes (and that works), else
    /// compiled afresh. `None` when the set does not fit the gate's
    /// capacity (the datapath then reads the LPM trie, which holds any set).
    pub(super) fn recompile(
        &self,
        live: Option<Live>,
        set: &PrefixSet,
        changed: Option<Vec<Ipv6Net>>,
    ) -> Result<(Option<(Live, Patch)>, Duration)> {
        let t = Instant::now();
        if let (Some(mut live), Some(changed)) = (live, changed) {
            match live.apply(set, &changed) {
                Ok(patch) => return Ok((Some((live, patch)), t.elapsed())),
                Err(why) => tracing::debug!(?why, "compiling the whole set"),
            }
        }
        let cap = self.lookup_capacity()?;
        let compiled = match Live::build(set, &cap) {
            Ok(live) => Some((live, Patch::full())),
            Err(e) => {
                tracing::warn!(error = %e, "the datapath looks this set up in the LPM trie");
                None
            }
        };
        Ok((compiled, t.elapsed()))
    }
}
