//! Differential test: random structured and mutated frames through the real
//! XDP program (BPF_PROG_TEST_RUN) must get exactly the reference's verdict.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use aya::maps::{Map, MapData, PerCpuArray};
use gate_common::{maps, Reason, REASON_COUNT};
use integration_tests::{
    packet::{Builder, Ext, ACK, SYN},
    reference, PinnedGate,
};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use wotgate::{
    gate::{
        replay::{action_str, Outcome},
        Settings,
    },
    model::prefixes::{PrefixEntry, PrefixSet, Verdict},
};

/// Packets run by default (override with `WOTGATE_DIFF_PACKETS`).
const DEFAULT_PACKETS: usize = 120_000;
/// Packets per configuration phase; the gate is reconfigured between phases.
const PER_PHASE: usize = 10_000;
/// Largest frame generated: past a jumbo-free MTU, under the ~3.5 KiB a
/// test run takes in one page.
const MAX_FRAME: usize = 3000;
/// Disagreements printed in full before only counting the rest.
const MAX_REPORTED: usize = 20;

const EXT_TYPES: [u8; 5] = [0, 43, 60, 44, 51];

fn seed() -> u64 {
    match std::env::var("WOTGATE_DIFF_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .expect("WOTGATE_DIFF_SEED must be an unsigned integer"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    }
}

fn packets() -> usize {
    std::env::var("WOTGATE_DIFF_PACKETS")
        .ok()
        .map(|s| s.trim().parse().expect("WOTGATE_DIFF_PACKETS: a number"))
        .unwrap_or(DEFAULT_PACKETS)
}

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

/// The gate-wide settings the phases cycle through.
fn configs() -> Vec<Settings> {
    vec![
        Settings::default(),
        Settings {
            ports: vec![25, 465, 587],
            observe: true,
            protect: vec![],
        },
        Settings {
            ports: vec![25],
            observe: false,
            protect: vec![net("2001:db8:ffff::/48"), net("2001:db8:ee::25/128")],
        },
        Settings {
            ports: vec![1, 25, 465, 587, 2525, 8025, 10025, 65535],
            observe: true,
            protect: vec![net("2001:db8:ffff::/48"), net("2001:db8:1::/64")],
        },
        Settings {
            ports: vec![25, 587],
            observe: false,
            protect: vec![net("::/0")],
        },
        Settings {
            ports: vec![2525],
            observe: false,
            protect: vec![],
        },
    ]
}

/// The trusted sets the phases cycle through: nested allow/deny, default
/// allow, empty, and a random nest under 2001:db8::/32.
fn sets(rng: &mut StdRng) -> Vec<PrefixSet> {
    let nested = PrefixSet::parse(
        "allow 2001:db8:1::/48 a\n\
         deny 2001:db8:1:bad::/64 d\n\
         allow 2001:db8:1:bad:1::/80 a2\n\
         deny 2001:db8:1:bad:1:dead::/96 d2\n\
         allow 2001:db8:100::1/128 host\n\
         deny 2001:db8:200::/40 d3\n\
         allow 2001:db8:2ff::/48 a3\n\
         allow 2001:db8:ffff:1::/64 a4\n",
        "nested",
    )
    .unwrap();
    let default_allow = PrefixSet::parse(
        "allow ::/0 everyone\ndeny 2001:db8:bad::/48 bad\ndeny 2001:db8:ffff::/48 bad2\n",
        "default-allow",
    )
    .unwrap();
    let mut random = PrefixSet::new();
    let base: u128 = 0x2001_0db8 << 96;
    let mut anchors: Vec<u128> = vec![base];
    for i in 0..200 {
        // Half the prefixes nest around earlier ones.
        let around = *anchors.choose(rng).unwrap();
        let len: u8 = rng.gen_range(32..=128);
        let bits: u128 = if rng.gen_bool(0.5) {
            around ^ (rng.gen::<u128>() >> rng.gen_range(32..128))
        } else {
            base | (rng.gen::<u128>() >> 32)
        };
        let p = Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap().trunc();
        anchors.push(bits);
        let verdict = if rng.gen_bool(0.5) {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let _ = random.insert(PrefixEntry {
            verdict,
            prefix: p,
            label: format!("r{i}"),
        });
    }
    vec![nested, default_allow, PrefixSet::new(), random]
}

/// Addresses worth trying against a list of prefixes: inside, at the edges,
/// just outside, and anywhere.
struct Pool {
    nets: Vec<Ipv6Net>,
}

impl Pool {
    fn pick(&self, rng: &mut StdRng) -> Ipv6Addr {
        let fixed = [
            "2001:db8:1::5",
            "2001:db8:2::5",
            "2001:db8:ffff::25",
            "2001:db8:1:bad::1",
            "::",
            "::1",
        ];
        if self.nets.is_empty() || rng.gen_bool(0.15) {
            if rng.gen_bool(0.5) {
                return fixed.choose(rng).unwrap().parse().unwrap();
            }
            return Ipv6Addr::from(rng.gen::<u128>());
        }
        let n = self.nets.choose(rng).unwrap();
        let lo = u128::from(n.network());
        let hi = u128::from(n.broadcast());
        let v = match rng.gen_range(0..10) {
            0 => lo,
            1 => hi,
            2 => lo.wrapping_sub(1),
            3 => hi.wrapping_add(1),
            // Flip one bit of an inside address: sometimes still inside.
            4 => (lo | (rng.gen::<u128>() & (hi - lo))) ^ (1u128 << rng.gen_range(0..128)),
            _ => lo | (rng.gen::<u128>() & (hi - lo)),
        };
        Ipv6Addr::from(v)
    }
}

/// What one phase generates for.
struct Phase {
    ports: Vec<u16>,
    src: Pool,
    dst: Pool,
}

impl Phase {
    fn port(&self, rng: &mut StdRng) -> u16 {
        let p = *self.ports.choose(rng).unwrap();
        match rng.gen_range(0..20) {
            0..=13 => p,
            14 => p.wrapping_add(1),
            15 => p.wrapping_sub(1),
            16 => p.swap_bytes(),
            17 => *[25u16, 80, 443, 465, 587].choose(rng).unwrap(),
            _ => rng.gen(),
        }
    }

    fn flags(&self, rng: &mut StdRng) -> u8 {
        match rng.gen_range(0..20) {
            0..=8 => SYN,
            9..=10 => SYN | ACK,
            11 => ACK,
            12..=13 => SYN | (rng.gen::<u8>() & !ACK),
            _ => rng.gen(),
        }
    }
}

fn push16(p: &mut Vec<u8>, v: u16) {
    p.extend_from_slice(&v.to_be_bytes());
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen()).collect()
}

/// Between 0 and `max - 1` random bytes.
fn random_upto(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..max);
    random_bytes(rng, n)
}

