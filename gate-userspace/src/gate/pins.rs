//! The pin directory: resolving the path an operator gives (lexically and
//! through symbolic links) before judging it, making sure it lies in a bpf
//! filesystem, and purging only the gate's own pins from it.

use std::path::{Component, Path, PathBuf};

use gate_common::maps;

use super::{attach, io_err, lock, sys, GateError, Result, PROG_PIN};

/// Where bpffs is mounted by convention, and the only place wotgate mounts it.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// `given` made absolute, with the part that exists resolved by the kernel
/// (symbolic links, `..`) and the rest normalised lexically: the directory
/// every later step works on.
pub fn resolve(given: &Path) -> std::io::Result<PathBuf> {
    let abs = if given.is_absolute() {
        given.to_path_buf()
    } else {
        std::env::current_dir()?.join(given)
    };
    let comps: Vec<Component> = abs.components().collect();
    for n in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..n].iter().collect();
        if let Ok(mut out) = std::fs::canonicalize(&prefix) {
            for c in &comps[n..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(s) => out.push(s),
                    Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                }
            }
            return Ok(out);
        }
    }
    Ok(abs)
}

/// The deepest part of `dir` that exists (`dir` itself when it does).
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

/// The pin directory for a gate about to be created: resolved, inside a
/// bpf filesystem and not its root. Mounts bpffs at /sys/fs/bpf, and only
/// there, when nothing at all is mounted there and the directory is below it.
pub(super) fn prepare(given: &Path) -> Result<PathBuf> {
    let dir = resolve(given).map_err(io_err(given))?;
    let root = Path::new(BPFFS_ROOT);
    if sys::is_bpffs(existing_ancestor(&dir)) {
        if dir.exists() && sys::is_mount_point(&dir) {
            return Err(GateError::BpffsRoot(dir));
        }
        return Ok(dir);
    }
    if dir == root {
        return Err(GateError::BpffsRoot(dir));
    }
    let below_root = dir.starts_with(root) && existing_ancestor(&dir) == root;
    if below_root && !sys::is_mount_point(root) {
        sys::mount_bpffs(root).map_err(GateError::Mount)?;
        if sys::is_bpffs(root) {
            return Ok(dir);
        }
    }
    Err(GateError::NotOnBpffs {
        given: given.to_path_buf(),
        resolved: dir,
    })
}

/// The pin directory of a gate that should exist: resolved, nothing mounted.
pub(super) fn resolve_existing(given: &Path) -> Result<PathBuf> {
    resolve(given).map_err(io_err(given))
}

/// Whether `name` is one of the names the gate pins.
fn is_gate_pin(name: &str) -> bool {
    maps::ALL.contains(&name)
        || name == PROG_PIN
        || name == super::upgrade::PROG_NEXT_PIN
        || attach::parse_link_pin(name).is_some()
}

/// Refuses a directory that is not a gate's: outside bpffs, a bpffs root,
/// or holding other things and none of the gate's pins. An empty
/// directory passes (a gate not created yet, or a failed creation).
pub(super) fn check_gate_dir(dir: &Path) -> Result<()> {
    if !sys::is_bpffs(dir) {
        return Err(GateError::NotOnBpffs {
            given: dir.to_path_buf(),
            resolved: dir.to_path_buf(),
        });
    }
    if sys::is_mount_point(dir) {
        return Err(GateError::BpffsRoot(dir.to_path_buf()));
    }
    let names = entries(dir)?;
    let (ours, foreign): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| is_gate_pin(n));
    if ours.is_empty() && !foreign.is_empty() {
        return Err(GateError::NotAGate {
            dir: dir.to_path_buf(),
            foreign,
        });
    }
    Ok(())
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// What a purge removed and what it left.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub dir: PathBuf,
    /// Interfaces whose link pin was removed (the gate is off them now).
    pub detached: Vec<String>,
    /// Pins removed: links, the program, the maps.
    pub removed: Vec<String>,
    /// Entries that are not the gate's, left where they were.
    pub left: Vec<String>,
    /// Whether the directory itself was removed (only when it was empty).
    pub dir_removed: bool,
}

