//! `cargo xtask bench xdp -- --fixed`: the program's fixed path in a minute,
//! for work on the program: hot SYNs at one prefix and every other packet kind.
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
use wotgate::gate::Gate;

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

pub fn run(dir: &Path) -> Result<()> {
    let mut gate = Gate::create(dir)?;
    gate.load_set(&lookup::with_peer())?;
    let prog = gate.program()?;
    let base = load_baseline(&dir.join("bench_baseline"))?;
    let dst: Ipv6Addr = "2001:db8:25::1".parse()?;
    let untrusted: Ipv6Addr = lookup::UNTRUSTED.parse()?;
    let packets = [
        (
            "IPv6 SYN to 25, trusted",
            lookup::syn(lookup::TRUSTED.parse()?),
        ),
        ("IPv6 SYN to 25, untrusted", lookup::syn(untrusted)),
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
    println!("| packet (1 prefix) | gate ns | pass-only ns | ratio | gate CPU ns | pass-only CPU ns | CPU ratio |\n|---|---:|---:|---:|---:|---:|---:|");
    for (name, pkt) in &packets {
        let (mut gk, mut gw, mut bk, mut bw) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (k, w) = once(&base, pkt)?;
            bk.push(k);
            bw.push(w);
            let (k, w) = once(&prog, pkt)?;
            gk.push(k);
            gw.push(w);
        }
        let (gk, bk, gw, bw) = (median(gk), median(bk), median(gw), median(bw));
        println!(
            "| {name} | {gk:.0} | {bk:.0} | {:.2}x | {gw:.1} | {bw:.1} | {:.2}x |",
            gk / bk,
            gw / bw
        );
    }
    Ok(())
}
