//! Where a half keeps its set: in its record while its compiled copy is valid
//! (the trie then holds only the prefixes shorter than /32), else in its trie.
//!
//! The writers here change one half's record (inactive, under the lock) and
//! prove what it held, as the trie's flagged writes do; the readers take a
//! half a reader stands by (see `read.rs`).

use std::net::Ipv6Addr;

use aya::maps::lpm_trie::Key;
use gate_common::{
    lookup::{HDR_RECORD, HDR_VALID},
    maps,
    record::RecordSlot,
};
use ipnet::Ipv6Net;

use super::entries::Labels;
use crate::{
    gate::{
        record::{self, Refused},
        Gate, GateError, Result,
    },
    model::prefixes::{PrefixEntry, Verdict},
};

/// Prefixes shorter than this are kept in the trie too while the set is in
/// the record: a /32 without a group in the copy is answered from the trie
/// (`HDR_SHORT`).
pub(super) const SHORT: u8 = 32;

/// Whether the trie of a half whose set is in the record (`record`) holds
/// `p` too.
pub(super) fn in_trie(record: bool, p: &Ipv6Net) -> bool {
    !record || p.prefix_len() < SHORT
}

fn refused(h: usize, p: &Ipv6Net, r: Refused) -> GateError {
    let problem = match r {
        Refused::Present => format!("{p} is in its record already"),
        Refused::Absent => format!("{p} should be in its record, and is not"),
        Refused::Full => format!("its record is full before {p}"),
    };
    GateError::Verify { trie: h, problem }
}

impl Gate {
    /// Whether half `h` keeps its set in its record (its copy's header
    /// says so; written after the half's set).
    pub fn set_in_record(&self, h: usize) -> Result<bool> {
        let flags = self.lookup_header(h)?.flags;
        Ok(flags & HDR_VALID != 0 && flags & HDR_RECORD != 0)
    }

    /// Whether a set of `entries` is kept in the records: it compiles (the
    /// datapath reads its trie only for prefixes shorter than /32) and fits.
    pub(super) fn keeps_in_record(&self, compiled: bool, entries: usize) -> bool {
        let room = self.records[0].capacity().min(self.records[1].capacity());
        if compiled && entries as u64 > room {
            tracing::warn!(
                entries,
                room,
                "the set does not fit the records: it is kept in the LPM tries"
            );
        }
        compiled && entries as u64 <= room
    }

    /// Writes `e` into half `h`'s record, as a new prefix (`new`) or over
    /// the one there; `held`: the entries it holds.
    pub(super) fn record_put(
        &mut self,
        h: usize,
        held: &mut u64,
        e: &PrefixEntry,
        label: u32,
        new: bool,
    ) -> Result<()> {
        let slots = self.records[h].slots_mut();
        let verdict = e.verdict.to_raw() as u8;
        record::put(slots, held, &e.prefix, verdict, label, new)
            .map_err(|r| refused(h, &e.prefix, r))
    }

    /// Removes `p` from half `h`'s record (it must be there).
    pub(super) fn record_remove(&mut self, h: usize, held: &mut u64, p: &Ipv6Net) -> Result<()> {
        record::remove(self.records[h].slots_mut(), held, p).map_err(|r| refused(h, p, r))
    }

    /// Empties half `h`'s record.
    pub(super) fn record_clear(&mut self, h: usize) {
        self.records[h].slots_mut().fill(RecordSlot::default());
    }

    /// Half `h`'s record holds exactly `e.prefix` with its verdict and label.
    pub(super) fn record_check(&self, h: usize, e: &PrefixEntry, labels: &Labels) -> Result<()> {
        let slots = self.records[h].slots();
        let got = record::find(slots, &e.prefix).map(|i| (slots[i].verdict, slots[i].label));
        let want = (e.verdict.to_raw() as u8, labels.id(&e.label));
        if got != Some(want) {
            return Err(GateError::Verify {
                trie: h,
                problem: format!(
                    "{} {} {} reads back from its record as {got:?}",
                    e.verdict, e.prefix, e.label
                ),
            });
        }
        Ok(())
    }

    /// The entries of half `h`'s record: prefix, verdict, label id.
    pub(super) fn record_entries(&self, h: usize) -> Vec<(Ipv6Net, Verdict, u32)> {
        record::entries(self.records[h].slots())
            .map(|(p, v, l)| {
                (
                    p,
                    Verdict::from_raw(u32::from(v)).unwrap_or(Verdict::Deny),
                    l,
                )
            })
            .collect()
    }

    /// The longest prefix in half `h`'s record holding `addr`: its verdict
    /// and label id.
    pub(super) fn record_longest(
        &self,
        h: usize,
        addr: Ipv6Addr,
    ) -> Option<(Ipv6Net, Verdict, u32)> {
        record::longest(self.records[h].slots(), addr).map(|(p, s)| {
            let v = Verdict::from_raw(u32::from(s.verdict)).unwrap_or(Verdict::Deny);
            (p, v, s.label)
        })
    }

    /// The entry for `addr` in half `h`, from its record or else its trie,
    /// whatever its copy's header says: for tests and tools that watch a
    /// half being written. Its verdict and label id.
    pub fn probe_half(&self, h: usize, addr: Ipv6Addr) -> Result<Option<(Verdict, u32)>> {
        if let Some((_, v, l)) = self.record_longest(h, addr) {
            return Ok(Some((v, l)));
        }
        match self.trust[h].get(&Key::new(128, addr.octets()), 0) {
            Ok(e) => Ok(Some((
                Verdict::from_raw(e.verdict).unwrap_or(Verdict::Deny),
                e.source,
            ))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(crate::gate::read_err(maps::TRUST[h])(e)),
        }
    }

    /// Entries in half `h`'s record and in its trie, counted (for tests
    /// and tools that watch a half being written).
    pub fn half_counts(&self, h: usize) -> Result<(usize, usize)> {
        let record = record::entries(self.records[h].slots()).count();
        let mut trie = 0;
        for k in self.trust[h].keys() {
            k.map_err(crate::gate::read_err(maps::TRUST[h]))?;
            trie += 1;
        }
        Ok((record, trie))
    }
}
