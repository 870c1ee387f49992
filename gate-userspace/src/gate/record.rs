//! A half's record of its set (`WG_RECORD_N`): an open-addressing hash table
//! of prefixes in an mmap'd array that only user space reads and writes.
//!
//! While a half's compiled copy is valid its set is kept here, not in its
//! LPM trie (which then holds only the prefixes shorter than /32 the
//! datapath falls back to). Linear probing from a hash of the prefix,
//! deletion by backward shift (no tombstones), at most 3/4 full: one
//! changed entry costs a few slot reads and writes. The record of a half is
//! written only while no reader stands by it (as its trie), so readers
//! without the lock check the generation after they read, as for the trie.

use std::{net::Ipv6Addr, path::Path};

use gate_common::record::{record_capacity, RecordSlot, SLOT_USED};
use ipnet::Ipv6Net;

use super::{lookup::Mmap, Result};

/// The hash of a prefix: its address and length mixed (splitmix64's
/// finaliser over the two halves of the address).
fn hash(addr: u128, len: u8) -> u64 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    mix(mix((addr >> 64) as u64 ^ u64::from(len)) ^ addr as u64)
}

/// The slot a prefix's probe starts from in a table of `n` slots.
fn home(addr: u128, len: u8, n: usize) -> usize {
    ((u128::from(hash(addr, len)) * n as u128) >> 64) as usize
}

/// A prefix as the record keys it: its address bits (past the length
/// zero) and length.
fn key(p: &Ipv6Net) -> (u128, u8) {
    (u128::from(p.trunc().network()), p.prefix_len())
}

fn slot_key(s: &RecordSlot) -> (u128, u8) {
    (u128::from_be_bytes(s.addr), s.len)
}

/// The slot holding prefix `p`, if any.
pub(crate) fn find(slots: &[RecordSlot], p: &Ipv6Net) -> Option<usize> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let (addr, len) = key(p);
    let mut i = home(addr, len, n);
    for _ in 0..n {
        let s = &slots[i];
        if s.used != SLOT_USED {
            return None;
        }
        if slot_key(s) == (addr, len) {
            return Some(i);
        }
        i = if i + 1 == n { 0 } else { i + 1 };
    }
    None
}

/// Why a record write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// An insert of a new prefix found it there already.
    Present,
    /// A change or removal did not find the prefix.
    Absent,
    /// The record holds as many entries as it may.
    Full,
}

/// Writes `p` with `verdict` and `label`: as a new prefix (`new`), or over
/// the one there. `held`: entries the record holds now.
pub(crate) fn put(
    slots: &mut [RecordSlot],
    held: &mut u64,
    p: &Ipv6Net,
    verdict: u8,
    label: u32,
    new: bool,
) -> std::result::Result<(), Refused> {
    let (addr, len) = key(p);
    let value = RecordSlot {
        addr: addr.to_be_bytes(),
        len,
        used: SLOT_USED,
        verdict,
        pad: 0,
        label,
    };
    match (find(slots, p), new) {
        (Some(_), true) => Err(Refused::Present),
        (None, false) => Err(Refused::Absent),
        (Some(i), false) => {
            slots[i] = value;
            Ok(())
        }
        (None, true) => {
            let n = slots.len();
            if *held + 1 > record_capacity(n as u32) {
                return Err(Refused::Full);
            }
            let mut i = home(addr, len, n);
            while slots[i].used == SLOT_USED {
                i = if i + 1 == n { 0 } else { i + 1 };
            }
            slots[i] = value;
            *held += 1;
            Ok(())
        }
    }
}

/// Removes `p`; later slots of its probe run move back over the hole, so
/// every entry stays reachable from its home slot without tombstones.
pub(crate) fn remove(
    slots: &mut [RecordSlot],
    held: &mut u64,
    p: &Ipv6Net,
) -> std::result::Result<(), Refused> {
    let n = slots.len();
    let mut hole = find(slots, p).ok_or(Refused::Absent)?;
    let mut j = hole;
    loop {
        j = if j + 1 == n { 0 } else { j + 1 };
        if slots[j].used != SLOT_USED {
            break;
        }
        let (addr, len) = slot_key(&slots[j]);
        let k = home(addr, len, n);
        // Entry j may fill the hole unless its home lies cyclically in
        // (hole, j]: then the hole is not on its probe path.
        let stays = if hole <= j {
            hole < k && k <= j
        } else {
            hole < k || k <= j
        };
        if !stays {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole] = RecordSlot::default();
    *held -= 1;
    Ok(())
}

/// The entries of a record: prefix, verdict, label id.
pub(crate) fn entries(slots: &[RecordSlot]) -> impl Iterator<Item = (Ipv6Net, u8, u32)> + '_ {
    slots
        .iter()
        .filter(|s| s.used == SLOT_USED)
        .filter_map(|s| {
            let net = Ipv6Net::new(Ipv6Addr::from(s.addr), s.len).ok()?;
            Some((net, s.verdict, s.label))
        })
}

