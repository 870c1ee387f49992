//! Writing one half: a diff entry by entry (each write's flag, or the record's
//! own check, proves what the half held), or emptied and filled in batches.

use std::{
    os::fd::AsFd,
    time::{Duration, Instant},
};

use aya::maps::{IterableMap, MapError};
use gate_common::{maps, Entry};

use super::{
    entries::{key_bytes, key_of, label_of, net_of, value_bytes, Labels, KEY_BYTES, VALUE_BYTES},
    journal::{checkpoint, step},
    records::in_trie,
    Plan,
};
use crate::{
    gate::{read_err as rd, update_err as upd, Gate, GateError, Result},
    model::prefixes::PrefixSet,
};

/// `BPF_MAP_UPDATE_ELEM` flags: only a new key; only an existing one.
const BPF_NOEXIST: u64 = 1;

const BPF_EXIST: u64 = 2;

/// Entries read back after writing a trie: enough to catch a systematic
/// fault (wrong ids, wrong byte order), cheap beside the writes.
const SAMPLE: usize = 1024;

/// The same after a diff, whose every write's flag already proved its key.
const SAMPLE_DIFF: usize = 64;

pub(super) fn sys_err(trie: usize, what: &str, e: std::io::Error) -> GateError {
    GateError::Verify {
        trie,
        problem: format!("{what}: {e}"),
    }
}

/// Whether an aya map error is the kernel's `errno`.
fn is_errno(e: &MapError, errno: i32) -> bool {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(errno),
        MapError::KeyNotFound => errno == libc::ENOENT,
        _ => false,
    }
}

