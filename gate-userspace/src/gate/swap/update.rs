//! Writing an update into the two halves in order: the inactive half, the
//! flip, the other half; or, enforced ahead, the compiled copy before its trie.
//!
//! Enforced ahead (`full-ahead`): a rewrite whose set fits the compiled
//! lookup and holds no prefix shorter than /32 is never looked up in the
//! LPM trie of its half while that half's copy is valid (the datapath reads
//! the trie only for an invalid copy, or on a miss when `HDR_SHORT` is
//! set). So the copy is written and the selector flipped first, under a
//! journal in state `AHEAD`, and the record and trie emptied and filled
//! after the flip. The other half keeps the previous set intact until the journal
//! moves on to `SYNC`; a writer that dies or fails before that is undone by
//! flipping back to it (`Gate::repair`).

use std::time::{Duration, Instant};

use gate_common::{
    lookup::{LookupHeader, HDR_SHORT, HDR_VALID},
    maps, Journal,
};
use ipnet::Ipv6Net;

use super::{
    journal::{checkpoint, journal_text, step, Mirror},
    now_secs, set_digest, LoadReport, Plan, Target,
};
use crate::{
    gate::{
        compiled::{Live, Patch},
        update_err as upd, Gate, GateError, Result,
    },
    model::prefixes::PrefixSet,
};

/// A compiled set and the time compiling it took (`None`: it does not fit
/// the compiled lookup's capacity).
type Recompiled = (Option<(Live, Patch)>, Duration);

/// What writing one trie took: entries deleted, then the times to delete,
/// write and check.
type TrieTimes = (usize, Duration, Duration, Duration);

/// Whether a half whose copy has header `h` can be enforced before its trie
/// is written: the datapath then never reads that trie.
pub(super) fn enforceable_ahead(h: &LookupHeader) -> bool {
    h.flags & HDR_VALID != 0 && h.flags & HDR_SHORT == 0
}

/// The first half written: its trie's times (cleared entries, clear, fill,
/// check), the new set (a rewrite's) or the mirror's with the plan applied
/// (a diff's), the compiled set.
struct First {
    times: TrieTimes,
    new_set: Option<PrefixSet>,
    applied: Option<PrefixSet>,
    compiled: Option<(Live, Patch)>,
    compile_time: Duration,
}