/// The longest prefix in the record holding `addr`, with its slot.
pub(crate) fn longest(slots: &[RecordSlot], addr: Ipv6Addr) -> Option<(Ipv6Net, RecordSlot)> {
    (0..=128u8).rev().find_map(|len| {
        let net = Ipv6Net::new(addr, len).expect("len <= 128").trunc();
        find(slots, &net).map(|i| (net, slots[i]))
    })
}

/// One half's record, mapped into this process.
pub(crate) struct Record {
    map: Mmap,
    slots: usize,
}

impl Record {
    pub(super) fn open(dir: &Path, name: &'static str) -> Result<Record> {
        let (map, slots) = Mmap::open_counted(dir, name)?;
        Ok(Record { map, slots })
    }

    pub(crate) fn slots(&self) -> &[RecordSlot] {
        // SAFETY: the mapping holds `slots` elements of 24 bytes (a
        // multiple of 8: the kernel's element stride), aligned to a page.
        unsafe { std::slice::from_raw_parts(self.map.ptr() as *const RecordSlot, self.slots) }
    }

    pub(crate) fn slots_mut(&mut self) -> &mut [RecordSlot] {
        // SAFETY: as in `slots`; writers hold the pin directory's lock.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr() as *mut RecordSlot, self.slots) }
    }

    /// Entries this record may hold.
    pub(crate) fn capacity(&self) -> u64 {
        record_capacity(self.slots as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::HashMap;

    fn net(rng: &mut StdRng, dense: bool) -> Ipv6Net {
        // Dense: few distinct prefixes, so probe runs collide and wrap.
        let addr = if dense {
            u128::from(rng.gen_range(0u32..64)) << 80
        } else {
            rng.gen::<u128>()
        };
        let len = if dense {
            rng.gen_range(40..=50)
        } else {
            rng.gen_range(0..=128)
        };
        Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc()
    }

    /// Random puts, changes and removals against a HashMap, in tables small
    /// enough that runs wrap around the end.
    #[test]
    fn the_table_holds_what_a_map_holds() {
        for (n, dense) in [(7usize, true), (64, true), (1000, false), (97, true)] {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let mut slots = vec![RecordSlot::default(); n];
            let mut held = 0u64;
            let mut want: HashMap<Ipv6Net, (u8, u32)> = HashMap::new();
            for step in 0..20_000u32 {
                let p = net(&mut rng, dense);
                let v = (rng.gen_range(1..=2u8), step);
                match rng.gen_range(0..3) {
                    0 => {
                        let r = remove(&mut slots, &mut held, &p);
                        assert_eq!(r.is_ok(), want.remove(&p).is_some(), "{p}");
                    }
                    1 => {
                        let r = put(&mut slots, &mut held, &p, v.0, v.1, false);
                        match want.get_mut(&p) {
                            Some(w) => {
                                assert_eq!(r, Ok(()));
                                *w = v;
                            }
                            None => assert_eq!(r, Err(Refused::Absent)),
                        }
                    }
                    _ => {
                        let r = put(&mut slots, &mut held, &p, v.0, v.1, true);
                        if want.contains_key(&p) {
                            assert_eq!(r, Err(Refused::Present));
                        } else if want.len() as u64 >= record_capacity(n as u32) {
                            assert_eq!(r, Err(Refused::Full));
                        } else {
                            assert_eq!(r, Ok(()));
                            want.insert(p, v);
                        }
                    }
                }
                assert_eq!(held, want.len() as u64);
                if step % 97 == 0 {
                    let got: HashMap<_, _> = entries(&slots).map(|(p, v, l)| (p, (v, l))).collect();
                    assert_eq!(got, want, "step {step}");
                    for p in want.keys() {
                        assert!(find(&slots, p).is_some(), "{p} unreachable");
                    }
                }
            }
        }
    }

    #[test]
    fn the_longest_prefix_holding_an_address_is_found() {
        let mut slots = vec![RecordSlot::default(); 16];
        let mut held = 0;
        for (p, l) in [("2001:db8::/32", 1), ("2001:db8:1::/48", 2), ("::/0", 3)] {
            put(&mut slots, &mut held, &p.parse().unwrap(), 1, l, true).unwrap();
        }
        let at =
            |a: &str| longest(&slots, a.parse().unwrap()).map(|(n, s)| (n.to_string(), s.label));
        assert_eq!(at("2001:db8:1::5"), Some(("2001:db8:1::/48".into(), 2)));
        assert_eq!(at("2001:db8:2::5"), Some(("2001:db8::/32".into(), 1)));
        assert_eq!(at("2002::1"), Some(("::/0".into(), 3)));
        assert!(longest(&[], "::1".parse().unwrap()).is_none());
    }
}
