//! Replacing the pinned XDP program with this build's in place: the pinned
//! maps are kept when their layout matches, every pinned link is switched
//! atomically (`BPF_LINK_UPDATE`), never detached, so no packet goes unjudged.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use aya::{programs::Xdp, EbpfLoader};
use aya_obj::maps::PinningType;

use super::{attach, sys, Gate, GateError, PROG_PIN};
use gate_common::maps;

/// Pin name of the new program while the links are switched to it; renamed
/// over [`PROG_PIN`] last (bpffs refuses dots in names).
pub(super) const PROG_NEXT_PIN: &str = "prog_next";

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_UPDATE: libc::c_long = 29;
/// `BPF_LINK_UPDATE` flag: replace only if the link still runs `old_prog_fd`.
const BPF_F_REPLACE: u32 = 1 << 2;

/// Why the program could not be upgraded; the old one keeps running.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("the gate pinned at {} has maps this build cannot use: {}; the running program and its maps were left as they are. This build needs a new gate: wotgate detach --purge, then wotgate attach (the daemon reloads its last good plan at once; traffic to the protected ports is not gated in between)", dir.display(), problems.join("; "))]
    Incompatible { dir: PathBuf, problems: Vec<String> },
    #[error("this wotgate's XDP object could not be read: {0}")]
    Object(String),
    #[error("loading this build's XDP program over the pinned maps: {0}")]
    Load(String),
    #[error("switching the link of {iface} to the new program failed: {cause}; every link runs the old program again")]
    LinkUpdate { iface: String, cause: io::Error },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
}

/// What an upgrade did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Upgraded {
    /// The program the pin held before.
    pub old_program: Option<u64>,
    /// The program the pin holds now (the old one when `unchanged`).
    pub new_program: Option<u64>,
    /// Interfaces whose link now runs the new program.
    pub links: Vec<String>,
    /// The pinned program was this build's already (same kernel tag) and
    /// every link ran it: nothing was loaded.
    pub unchanged: bool,
}

type Result<T> = std::result::Result<T, UpgradeError>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UpgradeError + '_ {
    move |cause| UpgradeError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u32]) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix for `cmd`, of the
    // size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// A program's fd from its id.
fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = [id, 0, 0, 0];
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel returned a fresh fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Switches `link` from `old` to `new` atomically; fails (EPERM) when the
/// link no longer runs `old`.
fn link_update(link: BorrowedFd<'_>, new: BorrowedFd<'_>, old: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [
        link.as_raw_fd() as u32,
        new.as_raw_fd() as u32,
        BPF_F_REPLACE,
        old.as_raw_fd() as u32,
    ];
    bpf(BPF_LINK_UPDATE, &mut attr).map(|_| ())
}

fn fdinfo_of(fd: &OwnedFd, path: &Path) -> Result<Vec<(String, String)>> {
    sys::fdinfo(fd).map_err(io_at(path))
}

fn text<'a>(info: &'a [(String, String)], key: &str) -> Option<&'a str> {
    info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A map attribute as fdinfo prints it (decimal, or hex with `0x`).
