//! The pin directory's lock: every writer (load, attach, detach, purge,
//! settings, test runs) holds it only around its kernel work, and a process
//! that has to wait for it says so once and gives up after a bound.

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use aya::maps::{IterableMap, MapInfo};
use gate_common::maps;

use super::{pins, Gate, GateError, PurgeReport, Result};

/// How long a writer waits for the lock before giving up, unless the
/// process sets otherwise ([`set_lock_wait`]).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Who holds a lock another process is waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// The holder's command name (`/proc/PID/comm`), when readable.
    pub command: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(c) = &self.command {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

/// Said once when a writer finds the lock taken and starts to wait.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub dir: PathBuf,
    /// `None` when the holder could not be found (then only the path is known).
    pub holder: Option<LockHolder>,
    pub timeout: Duration,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waiting for the lock on {}", self.dir.display())?;
        if let Some(h) = &self.holder {
            write!(f, " held by {h}")?;
        }
        write!(
            f,
            "; giving up after {} s (Ctrl-C stops now)",
            self.timeout.as_secs()
        )
    }
}

/// The process-wide waiting policy: how long, and whom to tell.
#[derive(Clone, Copy, Debug)]
pub struct LockWait {
    /// Zero: give up at once when the lock is taken.
    pub timeout: Duration,
    /// Called once per wait, before waiting (an adapter prints it).
    pub notice: Option<fn(&Waiting)>,
}

static POLICY: Mutex<LockWait> = Mutex::new(LockWait {
    timeout: DEFAULT_LOCK_TIMEOUT,
    notice: None,
});

/// Sets how every lock taken from now on in this process waits.
pub fn set_lock_wait(policy: LockWait) {
    *POLICY.lock().unwrap_or_else(|e| e.into_inner()) = policy;
}

fn policy() -> LockWait {
    *POLICY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the exclusive lock on `dir` (flock on the directory itself: bpffs
/// holds no regular files), waiting as the policy says. Closing the file
/// releases it.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let f = File::open(dir).map_err(super::io_err(dir))?;
    if try_flock(&f).map_err(super::io_err(dir))? {
        return Ok(f);
    }
    let LockWait { timeout, notice } = policy();
    let holder = holder_of(&f);
    if timeout.is_zero() {
        return Err(GateError::LockBusy {
            dir: dir.to_path_buf(),
            holder,
            waited: timeout,
        });
    }
    if let Some(n) = notice {
        n(&Waiting {
            dir: dir.to_path_buf(),
            holder: holder.clone(),
            timeout,
        });
    }
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if try_flock(&f).map_err(super::io_err(dir))? {
            return Ok(f);
        }
        if start.elapsed() >= timeout {
            return Err(GateError::LockBusy {
                dir: dir.to_path_buf(),
                holder: holder_of(&f).or(holder),
                waited: timeout,
            });
        }
    }
}

/// One non-blocking attempt: Ok(false) when someone else holds it.
fn try_flock(f: &File) -> std::io::Result<bool> {
    // SAFETY: a valid fd owned by `f`.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The process holding a flock on the file `f` names, from `/proc/locks`
/// (lines like `1: FLOCK  ADVISORY  WRITE 4242 00:1e:17 0 EOF`).
fn holder_of(f: &File) -> Option<LockHolder> {
    let meta = f.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, meta.dev(), meta.ino())?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Some(LockHolder { pid, command })
}

/// The pid holding a FLOCK on device `dev`, inode `ino` in `/proc/locks` text.
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks.lines().find_map(|l| {
        let mut w = l.split_whitespace().skip(1);
        let kind = w.next()?;
        // Waiters are listed as `1: -> FLOCK ...`.
        if kind != "FLOCK" {
            return None;
        }
        let (_mode, _rw, pid, id) = (w.next()?, w.next()?, w.next()?, w.next()?);
        (id == want).then(|| pid.parse().ok()).flatten()
    })
}

impl Gate {
    /// Takes the pin directory's lock (waiting as [`set_lock_wait`] says)
    /// and returns this handle holding it: writers called through it do
    /// not take it again. Hold it only around kernel work, never while
    /// writing output. Fails with [`GateError::Removed`] when the gate was
    /// purged (or replaced) while this process waited.
    pub fn lock(&mut self) -> Result<Locked<'_>> {
        let file = lock_dir(&self.pin_dir)?;
        self.check_current()?;
        Ok(Locked::adopt(self, file))
    }

    /// The lock for one write: `None` when this handle holds it already.
    pub(super) fn hold(&self) -> Result<Option<File>> {
        if self.locked {
            return Ok(None);
        }
        let file = lock_dir(&self.pin_dir)?;
        self.check_current()?;
        Ok(Some(file))
    }

    /// The pins are still the maps this handle opened: nobody purged or
    /// re-created the gate meanwhile (a write would go to orphaned maps).
    fn check_current(&self) -> Result<()> {
        let ours = self.active.map().info().ok().map(|i| i.id());
        let pinned = MapInfo::from_pin(self.pin_dir.join(maps::ACTIVE))
            .ok()
            .map(|i| i.id());
        if ours.is_some() && ours == pinned {
            Ok(())
        } else {
            Err(GateError::Removed(self.pin_dir.clone()))
        }
    }
}

/// A gate handle holding the pin directory's lock; the lock is released
/// when it is dropped. Derefs to the [`Gate`].
pub struct Locked<'g> {
    gate: &'g mut Gate,
    _file: File,
}

impl<'g> Locked<'g> {
    pub(super) fn adopt(gate: &'g mut Gate, file: File) -> Locked<'g> {
        gate.locked = true;
        Locked { gate, _file: file }
    }

    /// Removes the gate (links first, which detaches it everywhere), still
    /// under this lock; the handle is of no use afterwards.
    pub fn purge(self) -> Result<PurgeReport> {
        pins::purge_locked(&self.gate.pin_dir)
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Gate;
    fn deref(&self) -> &Gate {
        self.gate
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Gate {
        self.gate
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.gate.locked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_in_proc_locks_and_waiters_are_not() {
        let dev = libc::makedev(0, 0x1e) as u64;
        let text = "1: POSIX  ADVISORY  WRITE 11 00:1e:17 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 00:1e:17 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4343 00:1e:17 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 99 00:1e:18 0 EOF\n";
        assert_eq!(holder_in(text, dev, 17), Some(4242));
        assert_eq!(holder_in(text, dev, 18), Some(99));
        assert_eq!(holder_in(text, dev, 19), None);
    }

    #[test]
    fn a_second_lock_waits_then_gives_up_naming_this_process() {
        let dir = std::env::temp_dir().join(format!("wotgate-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = lock_dir(&dir).unwrap();
        let f = File::open(&dir).unwrap();
        assert!(!try_flock(&f).unwrap(), "flock is per open file");
        let h = holder_of(&f).expect("holder in /proc/locks");
        assert_eq!(h.pid, std::process::id());
        drop(held);
        assert!(try_flock(&f).unwrap());
        drop(f);
        let _ = std::fs::remove_dir(&dir);
    }
}
