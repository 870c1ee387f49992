//! The lookup rows of `bench xdp`: the sets (random /48-/64, and a hard one),
//! hot and cold SYNs with the compiled lookup and with the LPM trie, memory.

use std::{collections::HashSet, net::Ipv6Addr};

use anyhow::Result;
use aya::programs::{TestRun, TestRunOptions, Xdp};
use integration_tests::{
    lookup_switch::switch,
    packet::{Builder, SYN},
};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, seq::SliceRandom, Rng};
use wotgate::{
    gate::Gate,
    model::prefixes::{PrefixEntry, PrefixSet, Verdict},
};

use super::measure;

/// Sources per cold measurement (each its own test run).
const COLD: usize = 20_000;

pub const TRUSTED: &str = "2001:db8:ffff:ff00::1";
pub const UNTRUSTED: &str = "2001:db8:ffff:ffff::1";

fn push(set: &mut PrefixSet, bits: u128, len: u8, allow: bool) {
    let net = Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap().trunc();
    if net.contains(&UNTRUSTED.parse::<Ipv6Addr>().unwrap()) {
        return;
    }
    let _ = set.insert(PrefixEntry {
        verdict: if allow { Verdict::Allow } else { Verdict::Deny },
        prefix: net,
        label: String::new(),
    });
}

/// A /48 in 2000::/3 (never 2001:db8:ffff::/48, the test addresses').
fn random_48(rng: &mut StdRng) -> u128 {
    loop {
        let hi = (0x2000u64 << 32) | (rng.gen::<u64>() & 0x1fff_ffff_ffff);
        if hi != 0x2001_0db8_ffff {
            return u128::from(hi) << 80;
        }
    }
}

/// A set holding only the trusted peer's /56 (every benchmark set has it).
pub fn with_peer() -> PrefixSet {
    let mut set = PrefixSet::new();
    push(
        &mut set,
        u128::from(TRUSTED.parse::<Ipv6Addr>().unwrap()),
        56,
        true,
    );
    set
}

/// `n` prefixes, /48 to /64, one per random /48, no nesting; plus the
/// trusted peer's /56.
pub fn random_48_64(n: usize, rng: &mut StdRng) -> PrefixSet {
    let mut set = with_peer();
    let mut seen = HashSet::new();
    while set.len() < n {
        let b = random_48(rng);
        if seen.insert(b) {
            push(
                &mut set,
                b | (u128::from(rng.gen::<u16>()) << 64),
                rng.gen_range(48..=64),
                true,
            );
        }
    }
    set
}

