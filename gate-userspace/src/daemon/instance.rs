//! Exactly one daemon per pin directory: a lock file under /run/wotgate named
//! after the pin directory, holding the daemon's pid while it runs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the lock files live.
pub const RUN_DIR: &str = "/run/wotgate";

/// Another daemon holds the pin directory, or the lock file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("another wotgate daemon (pid {}) already runs for the gate pinned at {}; lock file {}", pid.map_or("unknown".into(), |p| p.to_string()), pin_dir.display(), lock.display())]
    Held {
        pid: Option<u32>,
        pin_dir: PathBuf,
        lock: PathBuf,
    },
    #[error("lock file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The lock file for `pin_dir`: its path with `/` as `-` and `-` escaped,
/// as systemd names units after paths (`sys-fs-bpf-wotgate.lock`).
pub fn lock_path(pin_dir: &Path) -> PathBuf {
    let name: String = pin_dir
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| match c {
            '/' => "-".to_string(),
            '-' | '\\' => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect();
    PathBuf::from(RUN_DIR).join(format!("{name}.lock"))
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for `pin_dir` and writes this process's pid into it,
    /// or says which process holds it.
    pub fn acquire(pin_dir: &Path) -> Result<InstanceLock, InstanceError> {
        let path = lock_path(pin_dir);
        let io = |error| InstanceError::Io {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(RUN_DIR).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(InstanceError::Held {
                    pid: read_pid(&mut file),
                    pin_dir: pin_dir.to_path_buf(),
                    lock: path,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// What the lock file says about the daemon for a pin directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// The pid written last into the lock file (the running or last daemon).
    pub pid: Option<u32>,
    /// Whether that process holds the lock now: the daemon runs.
    pub running: bool,
}

/// Reads the lock file for `pin_dir` without taking the lock (taking it,
/// even briefly, could make a daemon starting at that moment refuse):
/// whether it is held is read from the kernel's lock table (/proc/locks).
pub fn holder(pin_dir: &Path) -> Holder {
    let path = lock_path(pin_dir);
    let Ok(mut file) = File::open(&path) else {
        return Holder {
            pid: None,
            running: false,
        };
    };
    let pid = read_pid(&mut file);
    let running = file
        .metadata()
        .ok()
        .and_then(|m| {
            let locks = std::fs::read_to_string("/proc/locks").ok()?;
            Some(flock_holders(&locks, m.dev(), m.ino()))
        })
        .is_some_and(|pids| !pids.is_empty());
    Holder { pid, running }
}

/// Pids holding a FLOCK on the file `dev`/`ino`, from /proc/locks text
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`, device in hex).
fn flock_holders(locks: &str, dev: u64, ino: u64) -> Vec<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // A blocked waiter's line starts with `->` and has one more field.
            let f = if f.get(1) == Some(&"->") {
                &f[1..]
            } else {
                &f[..]
            };
            if f.get(1) != Some(&"FLOCK") || f.first().is_some_and(|s| s.starts_with("->")) {
                return None;
            }
            let mut id = f.get(5)?.split(':');
            let maj = u32::from_str_radix(id.next()?, 16).ok()?;
            let min = u32::from_str_radix(id.next()?, 16).ok()?;
            let i: u64 = id.next()?.parse().ok()?;
            (maj == major && min == minor && i == ino).then(|| f.get(4)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_follow_the_pin_directory() {
        assert_eq!(
            lock_path(Path::new("/sys/fs/bpf/wotgate")),
            PathBuf::from("/run/wotgate/sys-fs-bpf-wotgate.lock")
        );
        assert_eq!(
            lock_path(Path::new("/sys/fs/bpf/wotgate-test")),
            PathBuf::from("/run/wotgate/sys-fs-bpf-wotgate\\x2dtest.lock")
        );
    }

    #[test]
    fn proc_locks_lines() {
        let text = "1: FLOCK  ADVISORY  WRITE 4321 00:1a:777 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 999 00:1a:777 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 55 00:1a:777 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 66 fd:01:777 0 EOF\n";
        let dev = libc::makedev(0, 0x1a);
        assert_eq!(flock_holders(text, dev, 777), [4321]);
        assert_eq!(flock_holders(text, libc::makedev(0xfd, 1), 777), [66]);
        assert!(flock_holders(text, dev, 778).is_empty());
    }
}
