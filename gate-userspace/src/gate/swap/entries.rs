//! How entries look in the kernel: LPM keys, values, label texts and ids
//! (reference counted), the limits checked before a write, and set digests.

use std::collections::{BTreeMap, HashMap};

use aya::maps::lpm_trie::Key;
use gate_common::{Entry, Label};
use ipnet::Ipv6Net;
use sha2::{Digest, Sha256};

use crate::{
    gate::{GateError, Result},
    model::prefixes::{PrefixEntry, PrefixSet},
};

pub(super) fn key_of(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(net.prefix_len() as u32, net.network().octets())
}

pub(super) fn net_of(k: &Key<[u8; 16]>) -> Option<Ipv6Net> {
    Ipv6Net::new(k.data().into(), k.prefix_len() as u8).ok()
}

/// Bytes of an IPv6 LPM key: prefix length (host order), then the address.
pub(super) const KEY_BYTES: usize = 4 + 16;

pub(super) fn key_bytes(net: &Ipv6Net) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..4].copy_from_slice(&u32::from(net.prefix_len()).to_ne_bytes());
    k[4..].copy_from_slice(&net.network().octets());
    k
}

/// Bytes of an entry, as the kernel lays it out.
pub(super) const VALUE_BYTES: usize = std::mem::size_of::<Entry>();

pub(super) fn value_bytes(v: &Entry) -> [u8; VALUE_BYTES] {
    let mut b = [0u8; VALUE_BYTES];
    b[..4].copy_from_slice(&v.verdict.to_ne_bytes());
    b[4..].copy_from_slice(&v.source.to_ne_bytes());
    b
}

pub(super) fn label_of(text: &str) -> Label {
    let mut l = Label::default();
    let mut n = text.len().min(gate_common::LABEL_LEN - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    l.bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
    l
}

pub(super) fn text_of(l: &Label) -> String {
    let end = l
        .bytes
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(l.bytes.len());
    String::from_utf8_lossy(&l.bytes[..end]).into_owned()
}

/// Checks one entry's label against the kernel's label size.
pub(super) fn check_label(e: &PrefixEntry) -> Result<()> {
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
    Ok(())
}

/// Distinct labels of `set` numbered in order of first use, after checking
/// every limit of the gate's maps: nothing is written unless all fit.
pub(super) fn plan_labels(
    set: &PrefixSet,
    max_entries: u32,
    max_labels: u32,
) -> Result<BTreeMap<&str, u32>> {
    if set.len() > max_entries as usize {
        return Err(GateError::TooManyEntries {
            got: set.len(),
            max: max_entries,
        });
    }
    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for e in set.iter() {
        // Neighbours mostly share their label: check and count it once.
        if last == Some(e.label.as_str()) {
            continue;
        }
        check_label(e)?;
        let next = ids.len() as u32;
        ids.entry(e.label.as_str()).or_insert(next);
        last = Some(e.label.as_str());
    }
    if ids.len() > max_labels as usize {
        return Err(GateError::LabelsFull {
            got: ids.len(),
            max: max_labels,
        });
    }
    Ok(ids)
}

/// The digest of one entry in `Meta::digest`: SHA-256 over its verdict,
/// prefix length, address and label, as four little-endian lanes.
fn entry_hash(e: &PrefixEntry) -> [u64; 4] {
    let mut h = Sha256::new();
    h.update([e.verdict.to_raw() as u8, e.prefix.prefix_len()]);
    h.update(e.prefix.network().octets());
    h.update(e.label.as_bytes());
    let d = h.finalize();
    let lane = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    [lane(0), lane(1), lane(2), lane(3)]
}

pub(super) fn digest_add(d: &mut [u64; 4], e: &PrefixEntry) {
    for (a, b) in d.iter_mut().zip(entry_hash(e)) {
        *a = a.wrapping_add(b);
    }
}

pub(super) fn digest_sub(d: &mut [u64; 4], e: &PrefixEntry) {
    for (a, b) in d.iter_mut().zip(entry_hash(e)) {
        *a = a.wrapping_sub(b);
    }
}

/// The digest `Meta::digest` records for `set` (order independent: an
/// update adds and subtracts the entries it changes).
pub fn set_digest(set: &PrefixSet) -> [u64; 4] {
    let mut d = [0u64; 4];
    for e in set.iter() {
        digest_add(&mut d, e);
    }
    d
}

/// Label ids as both tries hold them: text to (id, entries using it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Labels {
    pub(super) by_text: HashMap<String, (u32, u64)>,
    /// Ids no label uses, to hand out again.
    pub(super) free: Vec<u32>,
    /// The lowest id never handed out.
    pub(super) next: u32,
}

