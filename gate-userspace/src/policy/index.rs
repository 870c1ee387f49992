//! The longest-prefix index behind [`super::trust::TrustSnapshot`]: built
//! once per refresh, read by every policy request.
//!
//! A request costs about one cache line of the table: per /16 a bit mask of
//! the prefix lengths present under it (an address outside every trusted
//! network usually stops there), then one probe per length present in an
//! open-addressing table whose slot holds the entry itself (prefix length,
//! verdict and, for the usual single statement, the statement). The tables
//! of a large snapshot ask for transparent huge pages, so a probe into tens
//! of MiB does not also pay a page walk (dear in a VM).

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::model::prefixes::Verdict;

/// No statement (a static entry) in a slot's `claim`.
const NO_CLAIM: u32 = u32::MAX;
/// A free slot's `len`.
const FREE: u8 = u8::MAX;

/// One entry: its network bits (`K`), length, verdict and statements.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Slot<K> {
    key: K,
    /// The statement (`multi == 0`; `NO_CLAIM`: none), or where the
    /// count of statements is in `refs`, the statements after it.
    claim: u32,
    len: u8,
    deny: bool,
    multi: bool,
}

trait Key: Copy + Eq + Default {
    fn hash(self, len: u8, seed: u64) -> u64;
}

/// MurmurHash3's 64-bit finaliser.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Key for u64 {
    fn hash(self, len: u8, seed: u64) -> u64 {
        mix(mix(self ^ seed) ^ u64::from(len))
    }
}

impl Key for u128 {
    fn hash(self, len: u8, seed: u64) -> u64 {
        mix(mix(mix((self >> 64) as u64 ^ seed) ^ self as u64) ^ u64::from(len))
    }
}

/// Linear probing, at most half full (a miss ends at a free slot soon).
#[derive(Debug)]
struct Table<K> {
    slots: Vec<Slot<K>>,
    mask: usize,
    seed: u64,
}

impl<K: Key> Table<K> {
    fn new(entries: usize, seed: u64) -> Table<K> {
        let cap = (entries * 2).next_power_of_two().max(8);
        let free = Slot {
            key: K::default(),
            claim: NO_CLAIM,
            len: FREE,
            deny: false,
            multi: false,
        };
        Table {
            slots: huge_vec(cap, free),
            mask: cap - 1,
            seed,
        }
    }