/// A TCP header (with random options sometimes), or a few bytes of it.
fn tcp(rng: &mut StdRng, ph: &Phase, p: &mut Vec<u8>) {
    let mut t = random_bytes(rng, 20);
    t[0..2].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
    t[2..4].copy_from_slice(&ph.port(rng).to_be_bytes());
    let opts = if rng.gen_bool(0.2) {
        rng.gen_range(1..=10) * 4
    } else {
        0
    };
    t[12] = if rng.gen_bool(0.9) {
        ((5 + opts / 4) as u8) << 4
    } else {
        rng.gen()
    };
    t[13] = ph.flags(rng);
    p.extend(t);
    p.extend(random_bytes(rng, opts));
    if rng.gen_bool(0.1) {
        p.extend(random_upto(rng, 64));
    }
}

/// A transport header after IPv6 or IPv4 for protocol `proto`.
fn l4(rng: &mut StdRng, ph: &Phase, proto: u8, p: &mut Vec<u8>) {
    match proto {
        6 => tcp(rng, ph, p),
        17 => {
            push16(p, rng.gen());
            push16(p, ph.port(rng));
            p.extend(random_upto(rng, 32 + 4));
        }
        58 => {
            let kinds = [128u8, 129, 133, 134, 135, 136, 137, 1];
            p.push(if rng.gen_bool(0.8) {
                *kinds.choose(rng).unwrap()
            } else {
                rng.gen()
            });
            p.extend(random_bytes(rng, 23));
        }
        _ => p.extend(random_upto(rng, 48)),
    }
}