impl Gate {
    /// The update, under the lock, from a trusted mirror: journal, the
    /// inactive half (enforced ahead of its trie when it can be), flip, the
    /// other half, journal closed.
    pub(super) fn update(
        &mut self,
        mut plan: Plan,
        mut target: Option<Target<'_>>,
    ) -> Result<LoadReport> {
        let start = Instant::now();
        let a = self.active_trie()?;
        let t = 1 - a;
        // The new set is compiled first: where each half keeps it (record
        // or trie), and whether a rewrite can be enforced ahead of its
        // trie, depend on what it compiles to. Nothing is written yet.
        let (precompiled, mut applied) = match (&target, plan.full) {
            (Some(tg), true) => (self.recompile(None, tg.set(), None)?, None),
            _ => {
                let (set, compiled) = self.compile_diff(&plan)?;
                (compiled, Some(set))
            }
        };
        // Both halves keep the old set the same way (in sync).
        plan.was_record = self.set_in_record(a)?;
        plan.record = self.keeps_in_record(precompiled.0.is_some(), plan.entries);
        if !plan.full && plan.record != plan.was_record {
            // The set moves between the records and the tries: rewritten.
            plan.full = true;
            target = Some(Target::Built(applied.take().expect("a diff's set")));
        }
        let ahead = plan.full
            && matches!(&precompiled.0, Some((live, _)) if enforceable_ahead(&live.header()));
        let mut meta = self.meta()?;
        let from = meta.generation[a];
        let generation = meta.generation[0].max(meta.generation[1]) + 1;
        meta.layout = gate_common::META_LAYOUT;
        meta.record_slot = std::mem::size_of::<gate_common::record::RecordSlot>() as u64;
        meta.journal = Journal {
            state: if ahead {
                gate_common::JOURNAL_AHEAD
            } else {
                gate_common::JOURNAL_FILL
            },
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

        // Until the journal says SYNC the other half holds the previous set
        // intact: on any error it is enforced again (flipped back to, when
        // enforced ahead) and this half repaired from it.
        let mut enforce_time = None;
        let first = if ahead {
            let target = target.expect("ahead: a rewrite");
            self.first_ahead(t, &mut plan, target, precompiled, || {
                enforce_time = Some(start.elapsed())
            })
        } else {
            self.first_behind(t, &mut plan, target, precompiled, applied)
        };
        let First {
            times: (cleared, clear_time, fill_time, check_time),
            mut new_set,
            applied,
            compiled,
            compile_time,
        } = match first {
            Ok(f) => f,
            Err(e) => {
                self.mirror = None;
                if let Err(r) = self.repair_locked() {
                    tracing::warn!(error = %r, "repairing after a failed update");
                    if enforce_time.is_some() {
                        return Err(GateError::Repair {
                            journal: journal_text(&meta.journal),
                            problem: format!("{e}; then {r} (the new set may be enforced without its trie until a repair succeeds)"),
                        });
                    }
                } else if enforce_time.is_some() {
                    tracing::warn!(error = %e, "an update enforced ahead of its trie failed after the flip; the previous set is enforced again");
                }
                return Err(e);
            }
        };
        let digest = plan.digest.unwrap_or_default();
        meta.journal.digest = digest;
        meta.generation[t] = generation;
        meta.entries[t] = plan.entries as u64;
        meta.digest[t] = digest;
        meta.loaded_at[t] = now_secs();
        meta.journal.state = gate_common::JOURNAL_SYNC;
        meta.journal.target = a as u32;
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        step(5);
        let enforce_time = match enforce_time {
            Some(e) => e,
            None => {
                self.flip(t)?;
                step(6);
                start.elapsed()
            }
        };

        // After the flip: the new set is enforced; the old active half is
        // brought to it the same way.
        let mut repaired = false;
        let mut grace_time = Duration::ZERO;
        let sync = self.grace().and_then(|g| {
            grace_time = g;
            self.write_copy(a, compiled.as_ref().map(|(l, p)| (l, p)), plan.record)?;
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
        // Everything after the flip (enforced ahead: this half's trie too).
        let sync_time = start.elapsed().saturating_sub(enforce_time);

        let (removed, written) = (plan.removed, plan.written);
        let mode = match (plan.full, ahead) {
            (true, true) => "full-ahead",
            (true, false) => "full",
            (false, _) => "diff",
        };
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

    /// The inactive half written before the flip: its set (record and
    /// trie), then its compiled copy.
    fn first_behind(
        &mut self,
        t: usize,
        plan: &mut Plan,
        target: Option<Target<'_>>,
        (compiled, compile_time): Recompiled,
        applied: Option<PrefixSet>,
    ) -> Result<First> {
        let (times, new_set) = self.write_trie(t, plan, target, (2, 3, 4));
        let times = times?;
        self.write_copy(t, compiled.as_ref().map(|(l, p)| (l, p)), plan.record)?;
        Ok(First {
            times,
            new_set,
            applied,
            compiled,
            compile_time,
        })
    }

    /// A diff's new set (the mirror's with the plan applied) compiled: the
    /// mirror's compiled set changed group by group when it has one. Takes
    /// the mirror (the update leaves a new one).
    fn compile_diff(&mut self, plan: &Plan) -> Result<(PrefixSet, Recompiled)> {
        let mut m = self.mirror.take().expect("ensured");
        let old_live = m.live.take();
        let changed = plan
            .remove
            .iter()
            .copied()
            .chain(plan.add.iter().chain(&plan.change).map(|e| e.prefix))
            .collect::<Vec<_>>();
        for p in &plan.remove {
            m.set.remove(p);
        }
        for e in plan.add.iter().chain(&plan.change) {
            m.set.replace(e.clone());
        }
        let compiled = self.recompile(old_live, &m.set, Some(changed))?;
        Ok((m.set, compiled))
    }

    /// The inactive half enforced ahead of its trie: its compiled copy, the
    /// flip (then `flipped` is called), and only then its trie, which the
    /// datapath does not read (see [`enforceable_ahead`]).
    fn first_ahead(
        &mut self,
        t: usize,
        plan: &mut Plan,
        target: Target<'_>,
        (compiled, compile_time): Recompiled,
        flipped: impl FnOnce(),
    ) -> Result<First> {
        self.write_copy(t, compiled.as_ref().map(|(l, p)| (l, p)), plan.record)?;
        checkpoint(12, t)?;
        self.flip(t)?;
        flipped();
        checkpoint(13, t)?;
        let (times, new_set) = self.write_trie(t, plan, Some(target), (14, 15, 16));
        Ok(First {
            times: times?,
            new_set,
            applied: None,
            compiled,
            compile_time,
        })
    }

    /// Writes the planned update into trie `t` (see `write_half`). A
    /// rewrite of a given set: its copy for the mirror and its digest are
    /// made on another thread meanwhile. Returns the trie's times and the
    /// new set of a rewrite; sets the plan's digest.
    fn write_trie(
        &mut self,
        t: usize,
        plan: &mut Plan,
        target: Option<Target<'_>>,
        steps: (u32, u32, u32),
    ) -> (Result<TrieTimes>, Option<PrefixSet>) {
        let target_set = target.as_ref().map(Target::set);
        let (times, copied) = std::thread::scope(|scope| {
            let copy = match (&target, plan.digest) {
                (Some(Target::Given(s)), None) => {
                    let s: &PrefixSet = s;
                    Some(scope.spawn(move || (s.clone(), set_digest(s))))
                }
                _ => None,
            };
            let times = self.write_half(t, plan, target_set, steps);
            (times, copy.map(|h| h.join().expect("copying the set")))
        });
        let new_set = match (copied, target) {
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
        (times, new_set)
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
    ) -> Result<Recompiled> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_copy_without_short_prefixes_goes_ahead_of_its_trie() {
        let h = |flags| LookupHeader {
            flags,
            ..LookupHeader::default()
        };
        assert!(enforceable_ahead(&h(HDR_VALID)));
        // The datapath reads the trie on a miss, or for an invalid copy.
        assert!(!enforceable_ahead(&h(HDR_VALID | HDR_SHORT)));
        assert!(!enforceable_ahead(&h(0)));
        assert!(!enforceable_ahead(&h(HDR_SHORT)));
    }
}
