//! `cargo xtask bench flood`: CPU time per dropped SYN when the gate on a
//! veth pair in namespaces is flooded with SYNs to port 25 from random
//! untrusted documentation sources (a different source each packet, drawn
//! among the set's own prefixes so lookups go deep and miss), against a
//! two-instruction drop-all program in the same run, at 1, 100,000 and
//! 1,000,000 prefixes, while a trusted peer opens real TCP connections.
//! The gate runs twice per round: with its compiled lookup, and with the
//! compiled copy switched off so the same program answers from the kernel
//! LPM trie (the baseline the compiled lookup must beat). Every prefix and
//! source is in 2001:db8::/32, so the compiled lookup meets its worst case
//! here: one /32 holding the whole set, a deep trie under it.
//!
//! How CPU is measured. On veth the receiving side's XDP program runs in the
//! NAPI poll of the receiving device, scheduled on the sending CPU and run
//! in softirq when the sender's transmit re-enables bottom halves, else by
//! ksoftirqd. So per run: the sender thread's own CPU time
//! (CLOCK_THREAD_CPUTIME_ID, which without IRQ time accounting includes the
//! softirq work done in its context) plus every ksoftirqd's run time
//! (/proc/PID/schedstat), divided by the packets that reached the program
//! (the receiving veth's rx counter: every packet its XDP program ran on). Sending costs the same for
//! both programs, so the difference is what the gate adds per packet.
//! Rounds interleave the two programs; medians are reported.

use std::{
    net::Ipv6Addr,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use gate_common::lookup::HDR_VALID;
use integration_tests::{
    baseline,
    lookup_switch::switch,
    netns::{in_netns, Listener, Pair},
    synflood::{mac_of, random_sources, rx_packets, Connector, SynSender, BATCH},
    thread_cpu_ns, wotgate_cmd,
};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, SeedableRng};
use wotgate::{
    gate::{compile::Capacity, Gate},
    model::prefixes::{PrefixEntry, PrefixSet, Verdict},
};

#[path = "../../gate-userspace/examples/common/record.rs"]
mod record;

const TRUSTED: &str = "2001:db8:1::10";
const TRUSTED_NET: &str = "2001:db8:1::/48";
const SERVER: &str = "2001:db8:ffff::1";
/// The padding prefixes (/56 to /64) and the flood's sources share this block.
const FLOOD: &str = "2001:db8:8000::/33";
const SIZES: [usize; 3] = [1, 100_000, 1_000_000];
/// The three programs each round runs, in rotating order.
const DROP_ALL: usize = 0;
const COMPILED: usize = 1;
const LPM: usize = 2;
const ARMS: [&str; 3] = ["drop-all", "gate (compiled)", "gate (LPM trie)"];
/// Distinct flood sources, cycled.
const SOURCES: usize = 1 << 20;

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

/// Removes the bench gate, also when the bench fails.
struct Purge(PathBuf);
impl Drop for Purge {
    fn drop(&mut self) {
        if let Err(e) = wotgate::gate::purge(&self.0) {
            eprintln!("cleanup of {}: {e}", self.0.display());
        }
    }
}

/// Attaches `prog` to `iface` in `ns` in native mode through a link that
/// lives as long as the returned fd.
fn attach_link(ns: &str, iface: &str, prog: &OwnedFd) -> Result<OwnedFd> {
    let prog = prog.try_clone()?;
    let iface = iface.to_string();
    in_netns(ns, move || -> Result<OwnedFd> {
        let index = wotgate::gate::sys::ifindex(&iface).context("no such interface")?;
        baseline::link_xdp(&prog, index).context("BPF_LINK_CREATE of the drop-all program")
    })
}

