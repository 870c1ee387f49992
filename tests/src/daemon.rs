//! The controller daemon as a test process: start it in a test network namespace
//! (optionally in a mount namespace of its own), signal it, read `status`, scrape its metrics.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{netns::in_netns, netns::NetNs, wotgate_bin};

/// Where the daemons of these tests serve their metrics (inside their
/// own network namespace, so every test can use the same address).
pub const METRICS: &str = "127.0.0.1:9725";

/// The daemon process; SIGTERM then SIGKILL on drop, so a failing test
/// leaves no daemon behind (its mount namespace, if any, ends with it).
pub struct DaemonProc {
    child: Child,
    /// The network namespace it runs in.
    pub net: String,
    /// Whether it runs in a mount namespace of its own.
    pub own_mounts: bool,
}

impl DaemonProc {
    /// Starts `wotgate run --config CONFIG` in `ns`, standard error appended
    /// to `log`, at log level info.
    pub fn start(ns: &NetNs, config: &Path, log: &Path) -> DaemonProc {
        DaemonProc::start_with_mounts(ns, config, log, None)
    }

    /// Like [`DaemonProc::start`], in a private mount namespace prepared by
    /// the shell commands `setup` when given (`$BIN` and `$CONFIG` are set).
    /// nsenter, unshare and sh exec in turn, so the child is the daemon.
    pub fn start_with_mounts(
        ns: &NetNs,
        config: &Path,
        log: &Path,
        setup: Option<&str>,
    ) -> DaemonProc {
        let bin = wotgate_bin();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the daemon log");
        let mut cmd = match setup {
            None => ns.cmd(&[
                bin.to_str().unwrap(),
                "run",
                "--config",
                config.to_str().unwrap(),
            ]),
            Some(setup) => ns.cmd(&[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &format!("set -e; {setup}; exec \"$BIN\" run --config \"$CONFIG\""),
            ]),
        };
        let child = cmd
            .env("BIN", &bin)
            .env("CONFIG", config)
            .env("WOTGATE_LOG", "info")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        DaemonProc {
            child,
            net: ns.name.clone(),
            own_mounts: setup.is_some(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {sig}");
    }

    /// Waits for the process to end, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10))
            .expect("the daemon ends on SIGKILL");
    }

    /// `args` in the daemon's network namespace and, when it has its own,
    /// its mount namespace (so they see what it sees).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        if self.own_mounts {
            c.arg(format!("--mount=/proc/{}/ns/mnt", self.pid()));
        }
        c.arg(format!("--net=/run/netns/{}", self.net)).args(args);
        c
    }

    /// Runs shell commands in the daemon's namespaces; panics when they fail.
    pub fn sh(&self, script: &str) -> Output {
        let out = self.cmd(&["sh", "-c", script]).output().expect("run sh");
        assert!(
            out.status.success(),
            "{script:?} in the daemon's namespaces failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `wotgate ARGS` where the daemon runs.
    pub fn wotgate(&self, args: &[&str]) -> Output {
        let bin = wotgate_bin();
        let mut full = vec![bin.to_str().unwrap()];
        full.extend_from_slice(args);
        self.cmd(&full).output().expect("run wotgate")
    }

    /// `wotgate status --config CONFIG --json` where the daemon runs.
    pub fn status(&self, config: &Path) -> Value {
        let out = self.wotgate(&["status", "--config", config.to_str().unwrap(), "--json"]);
        parse_status(&out)
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

/// `wotgate ARGS` in `ns` (network namespace only).
pub fn wotgate(ns: &NetNs, args: &[&str]) -> Output {
    let bin = wotgate_bin();
    let mut full = vec![bin.to_str().unwrap()];
    full.extend_from_slice(args);
    ns.cmd(&full).output().expect("run wotgate")
}

/// `wotgate status --config CONFIG --json` in `ns`.
pub fn status(ns: &NetNs, config: &Path) -> Value {
    parse_status(&wotgate(
        ns,
        &["status", "--config", config.to_str().unwrap(), "--json"],
    ))
}

fn parse_status(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Refreshes that loaded a plan, as the status file counts them.
pub fn loaded_count(v: &Value) -> u64 {
    v["status"]["refreshes_loaded"].as_u64().unwrap_or(0)
}

/// What the kernel enforces, from `status --json`: entries and digest.
pub fn kernel_set(v: &Value) -> (u64, String) {
    (
        v["gate"]["entries"].as_u64().unwrap_or(u64::MAX),
        v["gate"]["digest"].as_str().unwrap_or("none").to_string(),
    )
}

/// Removes the pins, the daemon's lock file and a test directory, also
/// when the test fails.
pub struct Cleanup {
    pub pin: PathBuf,
    pub dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = wotgate::gate::purge(&self.pin) {
            eprintln!("cleanup of {} failed: {e}", self.pin.display());
        }
        let _ = std::fs::remove_file(wotgate::daemon::instance::lock_path(&self.pin));
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `GET path` on [`METRICS`] inside network namespace `ns`: status code and body.
pub fn get(ns: &str, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_string();
    in_netns(ns, move || {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, body.to_string()))
    })
}

/// The value of one series (`name{labels}`) in a scrape.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Refreshes since the daemon started, whatever their result.
pub fn refreshes(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("wotgate_refresh_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// One scrape of `/metrics`; panics (with the log) when it does not answer.
pub fn scrape(ns: &str, log: &Path) -> String {
    match get(ns, "/metrics") {
        Ok((200, text)) => text,
        other => panic!(
            "scrape: {other:?}\ndaemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

/// Scrapes until `cond` holds (at most 60 s), returning that scrape.
pub fn wait_scrape(ns: &str, log: &Path, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        if let Ok((200, text)) = get(ns, "/metrics") {
            if cond(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < end,
            "waiting for {what}; last scrape:\n{last}\ndaemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's log from byte `from` on (what a step added).
pub fn log_since(log: &Path, from: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(text.get(from..).unwrap_or_default()).into_owned()
}

/// The log's length now, to read what comes next with [`log_since`].
pub fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |m| m.len() as usize)
}

/// The log's records (a record goes on over the lines of a multi-line
/// field until the next line that starts with a timestamp), ANSI colours removed.
pub fn records(log: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in strip_ansi(log).lines() {
        let b = line.as_bytes();
        let starts = b.len() > 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
        match out.last_mut() {
            Some(last) if !starts => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// The first record of `log` that contains every one of `needles`.
pub fn record_with(log: &str, needles: &[&str]) -> Option<String> {
    records(log)
        .into_iter()
        .find(|r| needles.iter().all(|n| r.contains(n)))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
