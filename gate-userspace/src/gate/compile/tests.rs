//! The compiler against a naive longest match over the set: random sets with
//! every length, nesting, denies inside allows and busy /32s; the cuckoo table.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::*;
use crate::gate::compiled::{Live, Patch};
use crate::model::prefixes::PrefixEntry;
use gate_common::lookup as lk;

/// What the datapath answers for `addr` with copy `c` (a miss goes to the
/// LPM trie, which then can only match a prefix shorter than /32).
fn datapath(c: &Compiled, set: &PrefixSet, addr: Ipv6Addr) -> u32 {
    match lk::lookup(c, c.header.bucket_mask, &lk::words(&addr.octets())) {
        lk::Found::Verdict(v) => v,
        lk::Found::Miss if c.header.flags & HDR_SHORT == 0 => LV_NONE,
        lk::Found::Miss => {
            let e = set.lookup(addr);
            assert!(e.is_none_or(|e| e.prefix.prefix_len() < 32), "{addr}");
            e.map_or(LV_NONE, |e| lv(e.verdict))
        }
    }
}

fn naive(set: &PrefixSet, addr: Ipv6Addr) -> u32 {
    set.iter()
        .filter(|e| e.prefix.contains(&addr))
        .max_by_key(|e| e.prefix.prefix_len())
        .map_or(LV_NONE, |e| lv(e.verdict))
}

fn entry(addr: u128, len: u8, allow: bool) -> PrefixEntry {
    PrefixEntry {
        verdict: if allow { Verdict::Allow } else { Verdict::Deny },
        prefix: Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc(),
        label: String::new(),
    }
}

/// Random prefixes of every length, many nested in each other (children
/// drawn inside earlier prefixes), a third of them denies.
fn random_set(rng: &mut StdRng, n: usize, bases: &[u128]) -> PrefixSet {
    let mut set = PrefixSet::new();
    let mut made: Vec<(u128, u8)> = Vec::new();
    while set.len() < n {
        let (addr, len) = if !made.is_empty() && rng.gen_bool(0.6) {
            let (a, l) = made[rng.gen_range(0..made.len())];
            let len = rng.gen_range(l..=128);
            let free = u128::MAX.checked_shr(u32::from(l)).unwrap_or(0);
            (a | (rng.gen::<u128>() & free), len)
        } else {
            let base = bases[rng.gen_range(0..bases.len())];
            let len = rng.gen_range(0..=128);
            (base ^ (rng.gen::<u128>() >> rng.gen_range(0..128)), len)
        };
        let e = entry(addr, len, !rng.gen_bool(0.33));
        made.push((u128::from(e.prefix.network()), len));
        set.replace(e);
    }
    set
}

/// Addresses inside, at the edges of, and next to the set's prefixes.
fn probes(rng: &mut StdRng, set: &PrefixSet, n: usize) -> Vec<Ipv6Addr> {
    let nets: Vec<Ipv6Net> = set.iter().map(|e| e.prefix).collect();
    (0..n)
        .map(|i| {
            let p = nets[rng.gen_range(0..nets.len())];
            let a = u128::from(p.network());
            let len = u32::from(p.prefix_len());
            let free = u128::MAX.checked_shr(len).unwrap_or(0);
            Ipv6Addr::from(match i % 4 {
                0 => a,
                1 => a | free,
                2 => a | (rng.gen::<u128>() & free),
                _ => a ^ (1u128 << rng.gen_range(0..128)),
            })
        })
        .collect()
}

fn check(set: &PrefixSet, rng: &mut StdRng, n: usize) -> Compiled {
    let c = compile(set, &Capacity::for_prefixes(set.len() * 40)).unwrap();
    for addr in probes(rng, set, n) {
        assert_eq!(
            datapath(&c, set, addr),
            naive(set, addr),
            "{addr} in {set:?}"
        );
    }
    c
}

#[test]
fn random_sets_of_every_length_match_a_naive_longest_match() {
    let mut rng = StdRng::seed_from_u64(12);
    let bases = [0x2001_0db8u128 << 96, 0x2a00_1450u128 << 96, 0];
    for round in 0..200 {
        let n = 1 + round % 60;
        let set = random_set(&mut rng, n, &bases);
        check(&set, &mut rng, 400);
    }
}

