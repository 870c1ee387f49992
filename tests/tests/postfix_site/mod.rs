//! The site of the Postfix end-to-end tests: a web of trust, a private Postfix
//! behind the XDP gate, and `wotgate run` serving the policy on its socket.

// Drop order is field order: the daemon (SIGTERM, then SIGKILL), the pins
// and lock, Postfix (and its mail user), the namespaces,
// and last the world's directory (config, state, keys, certificates).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    netns::{connect, Pair},
    postfix::{
        mailbox::Message,
        swaks::{ClientTls, Swaks, Transcript},
        tls::TestCert,
        PostfixConfig, PostfixInstance, ServerTls,
    },
    require_kernel, unique,
    world::World,
    wotgate_bin,
};

pub const SERVER: &str = "2001:db8:ffff::1";
pub const SERVER_V4: &str = "192.0.2.1";
pub const CLIENT_V4: &str = "192.0.2.2";
/// Postfix's `myhostname` in the harness, and our authserv-id.
pub const AUTHSERV_ID: &str = "mx.example";
pub const POLICY_URL: &str = "https://mx.example/wotgate";

pub use integration_tests::postfix::POLICY_SERVICE;

/// The forged-header recipe (README, "Forged Authentication-Results
/// headers"), as a `regexp:` table: the policy server PREPENDs under the
/// secret `internal` name, which is renamed once (a REPLACEd header is not
/// checked again); guesses at the name and every incoming field carrying
/// `authserv_id` are dropped.
pub fn header_checks(internal: &str, authserv_id: &str) -> Vec<String> {
    let id = authserv_id.replace('.', r"\.");
    vec![
        format!(r"/^{internal}:(.*)$/ REPLACE Authentication-Results:$1"),
        r"/^X-Wotgate-AR-/ IGNORE".into(),
        // Our id followed by blanks, `;`, a comment or a version (RFC 8601
        // allows CFWS and a version after the authserv-id). POSIX regexp:
        // `\s` works outside brackets only (`[\s]` is a backslash or an s).
        format!(r"/^Authentication-Results:\s*{id}([[:space:];(]|$)/ IGNORE"),
    ]
}

/// The knobs the tests turn.
#[derive(Clone, Copy)]
pub struct Modes {
    pub gate_observe: bool,
    pub policy_observe: bool,
    /// `[policy] max_state_age`.
    pub max_state_age: &'static str,
}

pub const ENFORCE: Modes = Modes {
    gate_observe: false,
    policy_observe: false,
    max_state_age: "1h",
};

/// The daemon: SIGCONT and SIGTERM, then SIGKILL, on drop.
pub struct DaemonProc(pub Child);