fn final_proto(rng: &mut StdRng) -> u8 {
    match rng.gen_range(0..20) {
        0..=11 => 6,
        12..=13 => 17,
        14..=15 => 58,
        16 => *[50u8, 59].choose(rng).unwrap(),
        _ => rng.gen(),
    }
}

fn ipv6(rng: &mut StdRng, ph: &Phase, p: &mut Vec<u8>) {
    let n = match rng.gen_range(0..10) {
        0..=3 => 0,
        4..=6 => rng.gen_range(1..=10),
        _ => rng.gen_range(7..=10),
    };
    let chain: Vec<u8> = (0..n).map(|_| *EXT_TYPES.choose(rng).unwrap()).collect();
    let last = final_proto(rng);
    let next_of = |i: usize| chain.get(i).copied().unwrap_or(last);
    let mut h = random_bytes(rng, 40);
    if rng.gen_bool(0.95) {
        h[0] = 0x60 | (h[0] & 0x0F);
    }
    h[6] = next_of(0);
    h[8..24].copy_from_slice(&ph.src.pick(rng).octets());
    h[24..40].copy_from_slice(&ph.dst.pick(rng).octets());
    p.extend(h);
    for (i, &kind) in chain.iter().enumerate() {
        let next = next_of(i + 1);
        if kind == 44 {
            let mut f = random_bytes(rng, 8);
            f[0] = next;
            let off: u16 = match rng.gen_range(0..10) {
                0..=5 => 0,
                6 => 1,
                _ => rng.gen_range(0..0x2000),
            };
            f[2..4].copy_from_slice(&((off << 3) | (rng.gen::<u16>() & 7)).to_be_bytes());
            p.extend(f);
        } else {
            let len: u8 = match rng.gen_range(0..12) {
                0..=5 => 0,
                6..=9 => rng.gen_range(1..=4),
                10 => rng.gen_range(16..=60),
                _ => rng.gen(),
            };
            let size = if kind == 51 {
                (usize::from(len) + 2) * 4
            } else {
                (usize::from(len) + 1) * 8
            };
            let mut e = random_bytes(rng, size);
            e[0] = next;
            e[1] = len;
            p.extend(e);
        }
        if p.len() > MAX_FRAME {
            return;
        }
    }
    l4(rng, ph, last, p);
}

fn ipv4(rng: &mut StdRng, ph: &Phase, p: &mut Vec<u8>) {
    let mut h = random_bytes(rng, 20);
    h[0] = match rng.gen_range(0..10) {
        0..=7 => 0x45,
        8 => 0x40 | rng.gen_range(0..16),
        _ => rng.gen(),
    };
    let frag: u16 = match rng.gen_range(0..10) {
        0..=5 => 0,
        6..=7 => 0x4000,
        _ => rng.gen(),
    };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[9] = if rng.gen_bool(0.8) { 6 } else { rng.gen() };
    let proto = h[9];
    let ihl = usize::from(h[0] & 0x0F) * 4;
    p.extend(h);
    if ihl > 20 {
        p.extend(random_bytes(rng, ihl - 20));
    }
    l4(rng, ph, proto, p);
}

