//! Support for the root-only kernel tests: guards that own a pin directory
//! or a network namespace and remove it on drop, also when a test fails;
//! the packet builder and the reference classifier the tests check against.

pub mod baseline;
pub mod daemon;
pub mod daemon_world;
pub mod demo;
pub mod https;
pub mod lookup_switch;
pub mod mounts;
pub mod netns;
pub mod packet;
pub mod postfix;
pub mod reference;
pub mod synflood;
pub mod world;

use std::path::{Path, PathBuf};

use wotgate::{
    gate::{self, Gate},
    model::prefixes::Verdict,
};

/// Fails loudly (never skips) when the kernel tests cannot run here.
pub fn require_kernel() {
    // SAFETY: trivial libc call.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "kernel tests need root (they load XDP programs and create namespaces); run them through `cargo xtask test`"
    );
    assert!(
        !wotgate::EBPF_OBJECT.is_empty(),
        "built without the XDP program: run through `cargo xtask test` (sets WOTGATE_BUILD_EBPF=1)"
    );
}

/// CPU time the calling thread has used, ns (for benchmarks: unlike wall
/// time, it leaves out other processes).
pub fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A name unique to this process and call, short enough for interface names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// A gate pinned in a directory of its own, purged on drop.
pub struct PinnedGate {
    pub dir: PathBuf,
    gate: Option<Gate>,
}

impl PinnedGate {
    pub fn new(tag: &str) -> PinnedGate {
        require_kernel();
        let dir = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique(tag)));
        let mut pg = PinnedGate { dir, gate: None };
        pg.gate = Some(Gate::create(&pg.dir).expect("create test gate"));
        pg
    }

    /// A gate whose compiled lookup has room for `capacity`.
    pub fn with_capacity(tag: &str, capacity: &wotgate::gate::compile::Capacity) -> PinnedGate {
        require_kernel();
        let dir = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique(tag)));
        let mut pg = PinnedGate { dir, gate: None };
        pg.gate = Some(Gate::create_with(&pg.dir, capacity).expect("create test gate"));
        pg
    }

    pub fn gate(&mut self) -> &mut Gate {
        self.gate.as_mut().expect("gate open")
    }

    /// Closes this process's handles (and lock) so another process can use
    /// the pins, e.g. the `wotgate` binary.
    pub fn release(&mut self) {
        self.gate = None;
    }

    pub fn reopen(&mut self) {
        self.gate = Some(Gate::open(&self.dir).expect("reopen test gate"));
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PinnedGate {
    fn drop(&mut self) {
        self.gate = None;
        if let Err(e) = gate::purge(&self.dir) {
            eprintln!("cleanup of {} failed: {e}", self.dir.display());
        }
    }
}

/// The longest-prefix match for `addr` in half `trie` (0 or 1) of the gate
/// pinned at `pin_dir`, from its record or else its LPM trie (a half being
/// written may hold it in either): the verdict and label index, `None` when
/// nothing matches.
pub fn lookup_in(
    pin_dir: &Path,
    trie: usize,
    addr: std::net::Ipv6Addr,
) -> anyhow::Result<Option<(Verdict, u32)>> {
    Ok(gate::Gate::open(pin_dir)?.probe_half(trie, addr)?)
}

/// The `wotgate` binary built beside this test (`cargo xtask test` builds it
/// first; `WOTGATE_BIN` overrides).
pub fn wotgate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WOTGATE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/wotgate
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("wotgate"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// `wotgate --pin-dir PIN ARGS...`, inside `ns` (through nsenter) when given.
pub fn wotgate_cmd(ns: Option<&netns::NetNs>, pin: &Path, args: &[&str]) -> std::process::Command {
    let bin = wotgate_bin();
    let mut full = vec![
        bin.to_str().expect("utf-8 path"),
        "--pin-dir",
        pin.to_str().expect("utf-8 path"),
    ];
    full.extend_from_slice(args);
    match ns {
        Some(ns) => ns.cmd(&full),
        None => {
            let mut c = std::process::Command::new(full[0]);
            c.args(&full[1..]);
            c
        }
    }
}

/// Waits for `child` (its output not piped, or drained elsewhere) and
/// returns how it ended and its peak resident memory in KiB, from its own
/// `VmHWM` (wait4's `ru_maxrss` would count the test process it was forked
/// from), read until it exits: the high-water mark only grows.
pub fn wait_with_peak_rss(mut child: std::process::Child) -> (std::process::ExitStatus, u64) {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak = peak.max(hwm);
        }
        if let Some(st) = child.try_wait().expect("wait for child") {
            return (st, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Collects a child's standard error as it comes, so a test can wait for a
/// line while the child still runs.
pub struct StderrWatch {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StderrWatch {
    pub fn new(child: &mut std::process::Child) -> StderrWatch {
        use std::io::Read;
        let mut err = child.stderr.take().expect("stderr piped");
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let t = text.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                t.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        StderrWatch {
            text,
            thread: Some(thread),
        }
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Whether `needle` shows up within `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// Everything, once the child has closed its standard error.
    pub fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }
}

/// Holds the pin directory's lock from the test process, as another
/// wotgate would; released on drop.
pub struct HeldLock(#[allow(dead_code)] std::fs::File);

impl HeldLock {
    pub fn take(dir: &Path) -> HeldLock {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(dir).expect("open pin dir");
        // SAFETY: valid fd.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        HeldLock(f)
    }
}

/// A temporary directory, removed on drop.
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new(tag: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("wotgate-{}", unique(tag)));
        std::fs::create_dir_all(&d).expect("temp dir");
        TmpDir(d)
    }

    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A prefix file of `n` allow /64 entries under 2001:db8:8000::/33, all
/// labelled `label`, or each its own label when `label` is empty.
pub fn many_prefixes(n: usize, label: &str) -> String {
    let mut text = String::with_capacity(n * 40);
    for i in 0..n {
        let l = if label.is_empty() {
            format!("l{i}")
        } else {
            label.to_string()
        };
        text.push_str(&format!(
            "allow 2001:db8:{:x}:{:x}::/64 {l}\n",
            0x8000 + (i >> 16),
            i & 0xffff
        ));
    }
    text
}