impl DaemonProc {
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.0.id() as i32, sig) }, 0);
    }

    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            // A test may have stopped it (SIGSTOP).
            self.signal(libc::SIGCONT);
            self.signal(libc::SIGTERM);
            if self.wait(Duration::from_secs(5)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

/// Removes the pins (detaching the gate) and the daemon's lock file.
pub struct PinsAndLock(pub PathBuf);

impl Drop for PinsAndLock {
    fn drop(&mut self) {
        if let Err(e) = wotgate::gate::purge(&self.0) {
            eprintln!("cleanup of {} failed: {e}", self.0.display());
        }
        let _ = std::fs::remove_file(wotgate::daemon::instance::lock_path(&self.0));
    }
}

/// Everything one test runs against; dropped in field order (module note).
pub struct Site {
    pub daemon: Option<DaemonProc>,
    pub pins: PinsAndLock,
    pub pf: PostfixInstance,
    pub pair: Pair,
    /// beta's TLS client certificate (its key is in beta's statement), and another.
    pub beta_cert: TestCert,
    pub other_cert: TestCert,
    /// The secret header name the policy server PREPENDs under.
    pub internal: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub world: World,
}

/// `wotgate ARGS`, checked.
fn wotgate(args: &[&str]) -> String {
    let out = std::process::Command::new(wotgate_bin())
        .args(args)
        .output()
        .expect("run wotgate");
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Site {
    /// The world (beta's statement lists the SPKI SHA-256 of `beta_cert`),
    /// Postfix with STARTTLS and the README's policy and header_checks
    /// lines, and the daemon attached to the server's veth in `modes`.
    pub fn start(tag: &str, modes: Modes) -> Site {
        require_kernel();
        integration_tests::postfix::require_postfix();
        let bin = wotgate_bin();
        let world = World::create(
            &std::env::temp_dir().join(format!("wotgate-{}", unique(tag))),
            &bin,
        );
        let beta_cert = TestCert::self_signed(&world.dir, "beta-client", "mail.beta.example");
        let other_cert = TestCert::self_signed(&world.dir, "other-client", "mail.beta.example");
        assert_ne!(beta_cert.spki_sha256(), other_cert.spki_sha256());
        // beta signs a statement that binds its mail to its TLS key.
        let dir = world.dir.display().to_string();
        let body = wotgate(&[
            "statement",
            "new",
            "--domain",
            "beta.example",
            "--prefix",
            "2001:db8:b::/48",
            "--tls-key-fingerprint",
            &beta_cert.spki_sha256(),
            "--valid-for",
            "30d",
        ]);
        assert!(
            body.contains(&format!("tls-key-sha256: {}\n", beta_cert.spki_sha256())),
            "{body}"
        );
        std::fs::write(world.dir.join("beta-tls.body"), body).unwrap();
        let signed = wotgate(&[
            "statement",
            "sign",
            "--key",
            &format!("{dir}/keys/beta.key"),
            &format!("{dir}/beta-tls.body"),
        ]);
        std::fs::write(world.dir.join("statements/beta.asc"), signed).unwrap();

        let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
        let pair = Pair::new(tag, &clients);
        let internal = format!("X-Wotgate-AR-{}", unique("s"));
        let pf = PostfixInstance::start(
            &pair.server,
            PostfixConfig {
                recipient_restrictions: format!(
                    "permit_mynetworks, reject_unauth_destination, {POLICY_SERVICE}"
                ),
                data_restrictions: POLICY_SERVICE.into(),
                tls: Some(ServerTls::default()),
                header_checks: header_checks(&internal, AUTHSERV_ID),
                // Postfix listens on IPv4 too, so an IPv4 SYN has somewhere
                // to go: a connect that times out was dropped by the gate.
                extra: vec![
                    ("inet_protocols".into(), "all".into()),
                    ("inet_interfaces".into(), format!("{SERVER}, {SERVER_V4}")),
                ],
                ..Default::default()
            },
        );
        let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique(tag)));
        let config = world.dir.join("daemon.toml");
        let log = world.dir.join("daemon.log");
        let mut site = Site {
            daemon: None,
            pins: PinsAndLock(pin),
            pf,
            pair,
            beta_cert,
            other_cert,
            internal,
            config,
            log,
            world,
        };
        site.write_config(modes);
        site.start_daemon();
        site
    }

    /// The daemon's configuration: the world's, the gate on the server's
    /// veth, the policy on the instance's socket (owned by postfix, the
    /// default), with sender alignment.
    pub fn write_config(&self, m: Modes) {
        let mode = |observe| if observe { "observe" } else { "enforce" };
        std::fs::write(
            &self.config,
            format!(
                "{}\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\nmode = \"{}\"\n\
                 [daemon]\nrefresh_interval = \"1h\"\n[metrics]\nlisten = \"\"\n\
                 [policy]\nenabled = true\nsocket = \"{}\"\nauthserv_id = \"{AUTHSERV_ID}\"\n\
                 header_name = \"{}\"\nmode = \"{}\"\nsender_alignment = true\npolicy_url = \"{POLICY_URL}\"\nmax_state_age = \"{}\"\n",
                std::fs::read_to_string(&self.world.config).unwrap(),
                self.pair.server_if,
                self.pins.0.display(),
                mode(m.gate_observe),
                self.pf.policy_socket().display(),
                self.internal,
                mode(m.policy_observe),
                m.max_state_age,
            ),
        )
        .unwrap();
    }

    fn log_len(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.len())
            .unwrap_or(0)
    }

    /// Waits for any of `needles` in the daemon's log after byte `after`.
    pub fn wait_log(&self, needles: &[&str], after: usize) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text
                .get(after..)
                .is_some_and(|t| needles.iter().any(|n| t.contains(n)))
            {
                return;
            }
            assert!(
                Instant::now() < end,
                "none of {needles:?} in the daemon log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `wotgate run` in the server namespace and waits until its
    /// policy server listens and its first plan is loaded.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "a daemon is running");
        let after = self.log_len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let bin = wotgate_bin();
        let child = self
            .pair
            .server
            .cmd(&[
                bin.to_str().unwrap(),
                "run",
                "--config",
                self.config.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start wotgate run");
        self.daemon = Some(DaemonProc(child));
        self.wait_log(&["policy server listening"], after);
        self.wait_log(&["plan loaded", "plan unchanged"], after);
        let socket = self.pf.policy_socket();
        let meta =
            std::fs::metadata(&socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(meta.file_type().is_socket());
        let postfix_uid = uid_of("postfix");
        assert_eq!(meta.uid(), postfix_uid, "the socket belongs to postfix");
        assert_eq!(meta.mode() & 0o777, 0o660);
    }

    /// SIGKILL: no cleanup at all (the stale socket stays, the pins stay).
    pub fn kill_daemon(&mut self) {
        let mut d = self.daemon.take().expect("a daemon runs");
        d.signal(libc::SIGKILL);
        d.wait(Duration::from_secs(5)).expect("killed");
    }

    /// `wotgate reload`: the daemon reads its configuration again and refreshes.
    pub fn reload(&self) {
        let after = self.log_len();
        let bin = wotgate_bin();
        let out = self
            .pair
            .server
            .cmd(&[
                bin.to_str().unwrap(),
                "reload",
                "--config",
                self.config.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wotgate reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_log(&["plan loaded", "plan unchanged"], after);
    }

    pub fn party(&self, name: &str) -> &integration_tests::world::Party {
        self.world
            .parties
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no party {name}"))
    }

    /// A message from `party`'s client address: HELO mail.DOMAIN, sender
    /// postmaster@DOMAIN, one recipient tagged `case`, header `X-Case: case`.
    pub fn swaks(&self, party: &str, case: &str) -> Swaks {
        let p = self.party(party);
        Swaks::new(
            &self.pair.client.name,
            p.client.parse().unwrap(),
            SERVER.parse().unwrap(),
        )
        .helo(&format!("mail.{}", p.domain))
        .from(&format!("postmaster@{}", p.domain))
        .to(&[self.pf.address(case)])
        .header(&format!("X-Case: {case}"))
    }

    /// A message from the IPv4 client 192.0.2.2 to 192.0.2.1.
    pub fn swaks_v4(&self, case: &str) -> Swaks {
        Swaks::new(&self.pair.client.name, ip(CLIENT_V4), ip(SERVER_V4))
            .to(&[self.pf.address(case)])
            .header(&format!("X-Case: {case}"))
    }

    /// The delivered copies carrying `X-Case: case`.
    pub fn delivered(&self, case: &str) -> Vec<Message> {
        self.pf
            .messages()
            .into_iter()
            .filter(|m| m.header_values("X-Case").contains(&case))
            .collect()
    }

    /// Sends, expects `250 ... queued as`, waits for `copies` more deliveries
    /// and returns the copies of this case.
    pub fn send_ok(&self, s: Swaks, copies: usize) -> Vec<Message> {
        let case = s
            .headers
            .iter()
            .find_map(|h| h.strip_prefix("X-Case: "))
            .expect("an X-Case header")
            .to_string();
        let before = self.pf.delivery_count();
        let t = s.send();
        assert_eq!(t.final_code(), Some(250), "{case}:\n{}", self.explain(&t));
        assert_eq!(t.exit, Some(0), "{case}:\n{}", self.explain(&t));
        assert!(t.queue_id().is_some(), "{case}:\n{}", self.explain(&t));
        self.pf
            .wait_messages(before + copies, Duration::from_secs(20));
        let got = self.delivered(&case);
        assert_eq!(got.len(), copies, "{case}: copies\n{}", self.pf.maillog());
        got
    }

    /// Sends and expects the policy's rejection at RCPT for every recipient:
    /// `code`, and `text` is the status and the reason (`#` in it stands
    /// for a number); nothing queued, nothing delivered.
    pub fn send_rejected(&self, s: Swaks, code: u16, text: &str) -> Transcript {
        let before = self.pf.delivery_count();
        let case = s.headers.first().cloned().unwrap_or_default();
        let n = s.to.len();
        let t = s.send();
        assert!(t.connected(), "{case}: not connected\n{}", self.explain(&t));
        let rcpt = t.replies_to("RCPT");
        assert_eq!(rcpt.len(), n, "{case}:\n{}", self.explain(&t));
        // `554 5.7.1 <rcpt>: Recipient address rejected: REASON`.
        let (status, reason) = text.split_once(' ').expect("STATUS REASON");
        for r in &rcpt {
            assert_eq!(r.code, code, "{case}:\n{}", self.explain(&t));
            let said = r
                .text
                .split_once(": Recipient address rejected: ")
                .map_or("", |(_, said)| said);
            assert!(
                r.text.starts_with(&format!("{code} {status} <")) && matches(said, reason),
                "{case}: want {code} {text}...\n{}",
                t.text
            );
        }
        assert_eq!(t.queue_id(), None, "{case}:\n{}", self.explain(&t));
        assert_ne!(t.exit, Some(0), "{case}:\n{}", self.explain(&t));
        // Anything queued would be delivered within this time.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(self.pf.delivery_count(), before, "{case}: delivered");
        t
    }

    /// swaks from `party` (or an IPv4 source) gets no connection: the SYN
    /// is dropped, so the connect times out (not refused: something listens).
    pub fn assert_dropped(&self, source: IpAddr, server: IpAddr) {
        let mut s = Swaks::new(&self.pair.client.name, source, server).to(&[self.pf.address("x")]);
        s.timeout_secs = 3;
        let t0 = Instant::now();
        let t = s.send();
        let took = t0.elapsed();
        assert!(!t.connected(), "{source} connected:\n{}", t.text);
        assert!(
            t.text.contains("Error connecting") && took >= Duration::from_millis(2500),
            "{source}: want a connect timeout after 3 s, took {took:?}:\n{}",
            t.text
        );
        assert!(!t.text.to_lowercase().contains("refused"), "{}", t.text);
        // The same with a plain TCP connect.
        assert!(
            connect(
                &self.pair.client.name,
                source,
                SocketAddr::new(server, 25),
                Duration::from_millis(1000),
            )
            .is_err(),
            "{source} -> {server}: a plain connect got through"
        );
    }

    pub fn with_cert(cert: &TestCert) -> ClientTls {
        ClientTls {
            cert_and_key: Some((cert.cert.clone(), cert.key.clone())),
            ..Default::default()
        }
    }

    /// A raw SMTP session from `party`'s client, greeted and past EHLO.
    pub fn raw_session(&self, party: &str) -> RawSmtp {
        let p = self.party(party);
        let conn = connect(
            &self.pair.client.name,
            p.client.parse().unwrap(),
            SocketAddr::new(ip(SERVER), 25),
            Duration::from_secs(5),
        )
        .expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut s = RawSmtp {
            w: conn.try_clone().unwrap(),
            r: std::io::BufReader::new(conn),
        };
        let banner = s.reply();
        assert!(banner.starts_with("220 "), "{banner}");
        let ehlo = s.send(&format!("EHLO mail.{}", p.domain));
        assert!(ehlo.starts_with("250 "), "{ehlo}");
        s
    }

    /// One message over BDAT (CHUNKING, which swaks does not speak) from
    /// `party`: the replies to MAIL, each RCPT and BDAT.
    pub fn send_bdat(&self, party: &str, case: &str, recipients: &[String]) -> Vec<String> {
        let d = self.party(party).domain;
        let mut s = self.raw_session(party);
        let mut replies = vec![s.send(&format!("MAIL FROM:<postmaster@{d}>"))];
        replies.extend(recipients.iter().map(|a| s.send(&format!("RCPT TO:<{a}>"))));
        let body = format!(
            "From: postmaster@{d}\r\nSubject: bdat\r\nX-Case: {case}\r\n\r\nsent with BDAT\r\n"
        );
        replies.push(s.send(&format!("BDAT {} LAST\r\n{body}", body.len())));
        s.send("QUIT");
        replies
    }

    /// A transcript with Postfix's maillog and the daemon's log, for a failure.
    pub fn explain(&self, t: &Transcript) -> String {
        format!(
            "{}\n--- maillog:\n{}\n--- daemon log:\n{}",
            t.text,
            self.pf.maillog(),
            self.daemon_log()
        )
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A user's uid from /etc/passwd.
pub fn uid_of(user: &str) -> u32 {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user)).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no user {user}"))
}

/// `text` equals `pattern`, where one `#` in the pattern stands for a
/// decimal number.
pub fn matches(text: &str, pattern: &str) -> bool {
    match pattern.split_once('#') {
        None => text == pattern,
        Some((head, tail)) => text
            .strip_prefix(head)
            .and_then(|rest| rest.strip_suffix(tail))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The values of our Authentication-Results fields (those with our id).
pub fn ours(m: &Message) -> Vec<&str> {
    m.header_values("Authentication-Results")
        .into_iter()
        .filter(|v| v.starts_with(&format!("{AUTHSERV_ID};")))
        .collect()
}

/// A raw SMTP client session (for what swaks cannot do: BDAT, pausing
/// between commands).
pub struct RawSmtp {
    w: std::net::TcpStream,
    r: std::io::BufReader<std::net::TcpStream>,
}

impl RawSmtp {
    /// The next reply (a multi-line reply as its last line).
    pub fn reply(&mut self) -> String {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read a reply");
            assert!(n > 0, "the server closed the connection");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }

    /// Sends `command` (CRLF added) and returns the reply.
    pub fn send(&mut self, command: &str) -> String {
        use std::io::Write;
        self.w
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send a command");
        self.reply()
    }
}