impl Gate {
    /// Writes the planned update into trie `h` (inactive): entry by entry,
    /// or emptied and filled from `target`. `steps` are the kill points
    /// after the labels, half the entries and all of them. Returns how
    /// many entries it deleted, and the times to delete, write and check.
    pub(super) fn write_half(
        &mut self,
        h: usize,
        plan: &Plan,
        target: Option<&PrefixSet>,
        steps: (u32, u32, u32),
    ) -> Result<(usize, Duration, Duration, Duration)> {
        if let Some(set) = target {
            // The mirror is of the old set, which trie `h` holds in sync.
            let mirror = self.mirror.take();
            let old = mirror.as_ref().map(|m| (&m.set, plan.was_record));
            let r = self.write_full(h, set, &plan.labels, old, steps, plan.record);
            self.mirror = mirror;
            return r;
        }
        let name = maps::TRUST[h];
        let record = plan.record;
        // Entries the record holds before the diff (it holds the old set).
        let mut held = (plan.entries + plan.remove.len() - plan.add.len()) as u64;
        let t0 = Instant::now();
        for (id, text) in &plan.new_labels {
            self.labels[h]
                .insert(id, label_of(text), 0)
                .map_err(upd(maps::LABELS[h]))?;
        }
        step(steps.0);
        let total = plan.removed + plan.written;
        let half = total / 2;
        let mut done = 0usize;
        let tick = |done: &mut usize| {
            *done += 1;
            if *done == half.max(1) {
                step(steps.1);
            }
        };
        for p in &plan.remove {
            if record {
                self.record_remove(h, &mut held, p)?;
            }
            if !in_trie(record, p) {
                tick(&mut done);
                continue;
            }
            match self.trust[h].remove(&key_of(p)) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {
                    return Err(GateError::Verify {
                        trie: h,
                        problem: format!("{p} should be there to remove, and is not"),
                    })
                }
                Err(e) => return Err(upd(name)(e)),
            }
            tick(&mut done);
        }
        let clear_time = t0.elapsed();
        let t1 = Instant::now();
        // BPF_NOEXIST for new prefixes and BPF_EXIST for changed ones: the
        // kernel confirms what the trie held, entry by entry.
        for (list, flags, what) in [
            (&plan.add, BPF_NOEXIST, "is there already"),
            (
                &plan.change,
                BPF_EXIST,
                "should be there to change, and is not",
            ),
        ] {
            for e in list {
                let value = Entry {
                    verdict: e.verdict.to_raw(),
                    source: plan.labels.id(&e.label),
                };
                if record {
                    self.record_put(h, &mut held, e, value.source, flags == BPF_NOEXIST)?;
                }
                if !in_trie(record, &e.prefix) {
                    tick(&mut done);
                    continue;
                }
                match self.trust[h].insert(&key_of(&e.prefix), value, flags) {
                    Ok(()) => {}
                    Err(err) if is_errno(&err, libc::EEXIST) || is_errno(&err, libc::ENOENT) => {
                        return Err(GateError::Verify {
                            trie: h,
                            problem: format!("{} {what}", e.prefix),
                        })
                    }
                    Err(err) => return Err(upd(name)(err)),
                }
                tick(&mut done);
            }
        }
        for id in &plan.dead_labels {
            match self.labels[h].remove(id) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {}
                Err(e) => return Err(upd(maps::LABELS[h])(e)),
            }
        }
        step(steps.2);
        let fill_time = t1.elapsed();
        let t2 = Instant::now();
        // Read back a sample of what was written (each write's flag
        // proved the key; this catches wrong values).
        self.check_sample(
            h,
            plan.add.iter().chain(&plan.change),
            plan.written,
            SAMPLE_DIFF,
            &plan.labels,
            record,
        )?;
        Ok((plan.remove.len(), clear_time, fill_time, t2.elapsed()))
    }

    /// Empties half `h` (record, trie and label table), then fills them
    /// with `set` and `labels`: the record with every entry and the trie
    /// with those shorter than /32 when the set is kept in the record
    /// (`record`), else the trie with every entry, using batch operations.
    /// `old`: the set the half holds, if known, and whether in its record
    /// (the trie's keys are deleted by key; otherwise read first). The
    /// check is by construction (the half verified empty, every distinct
    /// key written once) plus a sample read back.
    pub(super) fn write_full(
        &mut self,
        h: usize,
        set: &PrefixSet,
        labels: &Labels,
        old: Option<(&PrefixSet, bool)>,
        steps: (u32, u32, u32),
        record: bool,
    ) -> Result<(usize, Duration, Duration, Duration)> {
        let t0 = Instant::now();
        self.record_clear(h);
        let cleared = self.empty_half(h, old)?;
        checkpoint(steps.0, h)?;
        let clear_time = t0.elapsed();

        let t1 = Instant::now();
        let mut ids: Vec<(&u32, &String)> = labels.by_text.iter().map(|(t, v)| (&v.0, t)).collect();
        ids.sort();
        for (id, text) in ids {
            self.labels[h]
                .insert(id, label_of(text), 0)
                .map_err(upd(maps::LABELS[h]))?;
        }
        let n = set.len();
        let in_trie_n = if record {
            set.iter().filter(|e| in_trie(true, &e.prefix)).count()
        } else {
            n
        };
        let mut keys = Vec::with_capacity(in_trie_n * KEY_BYTES);
        let mut values = Vec::with_capacity(in_trie_n * VALUE_BYTES);
        let mut last: (&str, u32) = ("", labels.id(""));
        let mut held = 0u64;
        for (i, e) in set.iter().enumerate() {
            if e.label != last.0 {
                last = (e.label.as_str(), labels.id(&e.label));
            }
            if record {
                self.record_put(h, &mut held, e, last.1, true)?;
                if i + 1 == n / 2 {
                    checkpoint(steps.1, h)?;
                }
            }
            if in_trie(record, &e.prefix) {
                keys.extend_from_slice(&key_bytes(&e.prefix));
                values.extend_from_slice(&value_bytes(&Entry {
                    verdict: e.verdict.to_raw(),
                    source: last.1,
                }));
            }
        }
        if record {
            self.put_batch(h, &keys, &values)?;
            if n < 2 {
                checkpoint(steps.1, h)?;
            }
        } else {
            let half = n / 2;
            self.put_batch(h, &keys[..half * KEY_BYTES], &values[..half * VALUE_BYTES])?;
            checkpoint(steps.1, h)?;
            self.put_batch(h, &keys[half * KEY_BYTES..], &values[half * VALUE_BYTES..])?;
        }
        checkpoint(steps.2, h)?;
        let fill_time = t1.elapsed();

        let t2 = Instant::now();
        self.check_sample(h, set.iter(), n, SAMPLE, labels, record)?;
        Ok((cleared, clear_time, fill_time, t2.elapsed()))
    }

    /// Writes entries into trie `h` with `BPF_MAP_UPDATE_BATCH`, or one by
    /// one where the kernel has no batch update for LPM tries.
    fn put_batch(&mut self, h: usize, keys: &[u8], values: &[u8]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let fd = self.trust[h].map().fd().as_fd();
        match crate::gate::sys::map_update_batch(fd, keys, KEY_BYTES, values, VALUE_BYTES) {
            Ok(()) => Ok(()),
            Err((0, e)) if crate::gate::sys::batch_unsupported(&e) => {
                for (k, v) in keys.chunks(KEY_BYTES).zip(values.chunks(VALUE_BYTES)) {
                    crate::gate::sys::map_update(fd, k, v).map_err(|e| sys_err(h, "writing", e))?;
                }
                Ok(())
            }
            Err((done, e)) => Err(sys_err(
                h,
                &format!("batch write stopped after {done} entries"),
                e,
            )),
        }
    }

    /// Deletes everything in trie `h` and its label table, and verifies
    /// both are empty. Returns how many entries it deleted.
    fn empty_half(&mut self, h: usize, old: Option<(&PrefixSet, bool)>) -> Result<usize> {
        let fd = self.trust[h].map().fd().as_fd();
        let mut deleted = 0usize;
        if let Some((old, record)) = old {
            let mut keys = Vec::new();
            for e in old.iter().filter(|e| in_trie(record, &e.prefix)) {
                keys.extend_from_slice(&key_bytes(&e.prefix));
            }
            match crate::gate::sys::map_delete_batch(fd, &keys, KEY_BYTES) {
                Ok(()) => deleted += keys.len() / KEY_BYTES,
                // Not what it should hold: sweep what is left below.
                Err((done, _)) => deleted += done,
            }
        }
        for _ in 0..3 {
            let mut first = [0u8; KEY_BYTES];
            if !crate::gate::sys::map_next_key(fd, None, &mut first)
                .map_err(|e| sys_err(h, "reading", e))?
            {
                break;
            }
            let keys = match crate::gate::sys::map_keys_batch(fd, KEY_BYTES, VALUE_BYTES)
                .map_err(|e| sys_err(h, "reading keys", e))?
            {
                Some(k) => k,
                None => {
                    let mut k = Vec::new();
                    for key in self.trust[h].keys() {
                        let key = key.map_err(rd(maps::TRUST[h]))?;
                        let net = net_of(&key).ok_or_else(|| GateError::Inconsistent {
                            trie: h,
                            problem: "a key with an invalid prefix length".into(),
                        })?;
                        k.extend_from_slice(&key_bytes(&net));
                    }
                    k
                }
            };
            for k in keys.chunks(KEY_BYTES) {
                match crate::gate::sys::map_delete(fd, k) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(sys_err(h, "deleting", e)),
                }
            }
        }
        let mut first = [0u8; KEY_BYTES];
        if crate::gate::sys::map_next_key(fd, None, &mut first)
            .map_err(|e| sys_err(h, "reading", e))?
        {
            return Err(GateError::Verify {
                trie: h,
                problem: "still holds entries after emptying it".into(),
            });
        }
        let ids: Vec<u32> = self.labels[h]
            .keys()
            .collect::<Result<_, _>>()
            .map_err(rd(maps::LABELS[h]))?;
        for id in &ids {
            match self.labels[h].remove(id) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {}
                Err(e) => return Err(upd(maps::LABELS[h])(e)),
            }
        }
        if self.labels[h].keys().next().is_some() {
            return Err(GateError::Verify {
                trie: h,
                problem: "its label table still holds labels after emptying it".into(),
            });
        }
        Ok(deleted)
    }
}