/// Removes the gate pinned at `pin_dir` under its lock: its links (which
/// detaches it from every interface), program and maps, by their names
/// only; then the directory if nothing else is in it. A directory that
/// does not look like a gate's is refused; a missing one is no error.
pub fn purge(pin_dir: &Path) -> Result<PurgeReport> {
    purge_with(pin_dir, true)
}

/// As [`purge`], but refuses ([`GateError::StillAttached`]) while the gate
/// is attached to an interface that still exists (in any network namespace).
pub fn purge_if_unattached(pin_dir: &Path) -> Result<PurgeReport> {
    purge_with(pin_dir, false)
}

fn purge_with(pin_dir: &Path, detach_all: bool) -> Result<PurgeReport> {
    let dir = resolve_existing(pin_dir)?;
    if !dir.exists() {
        return Ok(PurgeReport {
            dir,
            ..Default::default()
        });
    }
    check_gate_dir(&dir)?;
    let _lock = lock::lock_dir(&dir)?;
    if !detach_all {
        let live: Vec<String> = attach::attachments_in(&dir)?
            .into_iter()
            .filter(|a| a.attached())
            .map(|a| a.iface)
            .collect();
        if !live.is_empty() {
            return Err(GateError::StillAttached { dir, ifaces: live });
        }
    }
    purge_locked(&dir)
}

/// The purge itself; the caller holds the lock.
pub(super) fn purge_locked(dir: &Path) -> Result<PurgeReport> {
    check_gate_dir(dir)?;
    let mut report = PurgeReport {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let names = entries(dir)?;
    // Links first (the gate leaves every interface), then the program,
    // then the maps.
    let order = |n: &String| {
        if attach::parse_link_pin(n).is_some() {
            0
        } else if n == PROG_PIN || n == super::upgrade::PROG_NEXT_PIN {
            1
        } else {
            2
        }
    };
    let mut ours: Vec<String> = names.iter().filter(|n| is_gate_pin(n)).cloned().collect();
    ours.sort_by_key(order);
    for name in ours {
        let p = dir.join(&name);
        std::fs::remove_file(&p).map_err(io_err(&p))?;
        if let Some((_, iface)) = attach::parse_link_pin(&name) {
            report.detached.push(iface);
        }
        report.removed.push(name);
    }
    report.left = entries(dir)?;
    if report.left.is_empty() {
        std::fs::remove_dir(dir).map_err(io_err(dir))?;
        report.dir_removed = true;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_resolved_lexically_and_through_links() {
        let base = std::env::temp_dir().join(format!("wotgate-pins-{}", std::process::id()));
        let real = base.join("real");
        std::fs::create_dir_all(&real).unwrap();
        let link = base.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        // `..` after an existing part is the kernel's: through the link.
        assert_eq!(resolve(&link.join("a")).unwrap(), real.join("a"));
        assert_eq!(
            resolve(&link.join("../real/x")).unwrap(),
            real.join("x"),
            "the link's parent is base"
        );
        // A missing part is normalised lexically, never created.
        assert_eq!(
            resolve(&link.join("no/../b/./c")).unwrap(),
            real.join("b/c")
        );
        assert!(!real.join("no").exists());
        assert_eq!(
            resolve(Path::new("/sys/fs/bpf/../../x")).unwrap(),
            PathBuf::from("/sys/x")
        );
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_the_gates_names_are_its_pins() {
        for n in [
            "WG_CONFIG",
            "WG_TRUST_1",
            "prog",
            "prog_next",
            "link_skb_eth0",
        ] {
            assert!(is_gate_pin(n), "{n}");
        }
        for n in [
            "wotgate",
            "maps.debug",
            "progs.debug",
            "link_",
            "WG_OTHER",
            "tc",
        ] {
            assert!(!is_gate_pin(n), "{n}");
        }
    }
}
