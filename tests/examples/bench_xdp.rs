//! `cargo xtask bench xdp`: ns per packet of the real program through
//! BPF_PROG_TEST_RUN with the compiled lookup and with the LPM trie (the
//! compiled copy switched off), against a pass-only program in the same run,
//! hot (one packet repeated) and cold (a different source per run) on random
//! /48-/64 sets and a hard set; kernel memory; and the trusted-set updates at
//! 1,000,000 prefixes (a full load of a new set, one entry changed, a
//! 1,000-entry diff) beside the previous version's full rewrite (clear the
//! inactive trie entry by entry, fill it, read every key back, flip),
//! replayed here on a second gate's maps in the same run.
//!
//! The baseline is two instructions loaded here with bpf(2), not part of the
//! shipped object; it is pinned beside the bench gate so aya opens and runs
//! it exactly like the gate's program.

use std::{
    net::Ipv6Addr,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{lpm_trie::Key, lpm_trie::LpmTrie, Array, HashMap, Map, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
};
use aya_obj::programs::XdpAttachType;
use gate_common::{maps, Entry, Ipv6Bytes, Label};
use integration_tests::{
    baseline,
    packet::{Builder, ACK, SYN},
};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, SeedableRng};
use wotgate::{
    gate::{
        compile::Capacity,
        swap::{Changes, LoadReport},
        Gate,
    },
    model::prefixes::{PrefixEntry, PrefixSet},
};

// Shared with the wot and plan benchmarks (BENCHMARKS.md is found from this
// crate's directory, one level below the workspace root like theirs).
#[path = "bench_xdp/fixed.rs"]
mod fixed;
#[path = "bench_xdp/lookup.rs"]
mod lookup;
#[path = "../../gate-userspace/examples/common/record.rs"]
mod record;

pub(crate) const REPEAT: u32 = 1_000_000;
/// Hot rounds cost about 50 ms each; nine make the medians steadier than
/// three on this shared machine.
const ROUNDS: usize = 9;

struct Purge(PathBuf);
impl Drop for Purge {
    fn drop(&mut self) {
        // The baseline is not the gate's: purge leaves it (and the directory).
        let _ = std::fs::remove_file(self.0.join("bench_baseline"));
        let _ = wotgate::gate::purge(&self.0);
    }
}

pub(crate) fn ns(prog: &Xdp, pkt: &[u8]) -> Result<f64> {
    let mut o = TestRunOptions::new();
    o.data_in = Some(pkt);
    o.repeat = REPEAT;
    Ok(prog.test_run(o)?.duration.as_nanos() as f64)
}

/// The baseline `r0 = XDP_PASS; exit` (`integration_tests::baseline`),
/// pinned at `pin` and opened through aya like the gate's pinned program.
fn load_baseline(pin: &Path) -> Result<Xdp> {
    let fd = baseline::load_constant(wotgate::gate::replay::XDP_PASS, "wg_baseline")
        .context("BPF_PROG_LOAD of the baseline")?;
    baseline::pin(&fd, pin)
        .with_context(|| format!("pinning the baseline at {}", pin.display()))?;
    let prog = Xdp::from_pin(pin, XdpAttachType::Interface)?;
    let mut o = TestRunOptions::new();
    let pkt = [0u8; 64];
    o.data_in = Some(&pkt);
    let r = prog.test_run(o)?;
    if r.return_value != wotgate::gate::replay::XDP_PASS {
        bail!("the baseline returned {}, not XDP_PASS", r.return_value);
    }
    Ok(prog)
}

/// Median of ROUNDS interleaved (gate, baseline) measurements.
pub(crate) fn measure(gate: &Xdp, base: &Xdp, pkt: &[u8]) -> Result<(f64, f64)> {
    let mut g = Vec::new();
    let mut b = Vec::new();
    for _ in 0..ROUNDS {
        b.push(ns(base, pkt)?);
        g.push(ns(gate, pkt)?);
    }
    g.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    Ok((g[ROUNDS / 2], b[ROUNDS / 2]))
}

