//! Differential test of the compiled lookup: SYNs from addresses in and around
//! hard random sets, through the real XDP program, against the reference.
//!
//! The sets hold every prefix length from /0 to /128, nesting, denies inside
//! allows and busy /32s (tries); then random diffs are applied one after
//! another, each checked, and the compiled copy is checked to be in force.

use std::net::Ipv6Addr;

use gate_common::lookup::{HDR_SHORT, HDR_VALID};
use integration_tests::{packet::Builder, packet::SYN, reference, PinnedGate};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use wotgate::{
    gate::{compile::Capacity, swap::Changes, Settings},
    model::prefixes::{PrefixEntry, PrefixSet, Verdict},
};

fn seed() -> u64 {
    std::env::var("WOTGATE_DIFF_SEED")
        .ok()
        .map(|s| s.trim().parse().expect("WOTGATE_DIFF_SEED: a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

fn entry(rng: &mut StdRng, addr: u128, len: u8, i: usize) -> PrefixEntry {
    PrefixEntry {
        verdict: if rng.gen_bool(0.6) {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        prefix: Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc(),
        label: format!("p{i}"),
    }
}

/// A prefix inside `outer` (or anywhere near the bases), of a length at
/// least the outer's.
fn inside(rng: &mut StdRng, outer: (u128, u8)) -> (u128, u8) {
    let (a, l) = outer;
    let len = rng.gen_range(l..=128);
    let free = u128::MAX.checked_shr(u32::from(l)).unwrap_or(0);
    (a | (rng.gen::<u128>() & free), len)
}

/// Every length /0-/128 at least once, half the rest nested in earlier
/// prefixes (a denial inside an allow, an allow inside that...), and two
/// busy /32s of `busy` prefixes each.
fn hard_set(rng: &mut StdRng, n: usize, busy: usize) -> PrefixSet {
    let bases: [u128; 3] = [0x2001_0db8 << 96, 0x2a00_1450 << 96, 0x2001_0db9 << 96];
    let mut set = PrefixSet::new();
    let mut made: Vec<(u128, u8)> = Vec::new();
    let add = |set: &mut PrefixSet, made: &mut Vec<(u128, u8)>, rng: &mut StdRng, a, len| {
        let e = entry(rng, a, len, made.len());
        made.push((u128::from(e.prefix.network()), len));
        set.replace(e);
    };
    for len in 0..=128u8 {
        let base = *bases.choose(rng).unwrap();
        let a = base ^ (rng.gen::<u128>() >> rng.gen_range(0..=128u32).min(127));
        add(&mut set, &mut made, rng, a, len);
    }
    for b in &bases[..2] {
        add(&mut set, &mut made, rng, *b, 32);
        for _ in 0..busy {
            let (a, l) = inside(rng, (*b, 32));
            add(&mut set, &mut made, rng, a, l.max(33));
        }
    }
    while set.len() < n {
        let outer = if rng.gen_bool(0.5) {
            *made.choose(rng).unwrap()
        } else {
            (*bases.choose(rng).unwrap(), rng.gen_range(16..=48))
        };
        let (a, l) = inside(rng, outer);
        add(&mut set, &mut made, rng, a, l);
    }
    set
}

/// An address inside, at the edges of or just outside a prefix of `nets`.
fn source(rng: &mut StdRng, nets: &[Ipv6Net]) -> Ipv6Addr {
    if rng.gen_bool(0.05) {
        return Ipv6Addr::from(rng.gen::<u128>());
    }
    let n = nets.choose(rng).unwrap();
    let lo = u128::from(n.network());
    let hi = u128::from(n.broadcast());
    Ipv6Addr::from(match rng.gen_range(0..6) {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1),
        3 => hi.wrapping_add(1),
        4 => (lo | (rng.gen::<u128>() & (hi - lo))) ^ (1u128 << rng.gen_range(0..128)),
        _ => lo | (rng.gen::<u128>() & (hi - lo)),
    })
}

/// Runs `packets` SYNs to port 25 through the kernel and the reference;
/// returns the number of disagreements (the first few printed).
fn check(pg: &mut PinnedGate, set: &PrefixSet, rng: &mut StdRng, packets: usize, what: &str) {
    let gate = pg.gate();
    let header = gate.lookup_header(gate.active_trie().unwrap()).unwrap();
    assert_ne!(
        header.flags & HDR_VALID,
        0,
        "{what}: compiled copy in force"
    );
    let has_short = set.iter().any(|e| e.prefix.prefix_len() < 32);
    assert_eq!(header.flags & HDR_SHORT != 0, has_short, "{what}");
    let cfg = gate.settings().unwrap();
    let nets: Vec<Ipv6Net> = set.iter().map(|e| e.prefix).collect();
    let mut r = gate.runner().unwrap();
    let mut bad = 0;
    for _ in 0..packets {
        let src = source(rng, &nets);
        let p =
            Builder::ipv6_tcp(src, "2001:db8:ffff::25".parse().unwrap(), 40000, 25, SYN).build();
        let kernel = r.run(&p).unwrap();
        let want = reference::classify(&p, &cfg, set);
        if kernel != want {
            bad += 1;
            if bad <= 10 {
                eprintln!(
                    "DISAGREEMENT {what}: {src}: kernel {:?}, reference {:?} (longest match {:?})",
                    kernel.reason,
                    want.reason,
                    set.lookup(src).map(|e| e.prefix)
                );
            }
        }
    }
    assert_eq!(bad, 0, "{what}: {bad} of {packets} disagreements");
}

#[test]
fn compiled_lookup_agrees_with_reference_across_sets_and_diffs() {
    let seed = seed();
    println!("differential_lookup: seed {seed} (WOTGATE_DIFF_SEED={seed} repeats it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pg = PinnedGate::with_capacity("difflk", &Capacity::for_prefixes(400_000));
    pg.gate().set_settings(&Settings::default()).unwrap();
    for (n, busy) in [(300, 10), (3000, 1500), (8000, 3000)] {
        let set = hard_set(&mut rng, n, busy);
        let r = pg.gate().load_set(&set).unwrap();
        let h = pg.gate().lookup_header(r.trie).unwrap();
        println!("set of {n}: {h:?}");
        assert_eq!(r.lookup, "compiled");
        check(&mut pg, &set, &mut rng, 6000, &format!("set of {n}"));
    }
    // Random diffs one after another, from a set without short prefixes
    // to one with them and back.
    let mut set = hard_set(&mut rng, 2000, 800);
    pg.gate().load_set(&set).unwrap();
    let mut by_groups = 0;
    for round in 0..12 {
        let mut c = Changes::new();
        let nets: Vec<Ipv6Net> = set.iter().map(|e| e.prefix).collect();
        let mut next = set.clone();
        for _ in 0..rng.gen_range(1..40) {
            if rng.gen_bool(0.4) {
                let p = *nets.choose(&mut rng).unwrap();
                c.remove(p);
                next.remove(&p);
            } else {
                let outer = *nets.choose(&mut rng).unwrap();
                let (a, l) = inside(&mut rng, (u128::from(outer.network()), outer.prefix_len()));
                let e = entry(&mut rng, a, l, 100_000 + round);
                c.upsert(e.clone());
                next.replace(e);
            }
        }
        let r = pg.gate().apply_changes(&c).unwrap();
        assert_eq!(r.lookup, "compiled");
        // Only the touched /32 groups, unless a prefix under /32 changed.
        by_groups += usize::from(r.recompiled == "groups");
        set = next;
        assert_eq!(pg.gate().loaded_set().unwrap(), &set);
        check(&mut pg, &set, &mut rng, 1500, &format!("diff {round}"));
    }
    assert!(by_groups > 0, "no diff was applied group by group");
}
