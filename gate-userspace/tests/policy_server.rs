//! `wotgate policy` as a real process on its UNIX socket (and loopback TCP),
//! speaking Postfix's protocol: verdicts, hostile and stalled clients, a
//! client that never reads, 5,000 connections, no state until a refresh works.

mod statement_fixtures;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use statement_fixtures::*;
use wotgate::model::time::to_timestamp;

/// A world on disk: our root certifies alpha (depth 1); eve is untrusted.
struct Server {
    dir: PathBuf,
    child: Child,
    alpha_fpr: String,
}

const ALPHA: &str = "2001:db8:a::25";
const EVE: &str = "2001:db8:e::25";

fn write_world(dir: &Path) -> String {
    let ours = Key::new("<postmaster@mx.example>");
    let alpha = Key::new("<postmaster@alpha.example>");
    let eve = Key::new("<postmaster@eve.example>");
    write_keyring(
        &dir.join("keyring.pgp"),
        &[ours.public(), certify(&ours, &alpha), eve.public()],
    );
    std::fs::create_dir_all(dir.join("statements")).unwrap();
    let now = to_timestamp(std::time::SystemTime::now());
    for (k, domain, prefix) in [
        (&alpha, "alpha.example", "2001:db8:a::/48"),
        (&eve, "eve.example", "2001:db8:e::/48"),
    ] {
        let st = wotgate::statement::Statement {
            not_before: now - DAY,
            not_after: now + 30 * DAY,
            ..statement(domain, 1, &[prefix])
        };
        std::fs::write(
            dir.join("statements").join(format!("{domain}.asc")),
            k.sign(&st),
        )
        .unwrap();
    }
    std::fs::write(dir.join("roots"), ours.fpr().to_hex()).unwrap();
    alpha.fpr().to_hex()
}

