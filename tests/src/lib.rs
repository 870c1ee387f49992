//! Support for the root-only kernel tests: guards that own a pin directory
//! or a network namespace and remove it on drop, also when a test fails.

pub mod netns;
pub mod world;

use std::path::{Path, PathBuf};

use wotgate::gate::{self, Gate};

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