fn wotgate(pair: &Pair, pin: &Path, args: &[&str]) -> Result<()> {
    let out = wotgate_cmd(Some(&pair.server), pin, args).output()?;
    if !out.status.success() {
        bail!("wotgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Total run time of every ksoftirqd thread, ns.
fn ksoftirqd_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn ksoftirqd_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// One flood run.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Packets that reached the XDP program.
    arrived: u64,
    /// SYNs the sender handed to the kernel.
    sent: u64,
    /// CPU ns of the sender thread plus ksoftirqd.
    cpu_ns: u64,
    /// The gate's untrusted drops (gate runs only).
    gate_drops: Option<u64>,
    trusted_ok: u64,
    trusted_failed: u64,
}

impl Run {
    fn ns_per_packet(&self) -> f64 {
        self.cpu_ns as f64 / self.arrived.max(1) as f64
    }
}

struct Flood<'a> {
    pair: &'a Pair,
    sender: SynSender,
    sources: &'a [Ipv6Addr],
    next: usize,
    softirq: Vec<u32>,
    seconds: u64,
}

impl Flood<'_> {
    /// One run; the trusted peer connects only through the gate (the
    /// drop-all program drops its SYNs too).
    fn run(&mut self, pin: Option<&Path>) -> Result<Run> {
        let drops_before = pin.map(gate_drops).transpose()?;
        let rx = rx_packets(&self.pair.server, &self.pair.server_if);
        let trusted = pin.map(|_| {
            Connector::start(
                &self.pair.client.name,
                TRUSTED.parse().unwrap(),
                format!("[{SERVER}]:25").parse().unwrap(),
                Duration::from_secs(5),
                Duration::from_millis(50),
            )
        });
        let soft0 = ksoftirqd_ns(&self.softirq);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let mut sent = 0u64;
        let limit = Duration::from_secs(self.seconds);
        while t0.elapsed() < limit {
            let i = self.next;
            sent += self.sender.send(&self.sources[i..i + BATCH])? as u64;
            self.next = (i + BATCH) % self.sources.len();
        }
        let cpu = thread_cpu_ns() - cpu0 + ksoftirqd_ns(&self.softirq) - soft0;
        let (trusted_ok, trusted_failed) = trusted.map_or((0, 0), Connector::finish);
        // Every packet the receiving veth's program ran on (the trusted
        // peer's few included).
        let arrived = rx_packets(&self.pair.server, &self.pair.server_if) - rx;
        let gate_drops = match (pin, drops_before) {
            (Some(p), Some(b)) => Some(gate_drops(p)? - b),
            _ => None,
        };
        Ok(Run {
            arrived,
            sent,
            cpu_ns: cpu,
            gate_drops,
            trusted_ok,
            trusted_failed,
        })
    }
}

fn gate_drops(pin: &Path) -> Result<u64> {
    Ok(Gate::open(pin)?
        .counters()?
        .into_iter()
        .find(|(r, _)| r.name() == "untrusted_drop")
        .map_or(0, |(_, v)| v))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `n` distinct /56-/64 prefixes inside [`FLOOD`].
fn padding(n: usize, rng: &mut StdRng) -> Vec<Ipv6Net> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let block: Ipv6Net = FLOOD.parse().unwrap();
    while out.len() < n {
        for a in random_sources(n - out.len(), block, rng, |_| false) {
            let len = 56 + (out.len() % 9) as u8;
            let net = Ipv6Net::new(a, len).unwrap().trunc();
            if seen.insert(net) {
                out.push(net);
            }
        }
    }
    out
}

