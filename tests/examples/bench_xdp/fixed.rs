//! `cargo xtask bench xdp -- --fixed [--big]`: the program's fixed path in a
//! minute, for work on the program: hot SYNs at one prefix and every other
//! packet kind; with `--big` also hot SYNs at 1,000,000 prefixes (both sets).
//!
//! Nine interleaved rounds each; besides the kernel's figure (whole ns per
//! run) the thread's CPU time in the 1,000,000-run call, which resolves
//! tenths of a ns (and, unlike wall time, leaves out other processes).

use std::{net::Ipv6Addr, path::Path};

use anyhow::Result;
use aya::programs::{TestRun, TestRunOptions, Xdp};
use integration_tests::{
    packet::{Builder, ACK, SYN},
    thread_cpu_ns,
};
use rand::{rngs::StdRng, SeedableRng};
use wotgate::gate::{compile::Capacity, Gate};

use super::{load_baseline, lookup, REPEAT};

const ROUNDS: usize = 9;

/// (kernel ns, thread CPU ns) per run of `prog` on `pkt`.
fn once(prog: &Xdp, pkt: &[u8]) -> Result<(f64, f64)> {
    let mut o = TestRunOptions::new();
    o.data_in = Some(pkt);
    o.repeat = REPEAT;
    let t = thread_cpu_ns();
    let r = prog.test_run(o)?;
    let cpu = (thread_cpu_ns() - t) as f64 / f64::from(REPEAT);
    Ok((r.duration.as_nanos() as f64, cpu))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nine interleaved rounds of `prog` and the baseline on each packet; one
/// table row each, named `set`, the packet's name.
fn rows(prog: &Xdp, base: &Xdp, set: &str, packets: &[(&str, Vec<u8>)]) -> Result<()> {
    for (name, pkt) in packets {
        let (mut gk, mut gw, mut bk, mut bw) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (k, w) = once(base, pkt)?;
            bk.push(k);
            bw.push(w);
            let (k, w) = once(prog, pkt)?;
            gk.push(k);
            gw.push(w);
        }
        let (gk, bk, gw, bw) = (median(gk), median(bk), median(gw), median(bw));
        println!(
            "| {set} | {name} | {gk:.0} | {bk:.0} | {:.2}x | {gw:.1} | {bw:.1} | {:.2}x |",
            gk / bk,
            gw / bw
        );
    }
    Ok(())
}

pub fn run(dir: &Path, big: bool) -> Result<()> {
    // The 1M sets of a whole run (same seed), and a gate sized for them.
    let bigs = if big {
        let mut rng = StdRng::seed_from_u64(25);
        let a = lookup::random_48_64(1_000_000, &mut rng);
        let b = lookup::hard_set(1_000_000, &mut rng);
        vec![("1M random /48-/64", a), ("1M hard", b)]
    } else {
        vec![]
    };
    let mut gate = match bigs.as_slice() {
        [(_, a), (_, b)] => Gate::create_with(
            dir,
            &Capacity::for_set(a, 0.25).at_least(&Capacity::for_set(b, 0.25)),
        )?,
        _ => Gate::create(dir)?,
    };
    gate.load_set(&lookup::with_peer())?;
    let prog = gate.program()?;
    let base = load_baseline(&dir.join("bench_baseline"))?;
    let dst: Ipv6Addr = "2001:db8:25::1".parse()?;
    let untrusted: Ipv6Addr = lookup::UNTRUSTED.parse()?;
    let syns = [
        (
            "IPv6 SYN to 25, trusted",
            lookup::syn(lookup::TRUSTED.parse()?),
        ),
        ("IPv6 SYN to 25, untrusted", lookup::syn(untrusted)),
    ];
    let others = [
        (
            "IPv6 UDP",
            Builder::ipv6_udp(untrusted, dst, 5353, 53).build(),
        ),
        (
            "IPv6 TCP ACK to 25",
            Builder::ipv6_tcp(untrusted, dst, 40000, 25, ACK).build(),
        ),
        (
            "IPv6 SYN to 80",
            Builder::ipv6_tcp(untrusted, dst, 40000, 80, SYN).build(),
        ),
        (
            "IPv4 SYN to 25",
            Builder::ipv4_tcp([192, 0, 2, 2].into(), [192, 0, 2, 1].into(), 40000, 25, SYN).build(),
        ),
    ];
    println!("| set | packet | gate ns | pass-only ns | ratio | gate CPU ns | pass-only CPU ns | CPU ratio |\n|---|---|---:|---:|---:|---:|---:|---:|");
    rows(&prog, &base, "1 prefix", &syns)?;
    rows(&prog, &base, "1 prefix", &others)?;
    for (name, set) in &bigs {
        gate.load_set(set)?;
        rows(&prog, &base, name, &syns)?;
    }
    Ok(())
}
