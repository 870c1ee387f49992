//! Benchmark (not a timed test): the policy server on a UNIX socket with a
//! trusted set of 1,000,000 prefixes, against a do-nothing server that answers DUNNO.
//!
//! Persistent connections (1, 16, 256), each a blocking client sending one
//! request and waiting for the reply, half RCPT (DUNNO) and half DATA (the
//! header); requests per second and p50/p99/p999 latency. `--record`
//! appends the table to BENCHMARKS.md.
//!
//! Side by side, answering the same requests in the same run:
//! - "DUNNO only": the ceiling, a do-nothing server on the same tokio
//!   runtime with the same I/O as wotgate's server (one unsplit 4 KiB
//!   `BufReader` per connection, lines found in place in its buffer, the
//!   reply written through it), without parsing, judging or timers.
//! - policyd-spf (Debian's postfix-policyd-spf-python): Postfix runs it with
//!   `spawn`, one process per policy connection with the connected socket as
//!   its stdin and stdout; the bench does exactly that on a UNIX socket. Each
//!   process runs in a network namespace of its own with no interface up,
//!   so its SPF DNS queries fail at once (temperror) and nothing leaves the
//!   machine: its figures are an upper bound (real DNS only slows it).
//! - postgrey (Debian's package): the real daemon on a UNIX socket
//!   (`--unix`), its Berkeley DB under a temporary directory.
//!
//! Every connection sends one untimed request first (a spawned Python
//! process starts then), and the clock starts when all are ready.

#[path = "common/record.rs"]
mod record;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
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

/// The ceiling: reads a request, answers DUNNO, nothing else; the same
/// buffering and line scanning as wotgate's `serve_connection` (lines found
/// in place in one 4 KiB `BufReader`, the reply written through it),
/// without parsing, judging or timers.
async fn dunno_server(path: PathBuf) {
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    loop {
        let (s, _) = l.accept().await.unwrap();
        tokio::spawn(async move {
            let mut rd = BufReader::with_capacity(4096, s);
            // Whether the next byte starts a line.
            let mut line_start = true;
            loop {
                let buf = match rd.fill_buf().await {
                    Ok(b) if !b.is_empty() => b,
                    _ => return,
                };
                let mut used = 0;
                let mut end = false;
                while let Some(i) = buf[used..].iter().position(|&c| c == b'\n') {
                    end = line_start && i == 0;
                    used += i + 1;
                    line_start = true;
                    if end {
                        break;
                    }
                }
                if !end && used < buf.len() {
                    used = buf.len();
                    line_start = false;
                }
                rd.consume(used);
                if end && rd.write_all(b"action=DUNNO\n\n").await.is_err() {
                    return;
                }
            }
        });
    }
}

/// policyd-spf as Postfix's `spawn` runs it: one process per connection,
/// the socket as stdin and stdout, here in an empty network namespace.
fn spf_adapter(
    path: &Path,
    conf: PathBuf,
    children: Arc<Mutex<Vec<Child>>>,
) -> std::io::Result<()> {
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let (Ok(a), Ok(b)) = (s.try_clone(), s.try_clone()) else {
                return;
            };
            let mut c = Command::new("/usr/bin/policyd-spf");
            c.arg(&conf)
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(a)))
                .stdout(Stdio::from(std::os::fd::OwnedFd::from(b)))
                .stderr(Stdio::null());
            // SAFETY: unshare(2) only, between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match c.spawn() {
                Ok(child) => children.lock().unwrap().push(child),
                Err(e) => eprintln!("policyd-spf: cannot start it: {e}"),
            }
            drop(s);
        }
    });
    Ok(())
}