pub(crate) fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(
    pin: &Path,
    name: &str,
) -> Result<T> {
    let data = MapData::from_pin(pin.join(name))?;
    Ok(Map::from_map_data(data)?.try_into()?)
}

/// The previous version's swap, step by step on another gate's maps: clear
/// the inactive trie and its labels entry by entry, fill them one by one,
/// read every key back, flip the selector.
struct OldSwap {
    trust: [LpmTrie<MapData, Ipv6Bytes, Entry>; 2],
    labels: [HashMap<MapData, u32, Label>; 2],
    active: Array<MapData, u32>,
}

impl OldSwap {
    fn open(pin: &Path) -> Result<OldSwap> {
        Ok(OldSwap {
            trust: [open(pin, maps::TRUST[0])?, open(pin, maps::TRUST[1])?],
            labels: [open(pin, maps::LABELS[0])?, open(pin, maps::LABELS[1])?],
            active: open(pin, maps::ACTIVE)?,
        })
    }

    /// Seconds for the whole swap.
    fn load(&mut self, set: &PrefixSet) -> Result<f64> {
        let t = Instant::now();
        let target = 1 - (self.active.get(&0, 0)? & 1) as usize;
        let old: Vec<_> = self.trust[target].keys().collect::<Result<_, _>>()?;
        for k in &old {
            self.trust[target].remove(k)?;
        }
        let old: Vec<u32> = self.labels[target].keys().collect::<Result<_, _>>()?;
        for k in &old {
            self.labels[target].remove(k)?;
        }
        let mut ids = std::collections::BTreeMap::new();
        for e in set.iter() {
            let next = ids.len() as u32;
            ids.entry(e.label.as_str()).or_insert(next);
        }
        for (text, id) in &ids {
            let mut l = Label::default();
            l.bytes[..text.len()].copy_from_slice(text.as_bytes());
            self.labels[target].insert(id, l, 0)?;
        }
        for e in set.iter() {
            let key = Key::new(e.prefix.prefix_len() as u32, e.prefix.network().octets());
            let value = Entry {
                verdict: e.verdict.to_raw(),
                source: ids[e.label.as_str()],
            };
            self.trust[target].insert(&key, value, 0)?;
        }
        let mut seen = 0;
        for k in self.trust[target].keys() {
            let k = k?;
            let net = Ipv6Net::new(k.data().into(), k.prefix_len() as u8)?;
            if set.get(&net).is_none() {
                bail!("unexpected {net}");
            }
            seen += 1;
        }
        if seen != set.len() {
            bail!("{seen} entries, {} wanted", set.len());
        }
        let word = self.active.get(&0, 0)?;
        self.active.set(0, (word & !1) | target as u32, 0)?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// Median of `v`.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(s: f64) -> String {
    if s < 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// `set` with `n` of its entries (spread over it) relabelled, and what
/// changed.
fn changed(set: &PrefixSet, n: usize, tag: &str) -> (PrefixSet, Changes) {
    let every = (set.len() / n).max(1);
    let mut new = set.clone();
    let mut c = Changes::new();
    for e in set.iter().step_by(every).take(n) {
        let e = PrefixEntry {
            label: tag.to_string(),
            ..e.clone()
        };
        new.replace(e.clone());
        c.upsert(e);
    }
    (new, c)
}

/// The update rows: this version on `gate`, the old swap on `old` (another
/// gate), in the same run.
fn updates(
    gate: &mut Gate,
    created_kb: u64,
    old: &mut OldSwap,
    rng: &mut StdRng,
) -> Result<Vec<String>> {
    const N: usize = 1_000_000;
    const REPS: usize = 5;
    let mut rows = Vec::new();
    let mut push = |what: &str, new: f64, detail: String, old: f64| {
        rows.push(format!(
            "| {what} | {} ({detail}) | {} | {:.1}x |",
            ms(new),
            ms(old),
            old / new
        ));
    };
    // Full loads into empty gates (the bench gates were emptied first).
    let a = lookup::random_48_64(N, rng);
    let before = lookup::kernel_kb();
    let t = Instant::now();
    let r = gate.load_set(&a)?;
    let new = t.elapsed().as_secs_f64();
    let loaded_kb = lookup::kernel_kb().saturating_sub(before);
    // The LPM-only design holds the set in both tries: the old swap's
    // load, timed, fills one; a second fills the other.
    let before = lookup::kernel_kb();
    let o = old.load(&a)?;
    old.load(&a)?;
    let lpm_kb = lookup::kernel_kb().saturating_sub(before);
    drop(a);
    push(
        "full load of a new 1M set into an empty gate",
        new,
        format!(
            "{}, lookup {}; enforced after {}, {} after the call (compile {}; the first trie emptied, filled and checked in {}), other half in sync {} later (grace {})",
            r.mode,
            r.lookup,
            ms(r.enforce_time.as_secs_f64()),
            ms(new - r.sync_time.as_secs_f64()),
            ms(r.compile_time.as_secs_f64()),
            ms(trie_time(&r)),
            ms(r.sync_time.as_secs_f64()),
            ms(r.grace_time.as_secs_f64())
        ),
        o,
    );
    let mb = |kb: u64| kb as f64 / 1e3;
    let ours = created_kb + loaded_kb;
    let slab_row = format!(
        "| kernel memory with the 1M set in both halves (Slab + VmallocUsed growth): this version's gate created (compiled arrays and records, preallocated) + that load; the LPM-only design's two tries filled with the same set | {:.0} MB ({:.0} MB created + {:.0} MB loaded) | {:.0} MB | {:.2}x |",
        mb(ours),
        mb(created_kb),
        mb(loaded_kb),
        mb(lpm_kb),
        lpm_kb as f64 / ours.max(1) as f64
    );
    // A new 1M set over the loaded one (nothing in common).
    let b = lookup::random_48_64(N, rng);
    let t = Instant::now();
    let r = gate.load_set(&b)?;
    let new = t.elapsed().as_secs_f64();
    let o = old.load(&b)?;
    push(
        "full load of a new 1M set over another 1M set",
        new,
        format!(
            "{}, {} removed and {} written per trie; enforced after {}, {} after the call (compile {}; the first trie emptied, filled and checked in {}), whole {}",
            r.mode,
            r.removed,
            r.written,
            ms(r.enforce_time.as_secs_f64()),
            ms(new - r.sync_time.as_secs_f64()),
            ms(r.compile_time.as_secs_f64()),
            ms(trie_time(&r)),
            ms((r.enforce_time + r.sync_time).as_secs_f64())
        ),
        o,
    );
    // Small changes to the 1M set, each REPS times (median).
    for (n, what) in [
        (1usize, "one entry changed in the 1M set"),
        (1000, "1,000-entry diff in the 1M set"),
    ] {
        let mut by_changes = Vec::new();
        let mut by_set = Vec::new();
        let mut diffing = Vec::new();
        let (mut enforced, mut compiled, mut graces) = (Vec::new(), Vec::new(), Vec::new());
        let mut current = b.clone();
        for i in 0..REPS {
            let (next, c) = changed(&current, n, &format!("c{n}-{i}"));
            let t = Instant::now();
            let r = gate.apply_changes(&c)?;
            by_changes.push(t.elapsed().as_secs_f64());
            enforced.push(r.enforce_time.as_secs_f64());
            compiled.push(r.compile_time.as_secs_f64());
            graces.push(r.grace_time.as_secs_f64());
            ensure_mode(r.mode)?;
            current = next;
            let (next, _) = changed(&current, n, &format!("s{n}-{i}"));
            let t = Instant::now();
            let d = Changes::between(&current, &next);
            diffing.push(t.elapsed().as_secs_f64());
            assert_eq!(d.len(), n);
            let t = Instant::now();
            let r = gate.load_set(&next)?;
            by_set.push(t.elapsed().as_secs_f64());
            ensure_mode(r.mode)?;
            current = next;
        }
        let o = old.load(&current)?;
        push(
            &format!("{what}: the change given"),
            median(by_changes),
            format!(
                "diff, both halves; enforced after {} (compile {}), grace {}; median of {REPS}",
                ms(median(enforced.clone())),
                ms(median(compiled.clone())),
                ms(median(graces.clone()))
            ),
            o,
        );
        push(
            &format!("{what}: the whole new set given"),
            median(by_set),
            format!(
                "incl. diffing two 1M sets, {} of it; median of {REPS}",
                ms(median(diffing))
            ),
            o,
        );
    }
    rows.insert(1, slab_row);
    Ok(rows)
}

/// The update rows, on two fresh gates pinned beside `dir`: this
/// version's (sized `cap`) and the old swap's.
fn update_rows(dir: &Path, cap: &Capacity, rng: &mut StdRng) -> Result<Vec<String>> {
    let upd_dir = PathBuf::from(format!("{}-upd", dir.display()));
    let old_dir = PathBuf::from(format!("{}-old", dir.display()));
    let _purge_upd = Purge(upd_dir.clone());
    let _purge_old = Purge(old_dir.clone());
    let before = lookup::kernel_kb();
    let mut upd_gate = Gate::create_with(&upd_dir, cap)
        .context("creating the bench gate (root? built with xtask?)")?;
    let created_kb = lookup::kernel_kb().saturating_sub(before);
    drop(Gate::create(&old_dir)?);
    let mut old_swap = OldSwap::open(&old_dir)?;
    updates(&mut upd_gate, created_kb, &mut old_swap, rng)
}

fn updates_table(rows: &[String]) -> String {
    let mut out = String::from("| update at 1,000,000 prefixes (random /48-/64) | this version (both halves in sync) | old full rewrite, same run | old / new |\n|---|---|---:|---:|\n");
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out
}

/// Emptying, filling and checking the first trie written (before the flip,
/// or after it when the update was enforced ahead of its trie).
fn trie_time(r: &LoadReport) -> f64 {
    (r.clear_time + r.fill_time + r.check_time).as_secs_f64()
}

fn ensure_mode(mode: &str) -> Result<()> {
    if mode != "diff" {
        bail!("a small change went {mode}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let record = std::env::args().any(|a| a == "--record");
    // For iterating on the update path: only the update rows at 1M.
    let updates_only = std::env::args().any(|a| a == "--updates-only");
    if record && updates_only {
        bail!("--record records a whole run, not --updates-only");
    }
    let load_at_start = lookup::loadavg();
    // The heading names the machine and its load as the run starts.
    let machine = record::machine();
    let dir = PathBuf::from(format!("/sys/fs/bpf/wotgate-bench-{}", std::process::id()));
    let _purge = Purge(dir.clone());
    if std::env::args().any(|a| a == "--fixed") {
        return fixed::run(&dir, std::env::args().any(|a| a == "--big"));
    }
    let mut rng = StdRng::seed_from_u64(25);
    // The 1M sets first: the gates are sized for the larger compiled one.
    let big_a = lookup::random_48_64(1_000_000, &mut rng);
    let big_b = lookup::hard_set(1_000_000, &mut rng);
    let cap = Capacity::for_set(&big_a, 0.25).at_least(&Capacity::for_set(&big_b, 0.25));
    if updates_only {
        // The update rows alone, on gates sized as in a whole run.
        drop((big_a, big_b));
        let rows = update_rows(&dir, &cap, &mut rng)?;
        println!("\n### {machine} (updates only)\n\nLoad average at the start: {load_at_start}.\n");
        println!("{}", updates_table(&rows));
        println!("Load average at the end: {}.", lookup::loadavg());
        return Ok(());
    }
    let mut gate = Gate::create_with(&dir, &cap)
        .context("creating the bench gate (root? built with xtask?)")?;
    let prog = gate.program()?;
    let base = &load_baseline(&dir.join("bench_baseline"))?;

    let dst: Ipv6Addr = "2001:db8:25::1".parse().unwrap();
    let untrusted: Ipv6Addr = "2001:db8:ffff:ffff::1".parse().unwrap();
    let udp = Builder::ipv6_udp(untrusted, dst, 5353, 53).build();
    let ack = Builder::ipv6_tcp(untrusted, dst, 40000, 25, ACK).build();
    let syn4 =
        Builder::ipv4_tcp([192, 0, 2, 2].into(), [192, 0, 2, 1].into(), 40000, 25, SYN).build();

    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut lookup_rows = Vec::new();
    let mut swap_rows = Vec::new();
    let mut memory_rows = Vec::new();
    for kind in ["random /48-/64", "hard"] {
        for n in [1usize, 10_000, 100_000, 1_000_000] {
            let set = match (kind, n) {
                ("hard", 1_000_000) => big_b.clone(),
                (_, 1_000_000) => big_a.clone(),
                ("hard", _) => lookup::hard_set(n, &mut rng),
                _ => lookup::random_48_64(n, &mut rng),
            };
            let t = Instant::now();
            let r = gate.load_set(&set)?;
            let total = t.elapsed();
            swap_rows.push(format!(
                "| load {n} prefixes ({kind}) | {:.3} s total: {} |",
                total.as_secs_f64(),
                r.summary()
            ));
            if n == 1_000_000 {
                memory_rows.push(lookup::memory_row(&gate, kind)?);
            }
            if n == 1 && kind == "hard" {
                for (name, pkt) in [
                    ("IPv6 UDP (non-TCP)", &udp),
                    ("IPv6 TCP ACK to 25 (non-SYN)", &ack),
                    ("IPv4 SYN to 25", &syn4),
                ] {
                    let (g, b) = measure(&prog, base, pkt)?;
                    rows.push((name.to_string(), g, b));
                }
            }
            lookup_rows.extend(lookup::rows(
                &mut gate, &prog, base, &set, kind, n, &mut rng,
            )?);
            if n == 1_000_000 {
                let (g, b) = measure(&prog, base, &ack)?;
                rows.push((format!("IPv6 TCP ACK to 25, {n} prefixes ({kind})"), g, b));
            }
        }
    }
    drop(big_b);

    drop(big_a);
    let update_rows = update_rows(&dir, &cap, &mut rng)?;

    let mut out = String::new();
    out.push_str(&format!("\n### {machine}\n\n"));
    out.push_str(&format!("BPF_PROG_TEST_RUN, repeat {REPEAT} (hot) or 1 per source (cold), median of {ROUNDS} interleaved rounds; baseline = a pass-only XDP program on the same packet in the same run; LPM = the same program with its compiled copy switched off. Load average at the start: {load_at_start}.\n\n"));
    out.push_str(&lookup::table_header());
    for r in &lookup_rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("\n| packet | gate ns/pkt | baseline ns/pkt | ratio |\n|---|---:|---:|---:|\n");
    for (name, g, b) in &rows {
        out.push_str(&format!("| {name} | {g:.1} | {b:.1} | {:.2}x |\n", g / b));
    }
    out.push_str(&format!("\n{}", lookup::memory_header()));
    for r in &memory_rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("\n| trusted-set update | time |\n|---|---|\n");
    for r in &swap_rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&updates_table(&update_rows));
    out.push_str(&format!(
        "\nLoad average at the end: {}.\n",
        lookup::loadavg()
    ));
    print!("{out}");
    if record {
        record::record(
            "## XDP gate",
            "`cargo xtask bench xdp` (tests/examples/bench_xdp.rs).",
            &out,
        )?;
    }
    Ok(())
}
