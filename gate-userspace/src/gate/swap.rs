//! Atomic replacement of the trusted set: fill and check the inactive trie,
//! then flip the one-word selector the datapath reads.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    os::fd::AsFd,
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{lpm_trie::Key, IterableMap};
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

/// Distinct labels of `set` numbered in order of first use, after checking
/// every limit of the gate's maps: nothing is written unless all fit.
fn plan_labels(set: &PrefixSet, max_entries: u32, max_labels: u32) -> Result<BTreeMap<&str, u32>> {
    if set.len() > max_entries as usize {
        return Err(GateError::TooManyEntries {
            got: set.len(),
            max: max_entries,
        });
    }
    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    for e in set.iter() {
        let max = gate_common::LABEL_LEN - 1;
        if e.label.len() > max {
            return Err(GateError::LabelTooLong {
                prefix: e.prefix,
                len: e.label.len(),
                max,
            });
        }
        if e.label.contains('\0') {
            return Err(GateError::LabelNul { prefix: e.prefix });
        }
        let next = ids.len() as u32;
        ids.entry(e.label.as_str()).or_insert(next);
    }
    if ids.len() > max_labels as usize {
        return Err(GateError::LabelsFull {
            got: ids.len(),
            max: max_labels,
        });
    }
    Ok(ids)
}

/// A view of the active set read in one generation: the selector and the
/// metadata were the same before and after the read.
#[derive(Clone, Debug)]
pub struct Settled<T> {
    pub trie: usize,
    pub meta: Meta,
    pub value: T,
}

/// Optimistic reads before a reader takes the lock to read.
const OPTIMISTIC_READS: u32 = 3;

impl Gate {
    /// Index (0 or 1) of the trie the datapath reads now.
    pub fn active_trie(&self) -> Result<usize> {
        Ok((self.active.get(&0, 0).map_err(rd(maps::ACTIVE))? & 1) as usize)
    }

    pub fn meta(&self) -> Result<Meta> {
        self.meta.get(&0, 0).map_err(rd(maps::META))
    }

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

    /// Runs `read` on the active trie until the selector and the metadata
    /// are the same after it as before (a load flipped nothing meanwhile),
    /// so what it read is one generation. After a few unlucky tries it
    /// reads under the lock (no load can flip then); never while printing.
    pub fn settled<T>(
        &self,
        mut read: impl FnMut(&Self, usize, &Meta) -> Result<T>,
    ) -> Result<Settled<T>> {
        for _ in 0..OPTIMISTIC_READS {
            let trie = self.active_trie()?;
            let meta = self.meta()?;
            let value = read(self, trie, &meta);
            // Only a flip changes the active trie, and a flip changes the
            // selector or that trie's generation (a trie is refilled only
            // after it stopped being active).
            let after = self.meta()?;
            if self.active_trie()? == trie && after.generation[trie] == meta.generation[trie] {
                return Ok(Settled {
                    trie,
                    meta,
                    value: value?,
                });
            }
        }
        let _guard = self.hold()?;
        let trie = self.active_trie()?;
        let meta = self.meta()?;
        let value = read(self, trie, &meta)?;
        Ok(Settled { trie, meta, value })
    }