#[test]
fn a_busy_slash32_gets_a_trie_with_denies_inside_allows() {
    let mut rng = StdRng::seed_from_u64(7);
    let base = 0x2001_0db8u128 << 96;
    let mut set = PrefixSet::new();
    set.replace(entry(base, 32, true));
    for _ in 0..3000 {
        let len = rng.gen_range(33..=128u8);
        let a = base | (rng.gen::<u128>() >> 32 >> rng.gen_range(0..40));
        set.replace(entry(a, len, rng.gen_bool(0.5)));
    }
    // Nested denies and allows deep down, and a short prefix above.
    set.replace(entry(base | 0xffff, 112, false));
    set.replace(entry(base | 0xff00, 120, true));
    set.replace(entry(base | 0xff01, 128, false));
    set.replace(entry(0x2000u128 << 112, 12, false));
    let c = check(&set, &mut rng, 4_000);
    assert!(c.nodes.len() > 100, "{} nodes", c.nodes.len());
    assert_eq!(c.header.groups, 1);
    assert_ne!(c.header.flags & HDR_SHORT, 0);
}

#[test]
fn whole_slash32s_short_prefixes_and_lists() {
    let set = PrefixSet::parse(
        "allow ::/0 all\n\
         deny 2001:db8::/32 x\n\
         allow 2001:db8:1::/48 y\n\
         deny 2001:db8:1:2::/64 z\n\
         allow 2001:db9::/32 w\n\
         deny 2001:dc0::/27 v\n\
         allow 2001:dc0:1::/48 u\n",
        "t",
    )
    .unwrap();
    let c = compile(&set, &Capacity::default()).unwrap();
    let v = |a: &str| datapath(&c, &set, a.parse().unwrap());
    assert_eq!(v("2001:db8::1"), LV_DENY);
    assert_eq!(v("2001:db8:1::1"), LV_ALLOW);
    assert_eq!(v("2001:db8:1:2::1"), LV_DENY);
    assert_eq!(v("2001:db9::1"), LV_ALLOW);
    assert_eq!(v("2001:dc0:1::1"), LV_ALLOW);
    // The /27's deny is pushed into the /32 group holding the /48.
    assert_eq!(v("2001:dc0:2::1"), LV_DENY);
    // No group: the LPM trie answers (the /27, then ::/0).
    assert_eq!(v("2001:dc1::1"), LV_DENY);
    assert_eq!(v("3000::1"), LV_ALLOW);
    assert_eq!(c.header.groups, 3);
    assert_eq!(c.lists.len(), 3);
    assert!(c.nodes.is_empty());
}

#[test]
fn the_empty_set_compiles_to_a_table_that_matches_nothing() {
    let c = compile(&PrefixSet::new(), &Capacity::default()).unwrap();
    assert_eq!(c.header.flags, HDR_VALID);
    assert_eq!(
        lk::lookup(&c, c.header.bucket_mask, &lk::words(&[0x20; 16])),
        lk::Found::Miss
    );
}

#[test]
fn a_set_too_large_for_the_capacity_is_refused() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut set = PrefixSet::new();
    while set.len() < 5000 {
        set.replace(entry(rng.gen::<u128>(), 48, true));
    }
    let small = Capacity {
        buckets: 64,
        ..Capacity::default()
    };
    assert!(matches!(
        compile(&set, &small),
        Err(CompileError::Full {
            what: "cuckoo buckets",
            ..
        })
    ));
    assert!(compile(&set, &Capacity::for_prefixes(5000)).is_ok());
}