fn config(dir: &Path, root: &str, extra: &str) -> PathBuf {
    let p = dir.join("wotgate.toml");
    std::fs::write(
        &p,
        format!(
            "state_directory = \"state\"\n[trust]\nkeyrings = [\"keyring.pgp\"]\nroots = [\"{root}\"]\n\
             [statements]\ndirectory = \"statements\"\nallow_documentation_prefixes = true\n\
             [policy]\nsocket = \"policy.sock\"\nsocket_owner = \"\"\nauthserv_id = \"mx.example\"\n\
             request_timeout = \"2s\"\nwrite_timeout = \"2s\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

impl Server {
    /// Starts `wotgate policy` on a fresh world; `keyring` false leaves the
    /// keyring out, so no refresh can succeed until it is written.
    fn start(name: &str, extra: &str, keyring: bool) -> Server {
        let dir = temp_dir(&format!("policy-{name}"));
        let alpha_fpr = write_world(&dir);
        let root = std::fs::read_to_string(dir.join("roots")).unwrap();
        if !keyring {
            std::fs::rename(dir.join("keyring.pgp"), dir.join("keyring.later")).unwrap();
        }
        let cfg = config(&dir, &root, extra);
        let child = Command::new(env!("CARGO_BIN_EXE_wotgate"))
            .args(["policy", "--config", cfg.to_str().unwrap()])
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let s = Server {
            dir,
            child,
            alpha_fpr,
        };
        let want = if keyring {
            "policy trust state refreshed"
        } else {
            "refresh failed"
        };
        s.wait_log(want);
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let t = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("policy.sock")
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// The server's peak resident memory in KiB.
    fn peak_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn request(stage: &str, client: &str) -> String {
    format!(
        "request=smtpd_access_policy\nprotocol_state={stage}\nprotocol_name=ESMTP\nclient_address={client}\nhelo_name=mx.alpha.example\nsender=a@alpha.example\nrecipient=u@mx.example\ninstance=12ab.34cd.1\n\n"
    )
}

/// Reads one reply (up to the empty line); "" at EOF.
fn read_reply(s: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\n\n") {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => out.push(b[0]),
            Err(e) => panic!(
                "reading a reply: {e} (so far {:?})",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8(out).unwrap()
}

fn ask(s: &mut UnixStream, text: &str) -> String {
    s.write_all(text.as_bytes()).unwrap();
    read_reply(s)
}

/// Whether the server closed `s` (EOF) within `within`.
fn closed_within(s: &mut UnixStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[test]
fn answers_postfix_over_the_unix_socket_and_loopback_tcp() {
    let port = 20_000 + std::process::id() % 20_000;
    let srv = Server::start(
        "answers",
        &format!("tcp_listen = \"127.0.0.1:{port}\"\n"),
        true,
    );
    let mode = std::fs::metadata(srv.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "policy.socket_mode");
    let mut c = srv.connect();
    // Many requests on one connection, as Postfix sends them.
    assert_eq!(ask(&mut c, &request("RCPT", ALPHA)), "action=DUNNO\n\n");
    assert_eq!(
        ask(&mut c, &request("DATA", ALPHA)),
        format!(
            "action=PREPEND Authentication-Results: mx.example; x-wot=pass policy.remote-ip=\"{ALPHA}\" policy.prefix=\"2001:db8:a::/48\" policy.domain=alpha.example policy.signer={} policy.depth=1 policy.checks=\"prefix\"\n\n",
            srv.alpha_fpr
        )
    );
    let eve = ask(&mut c, &request("RCPT", EVE));
    assert!(
        eve.starts_with(
            "action=REJECT 5.7.1 wotgate prefix check failed: 2001:db8:e::25 is in no network"
        ),
        "{eve}"
    );
    assert!(ask(&mut c, &request("RCPT", "192.0.2.7")).contains("is IPv4"));
    assert_eq!(
        ask(&mut c, &request("END-OF-MESSAGE", ALPHA)),
        "action=DUNNO\n\n"
    );
    // EOF between requests is normal; the next connection is served.
    drop(c);
    assert_eq!(
        ask(&mut srv.connect(), &request("RCPT", ALPHA)),
        "action=DUNNO\n\n"
    );
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    tcp.write_all(request("DATA", ALPHA).as_bytes()).unwrap();
    assert!(read_reply(&mut tcp)
        .starts_with("action=PREPEND Authentication-Results: mx.example; x-wot=pass"));
    // SIGTERM stops it and removes the socket.
    srv.signal(libc::SIGTERM);
    let mut srv = srv;
    let st = srv.child.wait().unwrap();
    assert!(st.success(), "{st}: {}", srv.log());
    assert!(!srv.socket().exists());
}

#[test]
fn hostile_requests_are_deferred_and_their_connection_closed() {
    let srv = Server::start(
        "hostile",
        "max_request_bytes = 1024\nmax_attributes = 16\n",
        true,
    );
    let cases: Vec<(String, Vec<u8>)> = vec![
        (
            "request longer than 1024 bytes".into(),
            format!(
                "request=smtpd_access_policy\nsender={}\n\n",
                "x".repeat(2000)
            )
            .into_bytes(),
        ),
        (
            "more than 16 attributes".into(),
            (0..20)
                .map(|i| format!("a{i}=1\n"))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "line 2: no '='".into(),
            b"request=smtpd_access_policy\nthis line has no equals sign\n\n".to_vec(),
        ),
        ("line 1: NUL byte".into(), b"request=smtp\x00d\n\n".to_vec()),
        (
            "is not lower-case letters".into(),
            b"\xde\xad\xbe\xef garbage \x01\x02=\xff\n\n".to_vec(),
        ),
        ("an empty request".into(), b"\n".to_vec()),
    ];
    for (want, bytes) in cases {
        let mut c = srv.connect();
        let _ = c.write_all(&bytes);
        let r = read_reply(&mut c);
        assert!(
            r.starts_with("action=DEFER_IF_PERMIT 4.7.1 wotgate: malformed policy request: ")
                && r.contains(&want),
            "{want}: {r:?}"
        );
        assert!(
            closed_within(&mut c, Duration::from_secs(5)),
            "{want}: not closed"
        );
    }
    // A client that sends half a request and stalls is closed after
    // policy.request_timeout (2 s); others are served meanwhile.
    // Stalled inside a line, and after whole lines.
    for half in [
        &b"request=smtpd_acc"[..],
        b"request=smtpd_access_policy\nclient_addr",
        b"request=smtpd_access_policy\n",
    ] {
        let mut stalled = srv.connect();
        stalled.write_all(half).unwrap();
        let t = Instant::now();
        assert_eq!(
            ask(&mut srv.connect(), &request("RCPT", ALPHA)),
            "action=DUNNO\n\n"
        );
        assert!(
            closed_within(&mut stalled, Duration::from_secs(8)),
            "the stalled client is still connected"
        );
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
    }
    // After all that the server still answers.
    assert_eq!(
        ask(&mut srv.connect(), &request("RCPT", ALPHA)),
        "action=DUNNO\n\n"
    );
}

#[test]
fn a_client_that_never_reads_is_closed_and_others_are_served() {
    let srv = Server::start("noread", "", true);
    let before = srv.peak_kib();
    let flooder = srv.connect();
    let sock = srv.socket();
    let flood = std::thread::spawn(move || {
        let mut f = flooder;
        f.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let req = request("RCPT", ALPHA);
        let t = Instant::now();
        let mut sent = 0u64;
        // Writes requests and never reads a reply, until the server gives up.
        loop {
            match f.write_all(req.as_bytes()) {
                Ok(()) => sent += 1,
                Err(e) => return (sent, t.elapsed(), e.kind()),
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "never closed after {sent} requests"
            );
        }
    });
    // While the flood runs, other clients get their answers promptly.
    for _ in 0..20 {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ask(&mut c, &request("RCPT", ALPHA)), "action=DUNNO\n\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (sent, took, kind) = flood.join().unwrap();
    eprintln!("the never-reading client was closed after {sent} requests, {took:?}");
    assert!(
        matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{kind:?} after {sent} requests"
    );
    assert!(took < Duration::from_secs(30), "closed after {took:?}");
    let peak = srv.peak_kib();
    assert!(
        peak < before + 32 * 1024,
        "memory grew from {before} to {peak} KiB"
    );
    assert_eq!(
        ask(&mut srv.connect(), &request("RCPT", ALPHA)),
        "action=DUNNO\n\n"
    );
}

/// Raises this process's open-file limit to at least `n` (root may raise the hard limit).
fn raise_nofile(n: u64) {
    // SAFETY: plain getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < n {
            r.rlim_cur = n;
            r.rlim_max = r.rlim_max.max(n);
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &r),
                0,
                "raise RLIMIT_NOFILE to {n}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[test]
fn five_thousand_concurrent_connections() {
    raise_nofile(12_000);
    let srv = Server::start("many", "", true);
    let t = Instant::now();
    let mut conns: Vec<UnixStream> = (0..5000).map(|_| srv.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let client = if i % 2 == 0 { ALPHA } else { EVE };
        c.write_all(request("RCPT", client).as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = read_reply(c);
        if i % 2 == 0 {
            assert_eq!(r, "action=DUNNO\n\n", "connection {i}");
        } else {
            assert!(
                r.starts_with("action=REJECT 5.7.1"),
                "connection {i}: {r:?}"
            );
        }
    }
    // Each of them is still open and answers a second request.
    for c in conns.iter_mut().step_by(97) {
        assert!(ask(c, &request("DATA", ALPHA)).starts_with("action=PREPEND"));
    }
    eprintln!("5000 connections answered in {:?}", t.elapsed());
}

#[test]
fn defers_until_a_refresh_succeeds_then_serves_after_sighup() {
    let srv = Server::start("nostate", "", false);
    let mut c = srv.connect();
    let r = ask(&mut c, &request("DATA", ALPHA));
    assert_eq!(r, "action=DEFER_IF_PERMIT 4.7.1 wotgate: no trust state yet (the first refresh has not succeeded); try again later\n\n");
    std::fs::rename(srv.dir.join("keyring.later"), srv.dir.join("keyring.pgp")).unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_log("policy trust state refreshed");
    // Same connection: the new state is in force without reconnecting.
    assert!(ask(&mut c, &request("DATA", ALPHA))
        .starts_with("action=PREPEND Authentication-Results: mx.example; x-wot=pass"));
}

#[test]
fn observe_labels_over_the_socket_and_a_stale_state_defers() {
    let srv = Server::start(
        "observe",
        "mode = \"observe\"\nmax_state_age = \"4s\"\n",
        true,
    );
    let t = Instant::now();
    let mut c = srv.connect();
    assert_eq!(ask(&mut c, &request("RCPT", EVE)), "action=DUNNO\n\n");
    let r = ask(&mut c, &request("DATA", EVE));
    assert!(
        r.starts_with("action=PREPEND Authentication-Results: mx.example; x-wot=fail reason=\"prefix: 2001:db8:e::25 is in no network"),
        "{r}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "too slow to see a fresh state"
    );
    // No refresh for longer than max_state_age: every request defers.
    std::thread::sleep(Duration::from_secs(5) - t.elapsed());
    let r = ask(&mut c, &request("DATA", ALPHA));
    assert!(
        r.starts_with("action=DEFER_IF_PERMIT 4.7.1 wotgate: the trust state is "),
        "{r}"
    );
    assert!(r.contains("older than policy.max_state_age"), "{r}");
}