/// postgrey on a UNIX socket, its database in `dir` (given to its user).
fn start_postgrey(dir: &Path, sock: &Path) -> std::io::Result<Child> {
    std::fs::create_dir_all(dir)?;
    let st = Command::new("chown")
        .args(["postgrey:postgrey"])
        .arg(dir)
        .status()?;
    if !st.success() {
        return Err(std::io::Error::other("chown postgrey:postgrey failed"));
    }
    Command::new("/usr/sbin/postgrey")
        .arg(format!("--unix={}", sock.display()))
        .arg(format!("--dbdir={}", dir.display()))
        .args(["--user=postgrey", "--group=postgrey", "--delay=300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn request(i: u32) -> String {
    let addr = std::net::Ipv6Addr::from(net(i % PREFIXES) | 0x25);
    let stage = if i.is_multiple_of(2) { "RCPT" } else { "DATA" };
    format!("request=smtpd_access_policy\nprotocol_state={stage}\nclient_address={addr}\nclient_name=unknown\nhelo_name=mx.example.org\nsender=a@example.org\nrecipient=b@example.net\ninstance=1.2.{i}\n\n")
}

/// One request and its reply on a blocking connection. Like Postfix's
/// timed reads (`read_wait`: poll(2), then read(2)): a thread blocked in
/// read(2) on a UNIX socket is also woken, for nothing, when the server
/// reads the request (write space), which Postfix's smtpd never pays.
fn exchange(s: &mut UnixStream, req: &[u8], buf: &mut [u8]) {
    use std::os::fd::AsRawFd;
    s.write_all(req).unwrap();
    let mut got = 0;
    while !buf[..got].ends_with(b"\n\n") {
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own, for the duration of the call.
        while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {}
        let n = s.read(&mut buf[got..]).unwrap();
        assert!(n > 0, "server closed");
        got += n;
    }
}

/// `conns` clients for RUN after one untimed request each: requests per
/// second and sorted latencies.
fn load(path: &Path, conns: usize) -> (f64, Vec<Duration>) {
    let ready = Arc::new(Barrier::new(conns));
    let threads: Vec<_> = (0..conns)
        .map(|t| {
            let path = path.to_path_buf();
            let ready = Arc::clone(&ready);
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                let mut lat = Vec::new();
                let mut buf = [0u8; 2048];
                let mut i = t as u32 * 7919;
                exchange(&mut s, request(i).as_bytes(), &mut buf);
                ready.wait();
                let start = Instant::now();
                while start.elapsed() < RUN {
                    i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let req = request(i);
                    let t0 = Instant::now();
                    exchange(&mut s, req.as_bytes(), &mut buf);
                    lat.push(t0.elapsed());
                }
                (lat, start.elapsed())
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut secs: f64 = 0.0;
    for t in threads {
        let (lat, took) = t.join().unwrap();
        all.extend(lat);
        secs = secs.max(took.as_secs_f64());
    }
    all.sort();
    (all.len() as f64 / secs, all)
}

fn pct(l: &[Duration], p: f64) -> String {
    let d = l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    // The machine and its load as the run starts (recorded at the end).
    let _ = record::machine();
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
        let text = request(i.wrapping_mul(7919));
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
    let mut servers = vec![
        ("wotgate", dir.join("wotgate.sock")),
        ("DUNNO only", dir.join("dunno.sock")),
    ];
    let mut notes = Vec::new();
    let children = Arc::new(Mutex::new(Vec::new()));
    if Path::new("/usr/bin/policyd-spf").exists() {
        // Debian's defaults, quieter: no syslog line per request.
        let conf = dir.join("policyd-spf.conf");
        std::fs::write(&conf, "debugLevel = 0\nTestOnly = 1\nHELO_reject = Fail\nMail_From_reject = Fail\nPermError_reject = False\nTempError_Defer = False\nskip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1\n")?;
        spf_adapter(&dir.join("spf.sock"), conf, Arc::clone(&children))?;
        servers.push(("policyd-spf", dir.join("spf.sock")));
    } else {
        notes.push("policyd-spf not installed (cargo xtask bench policy installs it): left out");
    }
    let postgrey = if Path::new("/usr/sbin/postgrey").exists() {
        let pg = start_postgrey(&dir.join("postgrey"), &dir.join("postgrey/postgrey.sock"))?;
        servers.push(("postgrey", dir.join("postgrey/postgrey.sock")));
        Some(pg)
    } else {
        notes.push("postgrey not installed (cargo xtask bench policy installs it): left out");
        None
    };
    for (_, sock) in &servers {
        let t = Instant::now();
        while UnixStream::connect(sock).is_err() {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(20),
                "{} does not answer",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut table = format!(
        "{}\n\n1,000,000 prefixes, snapshot built in {:.2} s; parse and verdict without I/O {:.1} µs per request; {} s per cell, persistent connections, half RCPT half DATA.\n\n| connections | server | requests/s | p50 | p99 | p999 | wotgate / this |\n|---|---|---|---|---|---|---|\n",
        record::machine(),
        built.as_secs_f64(),
        per_verdict.as_secs_f64() * 1e6,
        RUN.as_secs()
    );
    // For profiling: `--only NAME` (a server) and `--conns N` narrow the run.
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
    };
    let only = arg("--only").cloned();
    let conns_list: Vec<usize> = match arg("--conns") {
        Some(n) => vec![n.parse()?],
        None => vec![1, 16, 256],
    };
    for conns in conns_list {
        let mut ours = 0.0;
        for (name, sock) in &servers {
            if only.as_deref().is_some_and(|o| o != *name) {
                continue;
            }
            let (rps, lat) = load(sock, conns);
            if *name == "wotgate" {
                ours = rps;
            }
            table.push_str(&format!(
                "| {conns} | {name} | {rps:.0} | {} | {} | {} | {:.2}x |\n",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                pct(&lat, 0.999),
                ours / rps
            ));
            // Spawned policyd-spf processes end with their connections.
            for mut c in children.lock().unwrap().drain(..) {
                let _ = c.wait();
            }
        }
    }
    for n in notes {
        table.push_str(&format!("\n{n}\n"));
    }
    if let Some(mut pg) = postgrey {
        let _ = pg.kill();
        let _ = pg.wait();
    }
    print!("{table}");
    let _ = std::fs::remove_dir_all(&dir);
    if record {
        record::record("## Policy server", "`cargo xtask bench policy`: the policy server against a do-nothing DUNNO server (the load generator's ceiling) and Debian's policyd-spf and postgrey.", &table)?;
    }
    Ok(())
}