/// A random frame built layer by layer.
fn structured(rng: &mut StdRng, ph: &Phase) -> Vec<u8> {
    let mut p = random_bytes(rng, 12);
    let tags = match rng.gen_range(0..10) {
        0..=4 => 0,
        5..=6 => 1,
        7..=8 => 2,
        _ => 3,
    };
    for _ in 0..tags {
        let tpid = match rng.gen_range(0..20) {
            0..=9 => 0x8100,
            10..=18 => 0x88A8,
            _ => rng.gen(),
        };
        push16(&mut p, tpid);
        push16(&mut p, rng.gen());
    }
    match rng.gen_range(0..20) {
        0..=10 => {
            push16(&mut p, 0x86DD);
            ipv6(rng, ph, &mut p);
        }
        11..=15 => {
            push16(&mut p, 0x0800);
            ipv4(rng, ph, &mut p);
        }
        16 => {
            push16(&mut p, 0x0806);
            p.extend(random_bytes(rng, 28));
        }
        17 => {
            // A VLAN TPID where the payload type belongs.
            push16(&mut p, *[0x8100u16, 0x88A8].choose(rng).unwrap());
            push16(&mut p, rng.gen());
            push16(&mut p, 0x86DD);
            ipv6(rng, ph, &mut p);
        }
        _ => {
            push16(&mut p, rng.gen());
            p.extend(random_upto(rng, 80));
        }
    }
    if rng.gen_bool(0.1) {
        let n = rng.gen_range(14..=p.len());
        p.truncate(n);
    }
    p.truncate(MAX_FRAME);
    p
}

/// A well-formed SYN (mostly IPv6, sometimes IPv4) for the mutations.
fn valid_syn(rng: &mut StdRng, ph: &Phase) -> Vec<u8> {
    let mut b = if rng.gen_bool(0.85) {
        let mut b = Builder::ipv6_tcp(
            ph.src.pick(rng),
            ph.dst.pick(rng),
            rng.gen(),
            *ph.ports.choose(rng).unwrap(),
            SYN,
        );
        let n = match rng.gen_range(0..4) {
            0..=1 => 0,
            2 => rng.gen_range(1..=3),
            _ => rng.gen_range(6..=9),
        };
        for _ in 0..n {
            let e = match rng.gen_range(0..5) {
                0 => Ext::HopByHop,
                1 => Ext::Routing,
                2 => Ext::DestOpts,
                3 => Ext::Ah,
                _ => Ext::Fragment {
                    offset: if rng.gen_bool(0.8) { 0 } else { 1 },
                },
            };
            b = b.ext(e);
        }
        b
    } else {
        Builder::ipv4_tcp(
            Ipv4Addr::from(rng.gen::<u32>()),
            Ipv4Addr::from(rng.gen::<u32>()),
            rng.gen(),
            *ph.ports.choose(rng).unwrap(),
            SYN,
        )
    };
    for _ in 0..rng.gen_range(0..=2) {
        b = b.vlan(rng.gen());
    }
    b.build()
}

/// An IPv6 SYN from the phase's pools behind `exts` raw extension headers,
/// each given as (type, length field); bodies are random, links are right.
fn syn_behind(rng: &mut StdRng, ph: &Phase, exts: &[(u8, u8)]) -> Vec<u8> {
    let mut b = Builder::ipv6_tcp(
        ph.src.pick(rng),
        ph.dst.pick(rng),
        rng.gen(),
        *ph.ports.choose(rng).unwrap(),
        SYN,
    );
    let tags = rng.gen_range(0..=2);
    for _ in 0..tags {
        b = b.vlan(rng.gen());
    }
    let mut p = b.build();
    let ip = 14 + 4 * tags;
    let mut chain = Vec::new();
    for (i, &(kind, len)) in exts.iter().enumerate() {
        let size = match kind {
            44 => 8,
            51 => (usize::from(len) + 2) * 4,
            _ => (usize::from(len) + 1) * 8,
        };
        let mut h = random_bytes(rng, size);
        h[0] = exts.get(i + 1).map_or(6, |e| e.0);
        if kind == 44 {
            h[2] = 0;
            h[3] &= 7;
        } else {
            h[1] = len;
        }
        chain.extend(h);
    }
    if let Some(first) = exts.first() {
        p[ip + 6] = first.0;
    }
    p.splice(ip + 40..ip + 40, chain);
    p
}

