//! Readers of the active set without the writers' lock: the selector and the
//! metadata read around the read, so what they return is one generation.

use std::{collections::BTreeMap, net::Ipv6Addr, os::fd::AsFd};

use aya::maps::{lpm_trie::Key, IterableMap};
use gate_common::{maps, Meta};
use ipnet::Ipv6Net;

use super::entries::{key_bytes, net_of, text_of, KEY_BYTES};
use crate::{
    gate::{read_err as rd, Gate, GateError, Result},
    model::prefixes::{PrefixEntry, PrefixSet, Verdict},
};

/// A view of the active set read in one generation: the selector and the
/// metadata were the same before and after the read.
#[derive(Clone, Debug)]
pub struct Settled<T> {
    /// The trie read: the one holding the set the gate stands by (see
    /// [`Gate::set_trie`]).
    pub trie: usize,
    /// The half the datapath reads; another than `trie` only while an
    /// update is enforced ahead of its trie.
    pub selector: usize,
    pub meta: Meta,
    pub value: T,
}

/// Optimistic reads before a reader takes the lock to read.
const OPTIMISTIC_READS: u32 = 3;

impl Gate {
    /// Index (0 or 1) of the trie the datapath reads now.
    pub fn active_trie(&self) -> Result<usize> {
        Ok((self.active.get(&0, 0).map_err(rd(maps::ACTIVE))? & gate_common::ACTIVE_TRIE) as usize)
    }

    pub fn meta(&self) -> Result<Meta> {
        self.meta.get(&0, 0).map_err(rd(maps::META))
    }

    /// The trie holding the set the gate stands by, the selector, and the
    /// metadata (read after the selector): the active trie, except while
    /// an update is enforced ahead of its trie; then the other one, which
    /// holds the previous set intact until the journal moves on (and which
    /// a repair flips back to; see `intact_half`).
    pub fn set_trie(&self) -> Result<(usize, usize, Meta)> {
        let selector = self.active_trie()?;
        let meta = self.meta()?;
        Ok((super::intact_half(selector, &meta), selector, meta))
    }

    /// Runs `read` on the trie of the set the gate stands by (see
    /// [`Gate::set_trie`]) until that trie and its generation are the same
    /// after it as before (a load flipped nothing meanwhile, and did not
    /// move on from enforcing ahead), so what it read is one generation.
    /// After a few unlucky tries it reads under the lock (no load can flip
    /// then); never while printing.
    pub fn settled<T>(
        &self,
        mut read: impl FnMut(&Self, usize, &Meta) -> Result<T>,
    ) -> Result<Settled<T>> {
        for _ in 0..OPTIMISTIC_READS {
            let (trie, selector, meta) = self.set_trie()?;
            let value = read(self, trie, &meta);
            // A trie is written only while it is not the set trie (the
            // inactive one, or the one being filled while enforced ahead),
            // and it becomes the set trie again only with a new generation;
            // a trie flipped back to by a repair was never written.
            let (after, _, after_meta) = self.set_trie()?;
            if after == trie && after_meta.generation[trie] == meta.generation[trie] {
                return Ok(Settled {
                    trie,
                    selector,
                    meta,
                    value: value?,
                });
            }
        }
        let _guard = self.hold()?;
        let (trie, selector, meta) = self.set_trie()?;
        let value = read(self, trie, &meta)?;
        Ok(Settled {
            trie,
            selector,
            meta,
            value,
        })
    }

    /// Reads one half's set back with its labels: from its record while
    /// its copy is valid, else from its trie.
    pub fn read_set(&self, trie: usize) -> Result<PrefixSet> {
        let mut labels = BTreeMap::new();
        for item in self.labels[trie].iter() {
            let (k, v) = item.map_err(rd(maps::LABELS[trie]))?;
            labels.insert(k, text_of(&v));
        }
        let mut entries = Vec::new();
        if self.set_in_record(trie)? {
            entries = self.record_entries(trie);
        } else {
            for item in self.trust[trie].iter() {
                let (k, v) = item.map_err(rd(maps::TRUST[trie]))?;
                let Some(prefix) = net_of(&k) else { continue };
                let verdict = Verdict::from_raw(v.verdict).unwrap_or(Verdict::Deny);
                entries.push((prefix, verdict, v.source));
            }
        }
        let mut set = PrefixSet::new();
        for (prefix, verdict, id) in entries {
            let label = labels.get(&id).cloned().unwrap_or_default();
            set.insert(PrefixEntry {
                verdict,
                prefix,
                label,
            })
            .map_err(|problem| GateError::Inconsistent { trie, problem })?;
        }
        Ok(set)
    }

    /// The set the datapath reads now, read in one generation; while an
    /// update is enforced ahead of its trie, the previous set (what a
    /// repair would leave; `inspect` shows the update under way).
    pub fn active_set(&self) -> Result<PrefixSet> {
        Ok(self.settled(|g, trie, _| g.read_set(trie))?.value)
    }

    /// The entry a SYN from `addr` matches in the active set (as
    /// [`Gate::active_set`] reads it), as the datapath finds it: one longest-prefix lookup and its label, then
    /// which prefix matched (exact probes from /128 down); never the
    /// whole set.
    pub fn lookup(&self, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        Ok(self.settled(|g, trie, _| g.lookup_in(trie, addr))?.value)
    }

    fn lookup_in(&self, trie: usize, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        let (prefix, verdict, source) = if self.set_in_record(trie)? {
            match self.record_longest(trie, addr) {
                Some(found) => found,
                None => return Ok(None),
            }
        } else {
            let value = match self.trust[trie].get(&Key::new(128, addr.octets()), 0) {
                Ok(v) => v,
                Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
                Err(e) => return Err(rd(maps::TRUST[trie])(e)),
            };
            let verdict = Verdict::from_raw(value.verdict).unwrap_or(Verdict::Deny);
            (self.matched_prefix(trie, addr)?, verdict, value.source)
        };
        let label = match self.labels[trie].get(&source, 0) {
            Ok(l) => text_of(&l),
            Err(aya::maps::MapError::KeyNotFound) => String::new(),
            Err(e) => return Err(rd(maps::LABELS[trie])(e)),
        };
        Ok(Some(PrefixEntry {
            verdict,
            prefix,
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
        if crate::gate::sys::map_next_key(fd, None, &mut first).map_err(io)? {
            for len in (0..=128u8).rev() {
                let net = Ipv6Net::new(addr, len).expect("len <= 128").trunc();
                if crate::gate::sys::lpm_has_exact(fd, &key_bytes(&net), &first).map_err(io)? {
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