fn main() -> Result<()> {
    integration_tests::require_kernel();
    let record = std::env::args().any(|a| a == "--record");
    let rounds = arg("--rounds", 5)? as usize;
    let seconds = arg("--seconds", 2)?;
    let machine = record::machine();
    let pair = Pair::new("bf", &[TRUSTED]);
    let pin = PathBuf::from(format!(
        "/sys/fs/bpf/wotgate-bench-flood-{}",
        std::process::id()
    ));
    let _purge = Purge(pin.clone());
    let _listener = Listener::start(&pair.server.name, 25);

    let mut rng = StdRng::seed_from_u64(25);
    let t = Instant::now();
    let pads = padding(SIZES[SIZES.len() - 1] - 1, &mut rng);
    // Sized so that the largest set fits the compiled lookup.
    let mut largest = PrefixSet::new();
    for p in std::iter::once(TRUSTED_NET.parse()?).chain(pads.iter().copied()) {
        largest
            .insert(PrefixEntry {
                verdict: Verdict::Allow,
                prefix: p,
                label: String::new(),
            })
            .map_err(anyhow::Error::msg)?;
    }
    drop(
        Gate::create_with(&pin, &Capacity::for_set(&largest, 0.25))
            .context("creating the bench gate")?,
    );
    drop(largest);
    let lookup: std::collections::HashSet<Ipv6Net> = pads.iter().copied().collect();
    let covered =
        |a: Ipv6Addr| (56..=64).any(|l| lookup.contains(&Ipv6Net::new(a, l).unwrap().trunc()));
    let sources = random_sources(SOURCES, FLOOD.parse().unwrap(), &mut rng, covered);
    eprintln!(
        "{} padding prefixes and {} untrusted sources in {:.1}s",
        pads.len(),
        sources.len(),
        t.elapsed().as_secs_f64()
    );
    let server_mac = mac_of(&pair.server, &pair.server_if)?;
    let sender = SynSender::open(
        &pair.client,
        &pair.client_if,
        server_mac,
        SERVER.parse().unwrap(),
        25,
    )?;
    let drop_all = baseline::load_constant(wotgate::gate::replay::XDP_DROP, "wg_drop_all")
        .context("BPF_PROG_LOAD of the drop-all program")?;
    let mut flood = Flood {
        pair: &pair,
        sender,
        sources: &sources,
        next: 0,
        softirq: ksoftirqd_pids(),
        seconds,
    };
    let file = std::env::temp_dir().join(format!("bench-flood-{}.prefixes", std::process::id()));
    let mut rows = Vec::new();
    let mut failed_total = 0;
    let mut mismatch = Vec::new();
    for &size in &SIZES {
        let mut text = format!("allow {TRUSTED_NET} trusted peer\n");
        for p in &pads[..size - 1] {
            text.push_str(&format!("allow {p} pad\n"));
        }
        std::fs::write(&file, &text)?;
        let t = Instant::now();
        wotgate(&pair, &pin, &["prefixes", "load", file.to_str().unwrap()])?;
        eprintln!(
            "{size} prefixes loaded in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let gate = Gate::open(&pin)?;
        let t = gate.active_trie()? as u32;
        let header = switch(&gate, None)?;
        switch(&gate, Some(header))?;
        if header.flags & HDR_VALID == 0 {
            bail!("{size} prefixes: the set does not use the compiled lookup (header {header:?}, copy {t})");
        }
        let mut runs: [Vec<Run>; 3] = Default::default();
        for r in 0..rounds {
            for k in 0..3 {
                let arm = (r + k) % 3;
                let run = match arm {
                    DROP_ALL => {
                        let link = attach_link(&pair.server.name, &pair.server_if, &drop_all)?;
                        let run = flood.run(None);
                        drop(link);
                        run?
                    }
                    _ => {
                        wotgate(&pair, &pin, &["attach", "--iface", &pair.server_if])?;
                        let saved = (arm == LPM).then(|| switch(&gate, None)).transpose()?;
                        let run = flood.run(Some(&pin));
                        if let Some(h) = saved {
                            switch(&gate, Some(h))?;
                        }
                        wotgate(&pair, &pin, &["detach", "--iface", &pair.server_if])?;
                        run?
                    }
                };
                eprintln!(
                    "{size} prefixes, round {r}, {}: {} packets, {:.0} ns/pkt, trusted {} ok {} failed",
                    ARMS[arm],
                    run.arrived,
                    run.ns_per_packet(),
                    run.trusted_ok,
                    run.trusted_failed
                );
                failed_total += run.trusted_failed;
                if let Some(d) = run.gate_drops {
                    // The trusted peer's packets pass; everything else drops.
                    let passed = run.arrived.saturating_sub(d);
                    if d > run.arrived || d > run.sent || passed > 20 * run.trusted_ok + 200 {
                        mismatch.push(format!(
                            "{size} ({}): {d} drops for {} packets arrived, {} sent",
                            ARMS[arm], run.arrived, run.sent
                        ));
                    }
                }
                runs[arm].push(run);
            }
        }
        rows.push((size, runs));
    }
    let _ = std::fs::remove_file(&file);

    let mut out = String::new();
    out.push_str(&format!("\n### {machine}\n\n"));
    out.push_str(&format!("veth pair in namespaces, native XDP; one AF_PACKET sender thread (sendmmsg of {BATCH}) flooding SYNs to port 25 from {SOURCES} distinct random sources in {FLOOD} (the padding prefixes' block, none covered), {seconds} s per run, {rounds} rounds interleaving a two-instruction drop-all program, the gate with its compiled lookup and the same gate with the compiled copy switched off (the kernel LPM trie); a trusted peer connects throughout the gate's runs. The whole set lies in one /32 (2001:db8::/32, documentation addresses only), the compiled lookup's worst case: one deep trie. CPU = sender thread + ksoftirqd, per packet the receiving veth's program ran on (its rx counter); medians.\n\n"));
    out.push_str("| prefixes | drop-all ns/pkt | compiled ns/pkt | LPM trie ns/pkt | compiled extra ns/pkt | LPM extra ns/pkt | compiled extra / LPM extra | packets/run (compiled / LPM) | trusted connects ok / failed |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size, runs) in &rows {
        let ns = |arm: usize| median(runs[arm].iter().map(Run::ns_per_packet).collect());
        let pk = |arm: usize| median(runs[arm].iter().map(|r| r.arrived as f64).collect());
        let (b, c, l) = (ns(DROP_ALL), ns(COMPILED), ns(LPM));
        let ok: u64 = runs.iter().flatten().map(|r| r.trusted_ok).sum();
        let bad: u64 = runs.iter().flatten().map(|r| r.trusted_failed).sum();
        out.push_str(&format!(
            "| {size} | {b:.0} | {c:.0} | {l:.0} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} | {ok} / {bad} |\n",
            c - b,
            l - b,
            (c - b) / (l - b),
            pk(COMPILED),
            pk(LPM)
        ));
    }
    print!("{out}");
    if record {
        record::record(
            "## Flood",
            "`cargo xtask bench flood`: CPU per dropped SYN under a veth SYN flood from random untrusted sources, against a drop-all XDP program in the same run (method: tests/examples/bench_flood.rs and docs/datapath.md, \"Flood\").",
            &out,
        )?;
    }
    if failed_total > 0 || !mismatch.is_empty() {
        bail!(
            "{failed_total} trusted connect(s) failed; drop counts off: {}",
            mismatch.join(", ")
        );
    }
    Ok(())
}
