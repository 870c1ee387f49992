//! The policy server inside `wotgate run` (`[policy] enabled`): the same
//! trust state as the gate, for every party of the world, and a refresh that
//! changes it reaches an open policy connection without reconnecting.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    daemon::{get, value, METRICS},
    netns::{connect, Listener, Pair},
    require_kernel, unique,
    world::World,
    wotgate_bin,
};

const SERVER: &str = "[2001:db8:ffff::1]:25";

/// The daemon; SIGTERM, then SIGKILL, and the pins purged on drop.
struct Daemon {
    child: Child,
    pin: PathBuf,
}

impl Daemon {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            if self.wait(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = wotgate::gate::purge(&self.pin);
        let _ = std::fs::remove_file(wotgate::daemon::instance::lock_path(&self.pin));
    }
}

/// Waits for a line of the daemon's log that holds every one of `needles`.
fn wait_log(log: &Path, needles: &[&str]) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return;
        }
        assert!(
            Instant::now() < end,
            "no line with {needles:?} in the daemon log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ask(s: &mut UnixStream, stage: &str, client: &str) -> String {
    let req = format!(
        "request=smtpd_access_policy\nprotocol_state={stage}\nclient_address={client}\nhelo_name=mx.example.org\nsender=a@example.org\ninstance=1.2.3\n\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\n\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "EOF after {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(b[0]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn the_daemon_serves_the_policy_from_the_gates_trust_state() {
    require_kernel();
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-dpol-{}", unique("w"))),
        &bin,
    );
    let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
    let pair = Pair::new("dpol", &clients);
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("dpol")));
    let _smtp = Listener::start(&pair.server.name, 25);
    let config = world.dir.join("daemon.toml");
    let socket = world.dir.join("policy.sock");
    std::fs::write(
        &config,
        format!(
            "{}\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n[daemon]\nrefresh_interval = \"1h\"\n[metrics]\nlisten = \"{METRICS}\"\n\
             [policy]\nenabled = true\nsocket = \"policy.sock\"\nsocket_owner = \"\"\nauthserv_id = \"mx.example\"\n",
            std::fs::read_to_string(&world.config).unwrap(),
            pair.server_if,
            pin.display()
        ),
    )
    .unwrap();
    let log = world.dir.join("daemon.log");
    let child = pair
        .server
        .cmd(&[
            bin.to_str().unwrap(),
            "run",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Daemon { child, pin };
    wait_log(&log, &["policy server listening"]);
    wait_log(&log, &["plan loaded", "start"]);
    let mut c = UnixStream::connect(&socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Gate and policy agree on every party; the header names signer and depth.
    for p in &world.parties {
        let gate = connect(
            &pair.client.name,
            p.client.parse().unwrap(),
            SERVER.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(1000),
        )
        .is_ok();
        assert_eq!(gate, p.admitted, "{}: the gate", p.name);
        let r = ask(&mut c, "DATA", p.client);
        if p.admitted {
            let depth = if p.name == "alpha" { 1 } else { 2 };
            let want = format!(
                "policy.domain={} policy.signer={} policy.depth={depth}",
                p.domain,
                p.tsk.fingerprint().to_hex()
            );
            assert!(
                r.starts_with("action=PREPEND Authentication-Results: mx.example; x-wot=pass")
                    && r.contains(&want),
                "{}: {r}",
                p.name
            );
        } else {
            assert!(
                r.starts_with("action=REJECT 5.7.1 wotgate prefix check failed"),
                "{}: {r}",
                p.name
            );
        }
    }
    assert!(ask(&mut c, "DATA", "2001:db8:a:bad::10")
        .contains("denied by a refused key's statement for mallory.example"));
    // beta's statement goes; after SIGHUP the open connection sees it.
    std::fs::remove_file(world.dir.join("statements/beta.asc")).unwrap();
    d.signal(libc::SIGHUP);
    wait_log(&log, &["plan loaded", "sighup"]);
    assert!(ask(&mut c, "RCPT", "2001:db8:b::10").starts_with("action=REJECT 5.7.1"));
    assert_eq!(ask(&mut c, "RCPT", "2001:db8:a::10"), "action=DUNNO\n\n");
    // Every answer is counted in /metrics, with the open connection.
    let (code, text) = get(&pair.server.name, "/metrics").unwrap();
    assert_eq!(code, 200, "{text}");
    let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
    let admitted = world.parties.iter().filter(|p| p.admitted).count() as f64;
    let refused = world.parties.len() as f64 - admitted;
    assert_eq!(
        v("wotgate_policy_requests_total{stage=\"data\"}"),
        world.parties.len() as f64 + 1.0
    );
    assert_eq!(v("wotgate_policy_requests_total{stage=\"rcpt\"}"), 2.0);
    assert_eq!(v("wotgate_policy_requests_total{stage=\"other\"}"), 0.0);
    assert_eq!(
        v("wotgate_policy_verdicts_total{result=\"pass\"}"),
        admitted + 1.0
    );
    assert_eq!(
        v("wotgate_policy_verdicts_total{result=\"fail\"}"),
        refused + 2.0
    );
    assert_eq!(v("wotgate_policy_verdicts_total{result=\"defer\"}"), 0.0);
    assert_eq!(
        v("wotgate_policy_failures_total{check=\"prefix\"}"),
        refused + 2.0
    );
    assert_eq!(v("wotgate_policy_failures_total{check=\"helo\"}"), 0.0);
    assert_eq!(v("wotgate_policy_connections"), 1.0);
    assert_eq!(v("wotgate_policy_connections_refused_total"), 0.0);
    // SIGTERM stops the daemon and removes the socket.
    d.signal(libc::SIGTERM);
    let st = d.wait(Duration::from_secs(10)).expect("stopped");
    assert!(st.success(), "{st:?}");
    assert!(!socket.exists());
}