#[test]
fn the_cuckoo_table_moves_keys_to_make_room() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut t = Table::new(128);
    let keys: Vec<u32> = (0..128 * 8 * 9 / 10).map(|_| rng.gen()).collect();
    let mut held = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if held.contains(k) {
            continue;
        }
        assert!(t.insert(*k, i as u32 + 1), "90% full at key {i}");
        held.push(*k);
    }
    // Every key is in one of its two buckets, with its value (moves kept
    // the pairs together).
    let store = Compiled {
        buckets: t.buckets.clone(),
        ..Compiled::default()
    };
    for k in &held {
        let i = keys.iter().position(|x| x == k).unwrap() as u32 + 1;
        assert_eq!(lk::find_slot(&store, 127, *k), i);
    }
}

/// A kernel copy as the writer sees it: a [`Compiled`] with arrays of the
/// capacity's size, changed only through patches.
struct SimCopy(Compiled);

impl SimCopy {
    fn new(cap: &Capacity) -> SimCopy {
        SimCopy(Compiled {
            header: LookupHeader::default(),
            buckets: vec![Bucket::default(); cap.buckets as usize],
            lists: vec![ListEntry::default(); cap.lists as usize],
            nodes: vec![Node::default(); cap.nodes as usize],
            leaves: vec![0; cap.leaf_words as usize],
        })
    }

    fn write(&mut self, live: &Live, p: &Patch) {
        match &p.buckets {
            None => self.0.buckets[..live.buckets().len()].copy_from_slice(live.buckets()),
            Some(d) => {
                for i in d.iter().map(|i| *i as usize) {
                    self.0.buckets[i] = live.buckets()[i];
                }
            }
        }
        let n = live.lists().len();
        self.0.lists[p.lists_from..n].copy_from_slice(&live.lists()[p.lists_from..]);
        let n = live.nodes().len();
        self.0.nodes[p.nodes_from..n].copy_from_slice(&live.nodes()[p.nodes_from..]);
        let n = live.leaves().len();
        self.0.leaves[p.leaves_from..n].copy_from_slice(&live.leaves()[p.leaves_from..]);
        self.0.header = live.header();
    }
}

#[test]
fn updates_recompile_only_touched_groups_and_patches_keep_a_copy_right() {
    let mut rng = StdRng::seed_from_u64(99);
    let bases = [0x2001_0db8u128 << 96, 0x2a00_1450u128 << 96];
    let cap = Capacity::for_prefixes(6_000);
    let mut set = random_set(&mut rng, 400, &bases);
    let mut live = Live::build(&set, &cap).unwrap();
    // Two copies, as the gate keeps them: each gets every patch.
    let mut copies = [SimCopy::new(&cap), SimCopy::new(&cap)];
    for c in &mut copies {
        c.write(&live, &Patch::full());
    }
    let (mut by_group, mut whole) = (0, 0);
    for round in 0..150 {
        let nets: Vec<Ipv6Net> = set.iter().map(|e| e.prefix).collect();
        let mut next = set.clone();
        let mut changed = Vec::new();
        for _ in 0..rng.gen_range(1..12) {
            let p = nets[rng.gen_range(0..nets.len())];
            if rng.gen_bool(0.4) {
                next.remove(&p);
                changed.push(p);
            } else {
                let a = u128::from(p.network());
                let l = p.prefix_len().max(if round % 10 == 0 { 0 } else { 32 });
                let free = u128::MAX.checked_shr(u32::from(l)).unwrap_or(0);
                let e = entry(
                    a | (rng.gen::<u128>() & free),
                    rng.gen_range(l..=128),
                    rng.gen_bool(0.6),
                );
                changed.push(e.prefix);
                next.replace(e);
            }
        }
        let patch = match live.apply(&next, &changed) {
            Ok(p) => {
                by_group += 1;
                p
            }
            Err(_) => {
                whole += 1;
                live = Live::build(&next, &cap).unwrap();
                Patch::full()
            }
        };
        for c in &mut copies {
            c.write(&live, &patch);
        }
        set = next;
        for addr in probes(&mut rng, &set, 300) {
            let want = naive(&set, addr);
            for c in &copies {
                assert_eq!(datapath(&c.0, &set, addr), want, "round {round}: {addr}");
            }
        }
    }
    assert!(
        by_group > 50 && whole > 5,
        "{by_group} by group, {whole} whole"
    );
}
