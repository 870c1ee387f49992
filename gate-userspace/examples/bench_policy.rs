//! Benchmark (not a timed test): the policy server on a UNIX socket with a
//! trusted set of 1,000,000 prefixes, against a do-nothing server that answers DUNNO.
//!
//! Persistent connections (1, 16, 256), each a blocking client sending one
//! request and waiting for the reply, half RCPT (DUNNO) and half DATA (the
//! header); requests per second and p50/p99/p999 latency. `--record`
//! appends the table to BENCHMARKS.md. The Debian policy servers of the
//! issue's comparison are not part of this run yet.

#[path = "common/record.rs"]
mod record;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wotgate::model::config::PolicySection;
use wotgate::model::prefixes::Verdict;
use wotgate::policy::server::{self, Context};
use wotgate::policy::trust::SnapshotEntry;
use wotgate::policy::{Claim, TrustCell, TrustSnapshot, VerdictSettings};

const PREFIXES: u32 = 1_000_000;
const RUN: Duration = Duration::from_secs(3);

fn net(i: u32) -> u128 {
    0x2a00u128 << 112 | u128::from(i) << 64
}

fn snapshot() -> TrustSnapshot {
    let claims = (0..1000)
        .map(|i| Claim {
            domain: format!("p{i}.example"),
            signer: format!("{i:040X}"),
            depth: Some(1),
            serial: 1,
            not_after: u64::MAX,
            tls_keys: vec![],
            testing: false,
        })
        .collect();
    let items = (0..PREFIXES)
        .map(|i| SnapshotEntry {
            prefix: ipnet::Ipv6Net::new(net(i).into(), 64).unwrap(),
            verdict: Verdict::Allow,
            claims: vec![i % 1000],
        })
        .collect();
    TrustSnapshot::build(SystemTime::now(), claims, items)
}

/// The ceiling: reads a request, answers DUNNO, nothing else.
async fn dunno_server(path: PathBuf) {
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    loop {
        let (s, _) = l.accept().await.unwrap();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\n" => {
                        if w.write_all(b"action=DUNNO\n\n").await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                }
            }
        });
    }
}

/// `conns` clients for RUN: requests per second and sorted latencies.
fn load(path: &Path, conns: usize) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|t| {
            let path = path.to_path_buf();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                let mut lat = Vec::new();
                let mut buf = [0u8; 2048];
                let mut i = t as u32 * 7919;
                while start.elapsed() < RUN {
                    i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let addr = std::net::Ipv6Addr::from(net(i % PREFIXES) | 0x25);
                    let stage = if i.is_multiple_of(2) { "RCPT" } else { "DATA" };
                    let req = format!("request=smtpd_access_policy\nprotocol_state={stage}\nclient_address={addr}\nhelo_name=mx.example.org\nsender=a@example.org\ninstance=1.2.{i}\n\n");
                    let t0 = Instant::now();
                    s.write_all(req.as_bytes()).unwrap();
                    let mut got = 0;
                    while !buf[..got].ends_with(b"\n\n") {
                        let n = s.read(&mut buf[got..]).unwrap();
                        assert!(n > 0, "server closed");
                        got += n;
                    }
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all)
}

fn pct(l: &[Duration], p: f64) -> String {
    let d = l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    let record = std::env::args().any(|a| a == "--record");
    let dir = std::env::temp_dir().join(format!("wotgate-bench-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    let cell = TrustCell::new();
    cell.publish(snapshot());
    let built = t.elapsed();
    // The verdict alone, without I/O: parse a request and judge it.
    let limits = wotgate::policy::Limits {
        max_request_bytes: 16384,
        max_attributes: 64,
    };
    let snap = cell.get().expect("published");
    let vs = VerdictSettings {
        authserv_id: "mx.example".into(),
        ..VerdictSettings::from_section(&PolicySection::default())
    };
    let t = Instant::now();
    let n = 200_000u32;
    for i in 0..n {
        let stage = if i.is_multiple_of(2) { "RCPT" } else { "DATA" };
        let addr = std::net::Ipv6Addr::from(net(i.wrapping_mul(7919) % PREFIXES) | 0x25);
        let text = format!("request=smtpd_access_policy\nprotocol_state={stage}\nclient_address={addr}\nhelo_name=mx.example.org\nsender=a@example.org\ninstance=1.2.{i}\n\n");
        let req = wotgate::policy::Request::parse(text.as_bytes(), limits).unwrap();
        std::hint::black_box(
            wotgate::policy::judge(&req, Some(&snap), SystemTime::now(), &vs).to_wire(),
        );
    }
    let per_verdict = t.elapsed() / n;
    drop(snap);
    let section = PolicySection {
        socket: Some(dir.join("wotgate.sock")),
        socket_owner: None,
        ..PolicySection::default()
    };
    let mut settings = VerdictSettings::from_section(&section);
    settings.authserv_id = "mx.example".into();
    let ctx = Context::new(&section, settings, Arc::clone(&cell));
    let _running = rt.block_on(server::start(&section, ctx))?;
    rt.spawn(dunno_server(dir.join("dunno.sock")));
    std::thread::sleep(Duration::from_millis(200));
    let mut table = format!(
        "{}\n\n1,000,000 prefixes, snapshot built in {:.2} s; parse and verdict without I/O {:.1} µs per request; {} s per cell, persistent connections, half RCPT half DATA.\n\n| connections | server | requests/s | p50 | p99 | p999 |\n|---|---|---|---|---|---|\n",
        record::machine(),
        built.as_secs_f64(),
        per_verdict.as_secs_f64() * 1e6,
        RUN.as_secs()
    );
    for conns in [1, 16, 256] {
        for (name, sock) in [("wotgate", "wotgate.sock"), ("DUNNO only", "dunno.sock")] {
            let (rps, lat) = load(&dir.join(sock), conns);
            table.push_str(&format!(
                "| {conns} | {name} | {rps:.0} | {} | {} | {} |\n",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                pct(&lat, 0.999)
            ));
        }
    }
    print!("{table}");
    let _ = std::fs::remove_dir_all(&dir);
    if record {
        record::record("## Policy server", "`cargo xtask bench policy`: the policy server against a do-nothing DUNNO server (the load generator's ceiling).", &table)?;
    }
    Ok(())
}