fn number(info: &[(String, String)], key: &str) -> Option<u64> {
    let v = text(info, key)?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// What differs between the maps this build pins by name and the maps
/// pinned in `dir`, one line per problem; empty when every map fits.
pub fn map_problems(dir: &Path, object: &[u8]) -> Result<Vec<String>> {
    let obj = aya_obj::Object::parse(object).map_err(|e| UpgradeError::Object(e.to_string()))?;
    let mut problems = Vec::new();
    let mut names: Vec<&String> = obj.maps.keys().collect();
    names.sort();
    for name in names {
        let m = &obj.maps[name];
        if m.pinning() != PinningType::ByName {
            continue;
        }
        let path = dir.join(name);
        if !path.exists() {
            problems.push(format!(
                "{name} is not pinned (this build would start it empty)"
            ));
            continue;
        }
        let fd = sys::obj_get(&path).map_err(io_at(&path))?;
        let info = fdinfo_of(&fd, &path)?;
        let wanted = [
            ("map_type", u64::from(m.map_type())),
            ("key_size", u64::from(m.key_size())),
            ("value_size", u64::from(m.value_size())),
            ("max_entries", u64::from(m.max_entries())),
        ];
        for (key, want) in wanted {
            // The compiled lookup's arrays and the records are sized when
            // the gate is made.
            if key == "max_entries" && sized_at_creation(name) {
                continue;
            }
            match number(&info, key) {
                Some(found) if found == want => {}
                found => problems.push(format!(
                    "{name} has {key} {}, this build needs {want}",
                    found.map_or("unknown".into(), |f| f.to_string())
                )),
            }
        }
        // Flags the object asks for must be set (the kernel may add its own).
        let want_flags = u64::from(m.map_flags());
        let flags = number(&info, "map_flags").unwrap_or(0);
        if flags & want_flags != want_flags {
            problems.push(format!(
                "{name} has map_flags {flags:#x}, this build needs {want_flags:#x}"
            ));
        }
    }
    Ok(problems)
}

/// Maps whose size the gate chooses when it is created (see
/// `Gate::create_with`), so the object's size is no requirement.
fn sized_at_creation(name: &str) -> bool {
    [
        maps::BUCKETS,
        maps::LISTS,
        maps::NODES,
        maps::LEAVES,
        maps::RECORD,
    ]
    .iter()
    .any(|m| m.contains(&name))
}

/// A program's `prog_tag` and `prog_id` from its fdinfo.
fn tag_and_id(fd: &OwnedFd, path: &Path) -> Result<(Option<String>, Option<u64>)> {
    let info = fdinfo_of(fd, path)?;
    Ok((
        text(&info, "prog_tag").map(str::to_string),
        sys::fdinfo_u64(&info, "prog_id"),
    ))
}

/// One pinned link the upgrade switches.
struct Link {
    iface: String,
    fd: OwnedFd,
    /// The program it runs now.
    prog: OwnedFd,
    prog_id: Option<u64>,
}

impl Gate {
    /// Replaces the pinned program with this build's. The pinned maps are
    /// kept (the new program is loaded over them) and must match what this
    /// build declares; every attached link is switched with one atomic
    /// `BPF_LINK_UPDATE` each, so each interface runs the old program or
    /// the new one, never none; a failed switch puts back the links already
    /// switched. With `only_if_changed`, a pinned program with the same
    /// kernel tag as this build's, run by every link, is left alone.
    pub fn upgrade(&self, only_if_changed: bool) -> Result<Upgraded> {
        let object = crate::EBPF_OBJECT;
        if object.is_empty() {
            return Err(GateError::NoObject.into());
        }
        let _guard = self.hold()?;
        let dir = self.pin_dir.clone();
        super::check_layout(&dir)?;
        let problems = map_problems(&dir, object)?;
        if !problems.is_empty() {
            return Err(UpgradeError::Incompatible { dir, problems });
        }
        let prog_pin = dir.join(PROG_PIN);
        let old_fd = sys::obj_get(&prog_pin).map_err(io_at(&prog_pin))?;
        let (old_tag, old_id) = tag_and_id(&old_fd, &prog_pin)?;
        let mut links = Vec::new();
        for a in self.attachments()?.into_iter().filter(|a| a.attached()) {
            let path = attach::link_pin(&dir, a.mode, &a.iface);
            let fd = sys::obj_get(&path).map_err(io_at(&path))?;
            let prog_id = a.program_id;
            let prog = match prog_id {
                Some(id) => prog_fd_by_id(id as u32).map_err(io_at(&path))?,
                None => old_fd.try_clone().map_err(io_at(&path))?,
            };
            links.push(Link {
                iface: a.iface,
                fd,
                prog,
                prog_id,
            });
        }

        super::sys::raise_memlock();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&dir)
            .load(object)
            .map_err(|e| UpgradeError::Load(GateError::from(e).to_string()))?;
        let prog: &mut Xdp = ebpf
            .program_mut(gate_common::PROGRAM_NAME)
            .ok_or(GateError::MissingProgram(gate_common::PROGRAM_NAME))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| UpgradeError::Load(e.to_string()))?;
        prog.load()
            .map_err(|e| UpgradeError::Load(GateError::from(e).to_string()))?;
        let new_fd: OwnedFd = prog
            .fd()
            .map_err(|e| UpgradeError::Load(e.to_string()))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_at(&prog_pin))?;
        let (new_tag, new_id) = tag_and_id(&new_fd, &prog_pin)?;
        let same = new_tag.is_some() && new_tag == old_tag;
        if only_if_changed && same && links.iter().all(|l| l.prog_id == old_id) {
            return Ok(Upgraded {
                old_program: old_id,
                new_program: old_id,
                links: Vec::new(),
                unchanged: true,
            });
        }

        // The new program pinned beside the old one first (a left-over
        // from an interrupted upgrade is replaced).
        let next_pin = dir.join(PROG_NEXT_PIN);
        if next_pin.exists() {
            std::fs::remove_file(&next_pin).map_err(io_at(&next_pin))?;
        }
        prog.pin(&next_pin).map_err(|cause| GateError::Pin {
            path: next_pin.clone(),
            cause,
        })?;
        let mut switched: Vec<&Link> = Vec::new();
        for l in &links {
            if let Err(cause) = link_update(l.fd.as_fd(), new_fd.as_fd(), l.prog.as_fd()) {
                for done in switched {
                    let _ = link_update(done.fd.as_fd(), done.prog.as_fd(), new_fd.as_fd());
                }
                let _ = std::fs::remove_file(&next_pin);
                return Err(UpgradeError::LinkUpdate {
                    iface: l.iface.clone(),
                    cause,
                });
            }
            switched.push(l);
        }
        // Last: the pin names the new program (the old one is freed when
        // its last reference, this fd, goes).
        std::fs::rename(&next_pin, &prog_pin).map_err(io_at(&prog_pin))?;
        Ok(Upgraded {
            old_program: old_id,
            new_program: new_id,
            links: links.into_iter().map(|l| l.iface).collect(),
            unchanged: false,
        })
    }
}
