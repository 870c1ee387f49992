//! The controller daemon as a real process (`wotgate run`) on a veth pair in
//! namespaces, with a real web of trust and statements signed by the CLI:
//! admission, SIGHUP, one daemon per pin directory, SIGKILL and adoption
//! without a gap, SIGTERM leaving the gate enforcing, a reboot, `status`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Output, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use integration_tests::{
    netns::{connect, Listener, NetNs, Pair},
    require_kernel, unique,
    world::World,
    wotgate_bin,
};
use serde_json::Value;

const SERVER: &str = "[2001:db8:ffff::1]:25";

/// The daemon process; SIGTERM then SIGKILL on drop, so a failing test
/// leaves no daemon behind.
struct DaemonProc {
    child: Child,
}

impl DaemonProc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {sig}");
    }

    /// Waits for the process to end, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            if self.wait(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Removes the pins and the daemon's lock file, also when a test fails.
struct PinsAndLock {
    pin: PathBuf,
}

impl Drop for PinsAndLock {
    fn drop(&mut self) {
        if let Err(e) = wotgate::gate::purge(&self.pin) {
            eprintln!("cleanup of {} failed: {e}", self.pin.display());
        }
        let _ = std::fs::remove_file(wotgate::daemon::instance::lock_path(&self.pin));
    }
}

fn start(ns: &NetNs, config: &Path, log: &Path) -> DaemonProc {
    start_with(ns, config, log, None)
}