    /// Replaces the trusted set atomically. Every limit is checked before
    /// the first write; the active trie is never written; on any error the
    /// datapath keeps the set it had.
    pub fn load_set(&mut self, set: &PrefixSet) -> Result<LoadReport> {
        let (max_entries, max_labels) = self.capacity();
        let label_ids = plan_labels(set, max_entries, max_labels)?;
        let _guard = self.hold()?;
        let target = 1 - self.active_trie()?;
        let mut meta = self.meta()?;

        let t = Instant::now();
        let cleared = self.clear_trie(target, &mut meta)?;
        let clear_time = t.elapsed();

        let t = Instant::now();
        let filled = self.fill_trie(target, set, &label_ids);
        let fill_time = t.elapsed();
        let t = Instant::now();
        let filled = filled.and_then(|()| self.check_trie(target, set));
        let check_time = t.elapsed();
        if let Err(e) = filled {
            // The inactive trie holds part of a set nobody asked for:
            // empty it again, so it is what the metadata says (empty).
            let _ = self.clear_trie(target, &mut meta);
            return Err(e);
        }

        let generation = self.flip_to(target, set.len(), &mut meta)?;
        Ok(LoadReport {
            generation,
            trie: target,
            entries: set.len(),
            labels: label_ids.len(),
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
        if meta.entries[target] != 0 || meta.generation[target] != 0 {
            meta.entries[target] = 0;
            meta.generation[target] = 0;
            self.meta.set(0, *meta, 0).map_err(upd(maps::META))?;
        }
        Ok(old.len())
    }

    /// Step 2: writes the labels and every entry of `set` into the emptied
    /// trie `target`.
    fn fill_trie(
        &mut self,
        target: usize,
        set: &PrefixSet,
        ids: &BTreeMap<&str, u32>,
    ) -> Result<()> {
        for (text, id) in ids {
            self.labels[target]
                .insert(id, label_of(text), 0)
                .map_err(upd(maps::LABELS[target]))?;
        }
        for e in set.iter() {
            let value = Entry {
                verdict: e.verdict.to_raw(),
                source: ids[e.label.as_str()],
            };
            self.trust[target]
                .insert(&key_of(&e.prefix), value, 0)
                .map_err(upd(maps::TRUST[target]))?;
        }
        Ok(())
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

    /// The set the datapath reads now, read in one generation.
    pub fn active_set(&self) -> Result<PrefixSet> {
        Ok(self.settled(|g, trie, _| g.read_set(trie))?.value)
    }

    /// The entry a SYN from `addr` matches in the active set, as the
    /// datapath finds it: one longest-prefix lookup and its label, then
    /// which prefix matched (exact probes from /128 down); never the
    /// whole set.
    pub fn lookup(&self, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        Ok(self.settled(|g, trie, _| g.lookup_in(trie, addr))?.value)
    }

    fn lookup_in(&self, trie: usize, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        let map = &self.trust[trie];
        let value = match map.get(&Key::new(128, addr.octets()), 0) {
            Ok(v) => v,
            Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(rd(maps::TRUST[trie])(e)),
        };
        let label = match self.labels[trie].get(&value.source, 0) {
            Ok(l) => text_of(&l),
            Err(aya::maps::MapError::KeyNotFound) => String::new(),
            Err(e) => return Err(rd(maps::LABELS[trie])(e)),
        };
        Ok(Some(PrefixEntry {
            verdict: Verdict::from_raw(value.verdict).unwrap_or(Verdict::Deny),
            prefix: self.matched_prefix(trie, addr)?,
            label,
        }))
    }

    /// The longest prefix in trie `trie` that holds `addr`.
    fn matched_prefix(&self, trie: usize, addr: Ipv6Addr) -> Result<Ipv6Net> {
        let fd = self.trust[trie].map().fd().as_fd();
        let io = |e: std::io::Error| GateError::Io {
            path: self.pin_dir.join(maps::TRUST[trie]),
            cause: e,
        };
        let mut first = [0u8; KEY_BYTES];
        if super::sys::map_next_key(fd, None, &mut first).map_err(io)? {
            for len in (0..=128u8).rev() {
                let net = Ipv6Net::new(addr, len).expect("len <= 128").trunc();
                if super::sys::lpm_has_exact(fd, &key_bytes(&net), &first).map_err(io)? {
                    return Ok(net);
                }
            }
        }
        Err(GateError::Inconsistent {
            trie,
            problem: format!("a lookup of {addr} found an entry, but no prefix holding it"),
        })
    }
}

/// Bytes of an IPv6 LPM key: prefix length (host order), then the address.
const KEY_BYTES: usize = 4 + 16;

fn key_bytes(net: &Ipv6Net) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..4].copy_from_slice(&u32::from(net.prefix_len()).to_ne_bytes());
    k[4..].copy_from_slice(&net.network().octets());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_before_anything_is_written() {
        let set = |text: &str| PrefixSet::parse(text, "t").unwrap();
        let two = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        assert_eq!(plan_labels(&two, 2, 2).unwrap().len(), 2);
        assert!(matches!(
            plan_labels(&two, 1, 2),
            Err(GateError::TooManyEntries { got: 2, max: 1 })
        ));
        assert!(matches!(
            plan_labels(&two, 2, 1),
            Err(GateError::LabelsFull { got: 2, max: 1 })
        ));
        let mut long = PrefixSet::new();
        long.insert(PrefixEntry {
            verdict: Verdict::Allow,
            prefix: "2001:db8::/32".parse().unwrap(),
            label: "x".repeat(gate_common::LABEL_LEN),
        })
        .unwrap();
        assert!(matches!(
            plan_labels(&long, 9, 9),
            Err(GateError::LabelTooLong { .. })
        ));
    }

    #[test]
    fn keys_are_laid_out_as_the_kernel_reads_them() {
        let net: Ipv6Net = "2001:db8:1::/48".parse().unwrap();
        let k = key_bytes(&net);
        assert_eq!(u32::from_ne_bytes(k[..4].try_into().unwrap()), 48);
        assert_eq!(&k[4..8], &[0x20, 0x01, 0x0d, 0xb8]);
    }

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