    /// Inserts or replaces the entry at (`key`, `len`).
    fn insert(&mut self, s: Slot<K>) {
        let mut i = s.key.hash(s.len, self.seed) as usize & self.mask;
        loop {
            let at = &mut self.slots[i];
            if at.len == FREE || (at.len == s.len && at.key == s.key) {
                *at = s;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    fn get(&self, key: K, len: u8) -> Option<&Slot<K>> {
        let mut i = key.hash(len, self.seed) as usize & self.mask;
        loop {
            let at = &self.slots[i];
            if at.len == len && at.key == key {
                return Some(at);
            }
            if at.len == FREE {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// A vector of `n` copies of `fill` whose pages are transparent huge pages
/// where the kernel allows (`madvise` mode); a hint only.
fn huge_vec<T: Copy>(n: usize, fill: T) -> Vec<T> {
    const HUGE: usize = 2 << 20;
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= 2 * HUGE {
        let start = v.as_ptr() as usize;
        let from = (start + HUGE - 1) & !(HUGE - 1);
        let to = (start + bytes) & !(HUGE - 1);
        if to > from {
            // SAFETY: advice on pages of an allocation we own and have not
            // touched yet; MADV_HUGEPAGE changes no contents.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(n, fill);
    v
}

/// What the index holds for one prefix.
pub(super) struct Found<'a> {
    pub prefix: Ipv6Net,
    pub verdict: Verdict,
    /// Indices of its statements, in the order given to [`PrefixIndex::build`].
    pub claims: &'a [u32],
}

/// One entry given to [`PrefixIndex::build`].
#[derive(Clone, Copy)]
pub(super) struct Item<'a> {
    pub prefix: Ipv6Net,
    pub verdict: Verdict,
    pub claims: &'a [u32],
}

/// Longest-prefix match over a set of prefixes (a later duplicate prefix
/// replaces an earlier one).
#[derive(Debug)]
pub(super) struct PrefixIndex {
    /// Lengths 0..=64, keyed by the network's upper 64 bits.
    short: Table<u64>,
    /// Lengths 65..=128.
    long: Table<u128>,
    /// Per /16 (the address's upper 16 bits): bit `len - 1` is set when an
    /// entry of length `len` (1..=128) covers part of it.
    lens: Vec<u128>,
    /// An entry of length 0 exists.
    default_route: bool,
    /// Statement lists of entries with more than one: a count, then the indices.
    refs: Vec<u32>,
}

impl PrefixIndex {
    pub fn build<'a>(items: impl ExactSizeIterator<Item = Item<'a>> + Clone) -> PrefixIndex {
        let seed = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5eed);
            h.finish()
        };
        let long_count = items.clone().filter(|i| i.prefix.prefix_len() > 64).count();
        let mut ix = PrefixIndex {
            short: Table::new(items.len() - long_count, seed),
            long: Table::new(long_count, seed),
            lens: vec![0; 1 << 16],
            default_route: false,
            refs: Vec::new(),
        };
        for it in items {
            let p = it.prefix.trunc();
            let len = p.prefix_len();
            let net = u128::from(p.network());
            let (claim, multi) = match it.claims {
                [] => (NO_CLAIM, false),
                [one] => (*one, false),
                many => {
                    let at = ix.refs.len() as u32;
                    ix.refs.push(many.len() as u32);
                    ix.refs.extend_from_slice(many);
                    (at, true)
                }
            };
            let deny = it.verdict == Verdict::Deny;
            if len <= 64 {
                ix.short.insert(Slot {
                    key: (net >> 64) as u64,
                    claim,
                    len,
                    deny,
                    multi,
                });
            } else {
                ix.long.insert(Slot {
                    key: net,
                    claim,
                    len,
                    deny,
                    multi,
                });
            }
            if len == 0 {
                ix.default_route = true;
                continue;
            }
            let bit = 1u128 << (len - 1);
            let first = (net >> 112) as usize;
            let count = 1usize << 16usize.saturating_sub(usize::from(len));
            for m in &mut ix.lens[first..first + count] {
                *m |= bit;
            }
        }
        ix
    }

    fn found<'a, K>(&'a self, s: &'a Slot<K>, prefix: Ipv6Net) -> Found<'a> {
        let claims = if s.multi {
            let at = s.claim as usize;
            let n = self.refs[at] as usize;
            &self.refs[at + 1..at + 1 + n]
        } else if s.claim == NO_CLAIM {
            &[]
        } else {
            std::slice::from_ref(&s.claim)
        };
        Found {
            prefix,
            verdict: if s.deny {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            claims,
        }
    }

    /// The longest prefix holding `addr`.
    #[inline]
    pub fn lookup(&self, addr: Ipv6Addr) -> Option<Found<'_>> {
        let bits = u128::from(addr);
        let mut lens = self.lens[(bits >> 112) as usize];
        while lens != 0 {
            let len = (128 - lens.leading_zeros()) as u8;
            lens &= !(1u128 << (len - 1));
            let net = bits & (u128::MAX << (128 - u32::from(len)));
            let prefix = Ipv6Net::new(Ipv6Addr::from(net), len).expect("len <= 128");
            if len > 64 {
                if let Some(s) = self.long.get(net, len) {
                    return Some(self.found(s, prefix));
                }
            } else if let Some(s) = self.short.get((net >> 64) as u64, len) {
                return Some(self.found(s, prefix));
            }
        }
        if self.default_route {
            let s = self
                .short
                .get(0, 0)
                .expect("the default route is in the table");
            let all = Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 0).expect("::/0");
            return Some(self.found(s, all));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_across_lengths_and_tables() {
        let ps = [
            ("::/0", Verdict::Allow, vec![]),
            ("2001:db8::/15", Verdict::Deny, vec![1]),
            ("2001:db8::/32", Verdict::Allow, vec![0, 2]),
            ("2001:db8:1::/48", Verdict::Allow, vec![3]),
            ("2001:db8:1:2::/64", Verdict::Deny, vec![]),
            ("2001:db8:1:2::80/121", Verdict::Allow, vec![4]),
            ("2001:db8:1:2::81/128", Verdict::Deny, vec![5, 6, 7]),
            // A later duplicate replaces.
            ("2001:db8:1::/48", Verdict::Allow, vec![8]),
        ];
        let items: Vec<_> = ps
            .iter()
            .map(|(p, v, c)| Item {
                prefix: p.parse().unwrap(),
                verdict: *v,
                claims: c,
            })
            .collect();
        let ix = PrefixIndex::build(items.into_iter());
        let m = |a: &str| {
            let f = ix.lookup(a.parse().unwrap()).unwrap();
            (f.prefix.to_string(), f.verdict, f.claims.to_vec())
        };
        let s = |p: &str, v, c: &[u32]| (p.to_string(), v, c.to_vec());
        assert_eq!(m("::1"), s("::/0", Verdict::Allow, &[]));
        assert_eq!(m("2000::1"), s("2000::/15", Verdict::Deny, &[1]));
        assert_eq!(m("2001:db9::1"), s("2000::/15", Verdict::Deny, &[1]));
        assert_eq!(
            m("2001:db8:9::1"),
            s("2001:db8::/32", Verdict::Allow, &[0, 2])
        );
        assert_eq!(
            m("2001:db8:1:3::1"),
            s("2001:db8:1::/48", Verdict::Allow, &[8])
        );
        assert_eq!(
            m("2001:db8:1:2::1"),
            s("2001:db8:1:2::/64", Verdict::Deny, &[])
        );
        assert_eq!(
            m("2001:db8:1:2::ff"),
            s("2001:db8:1:2::80/121", Verdict::Allow, &[4])
        );
        assert_eq!(
            m("2001:db8:1:2::81"),
            s("2001:db8:1:2::81/128", Verdict::Deny, &[5, 6, 7])
        );
        let empty = PrefixIndex::build(Vec::<Item>::new().into_iter());
        assert!(empty.lookup("2001:db8::1".parse().unwrap()).is_none());
    }
}