impl Labels {
    /// Fresh ids in order of first use, for a set written from scratch.
    pub(super) fn of_set(set: &PrefixSet) -> Labels {
        let mut l = Labels::default();
        let mut last: Option<&str> = None;
        let mut run = 0u64;
        let flush = |l: &mut Labels, text: Option<&str>, run: u64| {
            if let Some(t) = text {
                let next = l.next;
                let e = l.by_text.entry(t.to_string()).or_insert((next, 0));
                if e.0 == next {
                    l.next += 1;
                }
                e.1 += run;
            }
        };
        for e in set.iter() {
            if last == Some(e.label.as_str()) {
                run += 1;
                continue;
            }
            flush(&mut l, last, run);
            last = Some(e.label.as_str());
            run = 1;
        }
        flush(&mut l, last, run);
        l
    }

    /// The ids a trie's label table holds, with references counted in `set`.
    pub(super) fn of_table(table: &BTreeMap<u32, String>, set: &PrefixSet) -> Labels {
        let mut l = Labels::default();
        for (id, text) in table {
            l.by_text.entry(text.clone()).or_insert((*id, 0));
            l.next = l.next.max(id + 1);
        }
        for e in set.iter() {
            match l.by_text.get_mut(&e.label) {
                Some(v) => v.1 += 1,
                None => {
                    // An entry whose label id is missing from the table
                    // (read back as ""): give the text an id of its own.
                    let id = l.next;
                    l.next += 1;
                    l.by_text.insert(e.label.clone(), (id, 1));
                }
            }
        }
        let used: std::collections::HashSet<u32> = l.by_text.values().map(|v| v.0).collect();
        l.free = (0..l.next).filter(|i| !used.contains(i)).collect();
        l.free.reverse();
        l
    }

    pub(super) fn id(&self, text: &str) -> u32 {
        self.by_text.get(text).map_or(u32::MAX, |v| v.0)
    }

    pub(super) fn len(&self) -> usize {
        self.by_text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::prefixes::Verdict;

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

    fn set(text: &str) -> PrefixSet {
        PrefixSet::parse(text, "t").unwrap()
    }

    #[test]
    fn the_digest_is_order_free_and_follows_changes() {
        let a = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        let b = set("allow 2001:db8:2::/48 b\nallow 2001:db8:1::/48 a\n");
        assert_eq!(set_digest(&a), set_digest(&b));
        assert_eq!(set_digest(&PrefixSet::new()), [0; 4]);
        // Removing and adding entries moves it exactly to the new set's.
        let c = set("allow 2001:db8:2::/48 b\ndeny 2001:db8:9::/48 a\n");
        let mut d = set_digest(&a);
        digest_sub(&mut d, a.get(&"2001:db8:1::/48".parse().unwrap()).unwrap());
        digest_add(&mut d, c.get(&"2001:db8:9::/48".parse().unwrap()).unwrap());
        assert_eq!(d, set_digest(&c));
        // Verdict and label count.
        assert_ne!(
            set_digest(&set("allow 2001:db8:1::/48 a\n")),
            set_digest(&set("deny 2001:db8:1::/48 a\n"))
        );
        assert_ne!(
            set_digest(&set("allow 2001:db8:1::/48 a\n")),
            set_digest(&set("allow 2001:db8:1::/48 b\n"))
        );
    }

    #[test]
    fn label_ids_are_counted_and_freed_ids_found_again() {
        let s = set("allow 2001:db8:1::/48 x\nallow 2001:db8:2::/48 y\nallow 2001:db8:3::/48 x\n");
        let l = Labels::of_set(&s);
        assert_eq!(l.by_text["x"], (0, 2));
        assert_eq!(l.by_text["y"], (1, 1));
        assert_eq!((l.next, l.len()), (2, 2));
        // Read back from a table with a hole at 1 and an unused id 3.
        let table: BTreeMap<u32, String> = [(0, "x".into()), (2, "y".into()), (3, "z".into())]
            .into_iter()
            .collect();
        let l = Labels::of_table(&table, &s);
        assert_eq!(l.by_text["x"], (0, 2));
        assert_eq!(l.by_text["y"], (2, 1));
        assert_eq!(l.by_text["z"], (3, 0));
        assert_eq!(l.free, [1]);
        assert_eq!(l.id("nothing"), u32::MAX);
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
