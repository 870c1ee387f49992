//! Running the measured processes: the wotgate child without backtraces,
//! time limits, peak memory and CPU time.

use super::*;

/// Our child process, without `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`: with
/// them every error sequoia makes and drops while parsing captures a
/// backtrace (measured: parse of the 10k network 3.0 s instead of 1.6 s),
/// which a deployed daemon does not do.
pub(crate) fn wotgate_child(exe: PathBuf) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

/// Spawns, waits with wait4 for the child's max RSS (KiB); returns stdout,
/// or None if it ran past `limit` (then it is killed). A non-zero exit fails.
pub(crate) fn run_limited(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Option<(String, u64)>> {
    let Some((out, peak, status)) = run_limited_status(cmd, stdin, limit)? else {
        return Ok(None);
    };
    if status != Some(0) {
        bail!("{cmd:?} failed (exit {status:?})");
    }
    Ok(Some((out, peak)))
}

/// [`run_limited`], returning the exit code (None: killed by a signal)
/// instead of failing on it.
pub(crate) fn run_limited_status(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Option<(String, u64, Option<i32>)>> {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if let Some(b) = stdin {
        child.stdin.take().unwrap().write_all(b)?;
    }
    drop(child.stdin.take());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: plain libc calls on our own child's pid with valid out-pointers.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Peak RSS from the child's own VmHWM, polled: wait4's ru_maxrss would
    // include this (large) parent's RSS, inherited at fork.
    let mut peak = 0u64;
    loop {
        peak = peak.max(vm_hwm_kib(pid));
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            bail!("wait4 on {cmd:?}: {}", std::io::Error::last_os_error());
        }
        if start.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            let _ = reader.join();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = reader.join().unwrap_or_default();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(Some((out, peak, code)))
}

/// CPU time (user and system) of every thread of this process so far: on a
/// shared machine it varies less than the wall clock.
pub(crate) fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub(crate) fn vm_hwm_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// This benchmark run again as a child in `mode` (`--measure`, `--whole`)
/// on one input: its output and peak RSS.
pub(crate) fn run_child(
    mode: &str,
    ring: &Path,
    root: &Fingerprint,
    at: u64,
    extra: &[&str],
) -> Result<(String, u64)> {
    let mut c = wotgate_child(std::env::current_exe()?);
    c.arg(mode)
        .arg(ring)
        .args([root.to_hex(), at.to_string()])
        .args(extra);
    run_measured(&mut c, None)
}

pub(crate) fn run_measured(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<(String, u64)> {
    run_limited(cmd, stdin, Duration::from_secs(24 * 3600))?.context("no time limit")
}