/// SYNs at every offset one Destination Options or AH header can put them
/// at, and long valid chains of up to nine headers with random lengths.
fn offset_sweep(rng: &mut StdRng, ph: &Phase) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in 0..=255u8 {
        out.push(syn_behind(rng, ph, &[(60, len)]));
        out.push(syn_behind(rng, ph, &[(51, len)]));
    }
    for _ in 0..200 {
        let n = rng.gen_range(6..=9);
        let mut exts = Vec::new();
        let mut total = 0;
        for _ in 0..n {
            let kind = *EXT_TYPES.choose(rng).unwrap();
            let len = if total < 2_000 {
                rng.gen_range(0..40u8)
            } else {
                0
            };
            total += usize::from(len) * 8 + 8;
            exts.push((kind, len));
        }
        out.push(syn_behind(rng, ph, &exts));
    }
    out
}

/// One random mutation: bit flips, byte insertions or a deletion.
fn mutate(rng: &mut StdRng, mut p: Vec<u8>) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0..=4 => {
            for _ in 0..rng.gen_range(1..=3) {
                let i = rng.gen_range(0..p.len());
                p[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        5..=7 => {
            for _ in 0..rng.gen_range(1..=4) {
                let i = rng.gen_range(0..=p.len());
                p.insert(i, rng.gen());
            }
        }
        8 => {
            let i = rng.gen_range(0..p.len());
            let n = rng.gen_range(1..=8).min(p.len() - i);
            p.drain(i..i + n);
        }
        _ => {
            let i = rng.gen_range(0..p.len());
            p[i] = rng.gen();
        }
    }
    if p.len() < 14 {
        p.resize(14, 0);
    }
    p
}

fn is_observe_breakdown(r: Reason) -> bool {
    matches!(
        r,
        Reason::ObserveUntrusted
            | Reason::ObserveDenied
            | Reason::ObserveNonIpv6
            | Reason::ObserveMalformed
    )
}

/// The test-run counter bank, per reason, summed over CPUs.
fn test_bank(pg: &PinnedGate) -> Vec<u64> {
    let data = MapData::from_pin(pg.path().join(maps::COUNTERS)).unwrap();
    let arr: PerCpuArray<MapData, u64> = Map::PerCpuArray(data).try_into().unwrap();
    (0..REASON_COUNT)
        .map(|i| arr.get(&(REASON_COUNT + i), 0).unwrap().iter().sum())
        .collect()
}

fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

fn show(o: &Outcome) -> String {
    format!("{} {}", action_str(o.action), o.reason.name())
}

#[test]
fn kernel_agrees_with_reference() {
    let seed = seed();
    let total = packets();
    println!("differential: seed {seed} (set WOTGATE_DIFF_SEED={seed} to repeat), {total} packets");
    let mut rng = StdRng::seed_from_u64(seed);
    let configs = configs();
    let sets = sets(&mut rng);
    let mut pg = PinnedGate::new("diff");
    let mut tally: BTreeMap<Reason, u64> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bad = 0usize;
    let mut run = 0usize;
    let started = Instant::now();
    let phases = total.div_ceil(PER_PHASE);
    for phase in 0..phases {
        let cfg = &configs[phase % configs.len()];
        let set = &sets[phase % sets.len()];
        pg.gate().set_settings(cfg).unwrap();
        let loaded = pg.gate().load_set(set).unwrap();
        // The compiled lookup answers (not the LPM trie behind it).
        assert_eq!(loaded.lookup, "compiled");
        let ph = Phase {
            ports: cfg.ports.clone(),
            src: Pool {
                nets: set.iter().map(|e| e.prefix).collect(),
            },
            dst: Pool {
                nets: cfg
                    .protect
                    .iter()
                    .copied()
                    .chain([net("2001:db8:ffff::/48")])
                    .collect(),
            },
        };
        let want = (total - run).min(PER_PHASE);
        // Build this phase's packets first, then run them.
        let mut batch: Vec<(&str, Vec<u8>)> = Vec::with_capacity(want);
        // Every single-bit flip of one valid SYN.
        let base = valid_syn(&mut rng, &ph);
        for bit in 0..base.len() * 8 {
            let mut p = base.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            batch.push(("bitflip-sweep", p));
        }
        batch.extend(
            offset_sweep(&mut rng, &ph)
                .into_iter()
                .map(|p| ("offset-sweep", p)),
        );
        // Every truncation of a few valid SYNs (under 14 bytes the kernel
        // refuses the test run: the reference alone must say pass there).
        while batch.len() < 3_000 {
            let base = valid_syn(&mut rng, &ph);
            for n in 0..base.len() {
                if n < 14 {
                    let r = reference::classify(&base[..n], cfg, set);
                    assert_eq!(r.reason, Reason::OtherPass, "{}", hex(&base[..n]));
                } else {
                    batch.push(("truncation", base[..n].to_vec()));
                }
            }
        }
        while batch.len() < 6_000 {
            let base = valid_syn(&mut rng, &ph);
            batch.push(("mutation", mutate(&mut rng, base)));
        }
        while batch.len() < want {
            batch.push(("structured", structured(&mut rng, &ph)));
        }
        batch.truncate(want);
        let bank_before = test_bank(&pg);
        let mut observed = 0u64;
        let mut phase_tally = [0u64; REASON_COUNT as usize];
        let mut r = pg.gate().runner().unwrap();
        for (kind, p) in &batch {
            let kernel = r
                .run(p)
                .unwrap_or_else(|e| panic!("seed {seed}: test run of {} failed: {e}", hex(p)));
            let refr = reference::classify(p, cfg, set);
            *tally.entry(kernel.reason).or_default() += 1;
            phase_tally[kernel.reason as usize] += 1;
            *kinds.entry(kind).or_default() += 1;
            observed += u64::from(is_observe_breakdown(refr.reason));
            if kernel != refr {
                bad += 1;
                if bad <= MAX_REPORTED {
                    eprintln!(
                        "DISAGREEMENT seed {seed} phase {phase} ({kind}) settings {cfg:?}\n  packet {}\n  kernel    {}\n  reference {}",
                        hex(p),
                        show(&kernel),
                        show(&refr)
                    );
                }
            }
        }
        run += batch.len();
        // Each packet moved exactly the counter it was judged by (plus the
        // would-drop total for every drop observe mode lets pass, and only
        // then): nothing is counted twice. Checked while verdicts agree.
        let bank = test_bank(&pg);
        phase_tally[Reason::ObserveWouldDrop as usize] = observed;
        for r in Reason::ALL {
            let moved = bank[r as usize] - bank_before[r as usize];
            assert!(
                bad > 0 || moved == phase_tally[r as usize],
                "seed {seed} phase {phase}: counter {} moved {moved} times, expected {}",
                r.name(),
                phase_tally[r as usize]
            );
        }
    }
    // Test runs never count as real traffic.
    for (r, n) in pg.gate().counters().unwrap() {
        assert_eq!(
            n,
            0,
            "seed {seed}: test runs moved the real counter {}",
            r.name()
        );
    }
    let elapsed = started.elapsed();
    println!(
        "differential: {run} packets in {:.1}s ({:.1} µs each), {bad} disagreements",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / run as f64
    );
    println!("by kind: {kinds:?}");
    println!("kernel reasons: {tally:?}");
    assert_eq!(run, total);
    assert_eq!(
        bad, 0,
        "seed {seed}: {bad} of {run} packets judged differently by kernel and reference (first {MAX_REPORTED} printed above)"
    );
    // The generator must reach every verdict, or agreement proves little.
    if total >= 100_000 {
        for r in Reason::ALL {
            if r != Reason::ObserveWouldDrop {
                let n = tally.get(&r).copied().unwrap_or(0);
                assert!(
                    n >= 10,
                    "seed {seed}: reason {} seen only {n} times",
                    r.name()
                );
            }
        }
    }
}
