//! Atomic replacement of the trusted set: fill and check the inactive trie,
//! then flip the one-word selector the datapath reads.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use aya::maps::lpm_trie::Key;
use gate_common::{maps, Entry, Label, Meta};
use ipnet::Ipv6Net;

use super::{read_err as rd, update_err as upd, Gate, GateError, Result};
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict};

/// What a swap did and how long each step took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    pub generation: u64,
    pub trie: usize,
    pub entries: usize,
    pub labels: usize,
    /// Entries removed from the inactive trie before filling it (the set
    /// from two loads ago).
    pub cleared: usize,
    #[serde(serialize_with = "secs")]
    pub clear_time: Duration,
    #[serde(serialize_with = "secs")]
    pub fill_time: Duration,
    #[serde(serialize_with = "secs")]
    pub check_time: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn key_of(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(net.prefix_len() as u32, net.network().octets())
}

fn net_of(k: &Key<[u8; 16]>) -> Option<Ipv6Net> {
    Ipv6Net::new(k.data().into(), k.prefix_len() as u8).ok()
}

fn label_of(text: &str) -> Label {
    let mut l = Label::default();
    let mut n = text.len().min(gate_common::LABEL_LEN - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    l.bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
    l
}

fn text_of(l: &Label) -> String {
    let end = l
        .bytes
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(l.bytes.len());
    String::from_utf8_lossy(&l.bytes[..end]).into_owned()
}

impl Gate {
    /// Index (0 or 1) of the trie the datapath reads now.
    pub fn active_trie(&self) -> Result<usize> {
        Ok((self.active.get(&0, 0).map_err(rd(maps::ACTIVE))? & 1) as usize)
    }

    pub fn meta(&self) -> Result<Meta> {
        self.meta.get(&0, 0).map_err(rd(maps::META))
    }

    /// Replaces the trusted set atomically. The active trie is never
    /// written; on any error the datapath keeps the set it had.
    pub fn load_set(&mut self, set: &PrefixSet) -> Result<LoadReport> {
        let _guard = self.lock()?;
        let target = 1 - self.active_trie()?;
        let mut meta = self.meta()?;

        let t = Instant::now();
        let cleared = self.clear_trie(target, &mut meta)?;
        let clear_time = t.elapsed();

        let t = Instant::now();
        let labels = self.fill_trie(target, set)?;
        let fill_time = t.elapsed();

        let t = Instant::now();
        self.check_trie(target, set)?;
        let check_time = t.elapsed();

        let generation = self.flip_to(target, set.len(), &mut meta)?;
        Ok(LoadReport {
            generation,
            trie: target,
            entries: set.len(),
            labels,
            cleared,
            clear_time,
            fill_time,
            check_time,
        })
    }

    /// Step 1 of a load: empties the inactive trie `target` and its labels,
    /// entry by entry from user space (the kernel never frees a big trie
    /// at once), and marks it empty in the metadata. Returns how many
    /// entries it removed.
    fn clear_trie(&mut self, target: usize, meta: &mut Meta) -> Result<usize> {
        let old: Vec<_> = self.trust[target]
            .keys()
            .collect::<Result<_, _>>()
            .map_err(rd(maps::TRUST[target]))?;
        for k in &old {
            self.trust[target]
                .remove(k)
                .map_err(upd(maps::TRUST[target]))?;
        }
        let old_labels: Vec<u32> = self.labels[target]
            .keys()
            .collect::<Result<_, _>>()
            .map_err(rd(maps::LABELS[target]))?;
        for k in &old_labels {
            self.labels[target]
                .remove(k)
                .map_err(upd(maps::LABELS[target]))?;
        }
        meta.entries[target] = 0;
        meta.generation[target] = 0;
        self.meta.set(0, *meta, 0).map_err(upd(maps::META))?;
        Ok(old.len())
    }

    /// Step 2: writes every entry of `set` and its label into the emptied
    /// trie `target`. Returns the number of distinct labels.
    fn fill_trie(&mut self, target: usize, set: &PrefixSet) -> Result<usize> {
        let mut label_ids: BTreeMap<&str, u32> = BTreeMap::new();
        for e in set.iter() {
            let next = label_ids.len() as u32;
            let id = *label_ids.entry(e.label.as_str()).or_insert(next);
            if id == next {
                if next >= gate_common::LABELS_MAX_ENTRIES {
                    return Err(GateError::LabelsFull {
                        max: gate_common::LABELS_MAX_ENTRIES,
                    });
                }
                self.labels[target]
                    .insert(id, label_of(&e.label), 0)
                    .map_err(upd(maps::LABELS[target]))?;
            }
            let value = Entry {
                verdict: e.verdict.to_raw(),
                source: id,
            };
            self.trust[target]
                .insert(&key_of(&e.prefix), value, 0)
                .map_err(upd(maps::TRUST[target]))?;
        }
        Ok(label_ids.len())
    }

    /// Step 3: exactly the wanted prefixes are in trie `target` (keys only:
    /// the values were written by the inserts of step 2, under the lock,
    /// into a trie nobody else writes).
    fn check_trie(&self, target: usize, set: &PrefixSet) -> Result<()> {
        let mut seen = 0usize;
        for k in self.trust[target].keys() {
            let k = k.map_err(rd(maps::TRUST[target]))?;
            seen += 1;
            let net = net_of(&k).ok_or_else(|| GateError::Verify {
                trie: target,
                problem: "a key with an invalid prefix length".into(),
            })?;
            if set.get(&net).is_none() {
                return Err(GateError::Verify {
                    trie: target,
                    problem: format!("unexpected entry {net}"),
                });
            }
        }
        if seen != set.len() {
            return Err(GateError::Verify {
                trie: target,
                problem: format!("{seen} entries in the trie, {} wanted", set.len()),
            });
        }
        Ok(())
    }

    /// Step 4: records the new generation of trie `target`, then flips the
    /// selector. From here on the datapath reads the new set. Returns the
    /// generation.
    fn flip_to(&mut self, target: usize, entries: usize, meta: &mut Meta) -> Result<u64> {
        let generation = meta.generation[0].max(meta.generation[1]) + 1;
        meta.generation[target] = generation;
        meta.entries[target] = entries as u64;
        meta.loaded_at[target] = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.meta.set(0, *meta, 0).map_err(upd(maps::META))?;
        self.active
            .set(0, target as u32, 0)
            .map_err(upd(maps::ACTIVE))?;
        Ok(generation)
    }

    /// Reads one trie back as a prefix set with its labels.
    pub fn read_set(&self, trie: usize) -> Result<PrefixSet> {
        let mut labels = BTreeMap::new();
        for item in self.labels[trie].iter() {
            let (k, v) = item.map_err(rd(maps::LABELS[trie]))?;
            labels.insert(k, text_of(&v));
        }
        let mut set = PrefixSet::new();
        for item in self.trust[trie].iter() {
            let (k, v) = item.map_err(rd(maps::TRUST[trie]))?;
            let Some(prefix) = net_of(&k) else { continue };
            let verdict = Verdict::from_raw(v.verdict).unwrap_or(Verdict::Deny);
            let label = labels.get(&v.source).cloned().unwrap_or_default();
            set.insert(PrefixEntry {
                verdict,
                prefix,
                label,
            })
            .map_err(|problem| GateError::Inconsistent { trie, problem })?;
        }
        Ok(set)
    }

    /// The set the datapath reads now.
    pub fn active_set(&self) -> Result<PrefixSet> {
        self.read_set(self.active_trie()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let l = label_of(&long);
        let back = text_of(&l);
        assert!(back.len() < gate_common::LABEL_LEN);
        assert!(back.chars().all(|c| c == 'é'));
        assert_eq!(text_of(&label_of("isp")), "isp");
        assert_eq!(text_of(&label_of("")), "");
    }
}