/// Starts the daemon; `notify_socket` plays systemd's NOTIFY_SOCKET.
fn start_with(ns: &NetNs, config: &Path, log: &Path, notify_socket: Option<&Path>) -> DaemonProc {
    let bin = wotgate_bin();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = ns.cmd(&[
        bin.to_str().unwrap(),
        "run",
        "--config",
        config.to_str().unwrap(),
    ]);
    if let Some(s) = notify_socket {
        cmd.env("NOTIFY_SOCKET", s);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon");
    DaemonProc { child }
}

fn wotgate(ns: &NetNs, args: &[&str]) -> Output {
    let bin = wotgate_bin();
    let mut full = vec![bin.to_str().unwrap()];
    full.extend_from_slice(args);
    ns.cmd(&full).output().expect("run wotgate")
}

fn status(ns: &NetNs, config: &Path) -> (Option<i32>, Value) {
    let out = wotgate(
        ns,
        &["status", "--config", config.to_str().unwrap(), "--json"],
    );
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// Polls `status` until `cond` holds (at most 60 s), returning the last one.
fn wait_status(
    ns: &NetNs,
    config: &Path,
    log: &Path,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = status(ns, config);
        if cond(&v) {
            return v;
        }
        assert!(
            Instant::now() < end,
            "waiting for {what}; last status {v:#}\ndaemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn loaded_count(v: &Value) -> u64 {
    v["status"]["refreshes_loaded"].as_u64().unwrap_or(0)
}

fn admitted(pair: &Pair, client: &str) -> bool {
    connect(
        &pair.client.name,
        client.parse().unwrap(),
        SERVER.parse::<SocketAddr>().unwrap(),
        Duration::from_millis(1000),
    )
    .is_ok()
}

#[test]
fn the_daemon_keeps_the_gate_equal_to_the_web_of_trust() {
    require_kernel();
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-daemon-{}", unique("w"))),
        &bin,
    );
    let party = |n: &str| world.parties.iter().find(|p| p.name == n).unwrap();
    let (alpha, beta, eve) = (
        party("alpha").client,
        party("beta").client,
        party("eve").client,
    );
    let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
    let pair = Pair::new("dmn", &clients);
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("dmn")));
    let _cleanup = PinsAndLock { pin: pin.clone() };
    let _smtp = Listener::start(&pair.server.name, 25);

    // beta's statement arrives later.
    let held = world.dir.join("beta.asc.held");
    let beta_asc = world.dir.join("statements/beta.asc");
    std::fs::rename(&beta_asc, &held).unwrap();
    // The shipped example, with this world's inputs, interface and pins.
    let config = world.daemon_config(
        "daemon.toml",
        &[
            ("gate", "interfaces", vec![pair.server_if.clone()].into()),
            ("gate", "pin_directory", pin.display().to_string().into()),
            ("daemon", "refresh_interval", "1h".into()),
            ("metrics", "listen", "".into()),
        ],
    );
    let log = world.dir.join("daemon.log");
    let ns = &pair.server;

    // Before: no daemon, nothing pinned; status says so and exits 3.
    let (code, v) = status(ns, &config);
    assert_eq!(code, Some(3), "{v:#}");
    assert_eq!(v["daemon"]["running"], false);
    assert!(v["gate"].is_null(), "{v:#}");

    let mut d = start(ns, &config, &log);
    let v = wait_status(ns, &config, &log, "the first plan", |v| {
        loaded_count(v) >= 1
    });
    let (code, v2) = status(ns, &config);
    assert_eq!(code, Some(0), "{v2:#}");
    assert_eq!(v["daemon"]["running"], true);
    assert_eq!(v["daemon"]["pid"], d.pid());
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    assert_eq!(v["gate"]["mode"], "enforce");
    assert_eq!(
        v["gate"]["attachments"][0]["iface"],
        pair.server_if.as_str()
    );
    assert_eq!(v["status"]["start"], "created");
    let text =
        String::from_utf8(wotgate(ns, &["status", "--config", config.to_str().unwrap()]).stdout)
            .unwrap();
    assert!(
        text.contains(&format!("daemon: running (pid {}", d.pid())),
        "{text}"
    );
    assert!(text.contains("kernel equals plan: yes"), "{text}");

    assert!(admitted(&pair, alpha), "alpha is trusted");
    assert!(!admitted(&pair, beta), "beta has no statement yet");
    assert!(!admitted(&pair, eve), "eve is untrusted");

    // A second daemon for the same pins refuses, naming the first's pid.
    let out = wotgate(ns, &["run", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("(pid {})", d.pid())), "{err}");

    // A new statement and SIGHUP admit beta, written as a diff of beta's
    // entries alone (the daemon's gate handle knows what the gate holds).
    let (_, before) = status(ns, &config);
    let entries_before = before["gate"]["entries"].as_u64().expect("entries");
    std::fs::rename(&held, &beta_asc).unwrap();
    d.signal(libc::SIGHUP);
    let v = wait_status(ns, &config, &log, "the SIGHUP refresh", |v| {
        loaded_count(v) >= 2
    });
    let entries_after = v["gate"]["entries"].as_u64().expect("entries");
    let load = &v["status"]["last_refresh"]["load"];
    assert_eq!(load["mode"], "diff", "{v:#}");
    assert!(entries_after > entries_before, "{v:#}");
    assert_eq!(load["written"], entries_after - entries_before, "{v:#}");
    assert_eq!(load["removed"], 0, "{v:#}");
    assert!(admitted(&pair, beta), "beta after its statement and SIGHUP");
    assert!(!admitted(&pair, eve));

    // SIGHUP with nothing changed: a successful refresh, nothing swapped.
    let (_, before) = status(ns, &config);
    let generation = before["gate"]["generation"].clone();
    d.signal(libc::SIGHUP);
    let v = wait_status(ns, &config, &log, "the unchanged refresh", |v| {
        loaded_count(v) >= 3
    });
    assert_eq!(v["status"]["last_refresh"]["outcome"], "loaded", "{v:#}");
    assert_eq!(v["status"]["last_refresh"]["unchanged"], true, "{v:#}");
    assert_eq!(v["gate"]["generation"], generation, "swapped again: {v:#}");
    assert_eq!(v["kernel_equals_plan"], true);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("plan unchanged"));

    // SIGKILL, then a new daemon adopts the pins: alpha connects throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let client_ns = pair.client.name.clone();
        let alpha = alpha.to_string();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = connect(
                    &client_ns,
                    alpha.parse().unwrap(),
                    SERVER.parse().unwrap(),
                    Duration::from_millis(1000),
                );
                let n = if r.is_ok() { &ok } else { &failed };
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    d.signal(libc::SIGKILL);
    d.wait(Duration::from_secs(5)).expect("killed");
    let (code, v) = status(ns, &config);
    assert_eq!(code, Some(3));
    assert_eq!(v["daemon"]["running"], false);
    assert_eq!(
        v["kernel_equals_plan"], true,
        "the pins outlive the daemon: {v:#}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut d = start(ns, &config, &log);
    let v = wait_status(ns, &config, &log, "the adopting daemon", |v| {
        v["daemon"]["running"] == true && v["status"]["start"] == "adopted" && loaded_count(v) >= 1
    });
    assert_eq!(v["kernel_equals_plan"], true);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a trusted peer failed to connect"
    );
    assert!(ok.load(Ordering::Relaxed) > 5);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("adopting the pinned gate"), "{log_text}");

    // `wotgate reload` signals the pid in the lock file and waits.
    let out = wotgate(ns, &["reload", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("refreshed: generation"));

    // SIGTERM: the daemon ends, the gate keeps enforcing.
    d.signal(libc::SIGTERM);
    let st = d.wait(Duration::from_secs(10)).expect("stopped on SIGTERM");
    assert!(st.success(), "{st:?}");
    let (code, v) = status(ns, &config);
    assert_eq!(code, Some(3));
    assert_eq!(v["daemon"]["running"], false);
    assert!(v["status"]["stopped_at"].is_u64(), "{v:#}");
    assert_eq!(v["gate"]["attachments"][0]["live"], true);
    assert!(admitted(&pair, alpha) && admitted(&pair, beta) && !admitted(&pair, eve));

    // A reboot (empty bpffs) with inputs that cannot be read: the last good
    // plan is enforced at once and the failing refresh keeps it.
    wotgate::gate::purge(&pin).unwrap();
    std::fs::write(world.keyring(), b"garbage").unwrap();
    let mut d = start(ns, &config, &log);
    let v = wait_status(ns, &config, &log, "the refresh after the reboot", |v| {
        v["daemon"]["running"] == true && v["status"]["last_refresh"]["outcome"] == "refused"
    });
    assert_eq!(v["status"]["loaded"]["from"], "last-good-plan", "{v:#}");
    assert_eq!(v["kernel_equals_plan"], true);
    assert!(admitted(&pair, alpha) && admitted(&pair, beta) && !admitted(&pair, eve));
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).is_some());
}
