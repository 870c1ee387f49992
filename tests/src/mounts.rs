//! A private mount namespace for tests that mount or unmount bpffs: every
//! mount made in it vanishes with it, also when the test fails, and the
//! machine's /sys/fs/bpf (shared with everything else) is never touched.

use std::{
    io::Write,
    process::{Child, Command, Output, Stdio},
};

/// A mount namespace (private propagation) kept alive by a holder process;
/// dropped, the holder ends and the namespace with its mounts goes.
pub struct MountNs {
    holder: Child,
}

impl MountNs {
    /// A copy of the current mounts, private from here on.
    pub fn new() -> MountNs {
        // The holder waits on its standard input: it ends when this guard
        // drops it, or when the test process dies and the pipe closes.
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", "read _"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("unshare --mount (util-linux) is needed");
        let ns = MountNs { holder };
        // Wait until the holder runs in its own namespace.
        let ours = std::fs::read_link("/proc/self/ns/mnt").expect("own mount ns");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let theirs = std::fs::read_link(format!("/proc/{}/ns/mnt", ns.pid()));
            if matches!(&theirs, Ok(t) if *t != ours) && ns.exec_ok(&["true"]) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the mount namespace never came up"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ns
    }

    /// The same, with a fresh, empty bpffs mounted over /sys/fs/bpf inside.
    pub fn with_fresh_bpffs() -> MountNs {
        let ns = MountNs::new();
        ns.must(&["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]);
        ns
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `args` run inside this mount namespace (and network namespace
    /// `net`, when given).
    pub fn cmd_in(&self, net: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.pid()));
        if let Some(n) = net {
            c.arg(format!("--net=/run/netns/{n}"));
        }
        c.args(args);
        c
    }

    pub fn run(&self, net: Option<&str>, args: &[&str]) -> Output {
        self.cmd_in(net, args).output().expect("run nsenter")
    }

    fn exec_ok(&self, args: &[&str]) -> bool {
        self.run(None, args).status.success()
    }

    /// Runs `args` inside and panics with its output when it fails.
    pub fn must(&self, args: &[&str]) -> Output {
        let out = self.run(None, args);
        assert!(
            out.status.success(),
            "{args:?} in the mount namespace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// How many mounts sit at `path` in this namespace.
    pub fn mounts_at(&self, path: &str) -> usize {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid()))
            .expect("mountinfo of the namespace");
        info.lines()
            .filter(|l| l.split_whitespace().nth(4) == Some(path))
            .count()
    }
}

impl Default for MountNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.holder.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