/// `n` prefixes of /32 to /128: a tenth in five busy /32s (up to 20,000
/// each, nested), the rest /32-/64 with a third nested below an earlier
/// prefix (to /128), a quarter of the nested ones denies; plus the peer.
pub fn hard_set(n: usize, rng: &mut StdRng) -> PrefixSet {
    let mut set = with_peer();
    let busy: Vec<u128> = (0..5).map(|_| random_48(rng) >> 16 << 16).collect();
    let per_busy = (n / 50).min(20_000);
    for b in &busy {
        push(&mut set, *b, 32, true);
        let mut made = vec![(*b, 32u8)];
        for _ in 0..per_busy {
            let (a, l) = *made.choose(rng).unwrap();
            let len = rng.gen_range((l + 1).max(33)..=128.max(l + 1)).min(128);
            let free = u128::MAX.checked_shr(u32::from(l)).unwrap_or(0);
            let bits = a | (rng.gen::<u128>() & free);
            push(&mut set, bits, len, rng.gen_bool(0.75));
            made.push((bits, len));
        }
    }
    let mut made: Vec<(u128, u8)> = Vec::new();
    while set.len() < n {
        if !made.is_empty() && rng.gen_bool(0.33) {
            let (a, l) = *made.choose(rng).unwrap();
            let len = rng.gen_range(l + 1..=128.min(l + 24));
            let free = u128::MAX >> l;
            push(
                &mut set,
                a | (rng.gen::<u128>() & free),
                len,
                rng.gen_bool(0.75),
            );
        } else {
            let len = rng.gen_range(32..=64);
            let bits = random_48(rng) | (u128::from(rng.gen::<u16>()) << 64);
            push(&mut set, bits, len, true);
            made.push((bits, len));
        }
    }
    set
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Kernel memory a gate's maps take, in kB: slab (LPM trie nodes, hash
/// elements) and vmalloc (the preallocated arrays: compiled copies, records).
pub fn kernel_kb() -> u64 {
    meminfo("Slab:") + meminfo("VmallocUsed:")
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn memory_header() -> String {
    "| 1M set | compiled arrays allocated (2 copies) | compiled in use (2 copies) | groups / list entries / trie nodes | records allocated (2 halves) | set kept in | entries in the LPM trie |\n|---|---:|---:|---|---:|---|---:|\n".into()
}

pub fn memory_row(gate: &Gate, kind: &str) -> Result<String> {
    let cap = gate.lookup_capacity()?;
    let h = gate.lookup_header(gate.active_trie()?)?;
    let used = (u64::from(h.bucket_mask) + 1) * 64
        + u64::from(h.lists) * 16
        + u64::from(h.nodes) * std::mem::size_of::<gate_common::lookup::Node>() as u64
        + u64::from(h.leaf_words) * 8;
    let a = gate.active_trie()?;
    let kept = if gate.set_in_record(a)? {
        "records"
    } else {
        "LPM tries"
    };
    let (_, in_trie) = gate.half_counts(a)?;
    Ok(format!(
        "| {kind} | {:.1} MB | {:.1} MB | {} / {} / {} | {:.1} MB | {kept} | {in_trie} |",
        2.0 * cap.bytes() as f64 / 1e6,
        2.0 * used as f64 / 1e6,
        h.groups,
        h.lists,
        h.nodes,
        2.0 * cap.record_bytes() as f64 / 1e6,
    ))
}

pub fn table_header() -> String {
    "| set | prefixes | IPv6 SYN to 25 | compiled ns | LPM trie ns | pass-only ns | compiled / pass | LPM / pass |\n|---|---:|---|---:|---:|---:|---:|---:|\n".into()
}

pub fn syn(src: Ipv6Addr) -> Vec<u8> {
    Builder::ipv6_tcp(src, "2001:db8:25::1".parse().unwrap(), 40000, 25, SYN).build()
}

/// Mean ns of one run per packet, for the gate and the baseline.
fn cold(gate: &Xdp, base: &Xdp, pkts: &[Vec<u8>]) -> Result<(f64, f64)> {
    let (mut g, mut b) = (0u128, 0u128);
    for p in pkts {
        for (prog, sum) in [(base, &mut b), (gate, &mut g)] {
            let mut o = TestRunOptions::new();
            o.data_in = Some(p);
            o.repeat = 1;
            *sum += prog.test_run(o)?.duration.as_nanos();
        }
    }
    let n = pkts.len() as f64;
    Ok((g as f64 / n, b as f64 / n))
}

/// Hot and cold rows for `set` (loaded), compiled then LPM.
pub fn rows(
    gate: &mut Gate,
    prog: &Xdp,
    base: &Xdp,
    set: &PrefixSet,
    kind: &str,
    n: usize,
    rng: &mut StdRng,
) -> Result<Vec<String>> {
    let nets: Vec<Ipv6Net> = set.iter().map(|e| e.prefix).collect();
    let inside: Vec<Vec<u8>> = (0..COLD)
        .map(|_| {
            let p = nets.choose(rng).unwrap();
            let free = u128::MAX
                .checked_shr(u32::from(p.prefix_len()))
                .unwrap_or(0);
            syn(Ipv6Addr::from(
                u128::from(p.network()) | (rng.gen::<u128>() & free),
            ))
        })
        .collect();
    let flood: Vec<Vec<u8>> = (0..COLD)
        .map(|_| syn(Ipv6Addr::from(random_48(rng) | (rng.gen::<u128>() >> 48))))
        .collect();
    let hot = [
        ("hot, trusted", syn(TRUSTED.parse()?)),
        ("hot, untrusted", syn(UNTRUSTED.parse()?)),
    ];
    let mut compiled = Vec::new();
    for (_, p) in &hot {
        compiled.push(measure(prog, base, p)?);
    }
    compiled.push(cold(prog, base, &flood)?);
    compiled.push(cold(prog, base, &inside)?);
    let saved = switch(gate, None)?;
    let mut lpm = Vec::new();
    for (_, p) in &hot {
        lpm.push(measure(prog, base, p)?);
    }
    lpm.push(cold(prog, base, &flood)?);
    lpm.push(cold(prog, base, &inside)?);
    switch(gate, Some(saved))?;
    let names = [
        hot[0].0,
        hot[1].0,
        "cold, random sources (flood)",
        "cold, sources inside the set",
    ];
    Ok(names
        .iter()
        .zip(compiled.iter().zip(&lpm))
        .map(|(what, ((c, b), (l, b2)))| {
            let b = (b + b2) / 2.0;
            format!(
                "| {kind} | {n} | {what} | {c:.1} | {l:.1} | {b:.1} | {:.2}x | {:.2}x |",
                c / b,
                l / b
            )
        })
        .collect())
}
