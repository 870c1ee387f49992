//! Thin system helpers the gate needs and aya does not offer: bpffs mounting,
//! opening pinned objects, reading their fdinfo, interface names, the XDP
//! program on an interface (netlink, `netlink.rs`), exact lookups in an LPM
//! trie, raw map commands (batches, single elements, creation: `map.rs`).

mod map;
mod netlink;

pub use map::{
    batch_unsupported, map_create, map_delete, map_delete_batch, map_keys_batch, map_update,
    map_update_batch, BATCH,
};
pub use netlink::{xdp_on_link, LinkXdp};

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// Whether `path` lies on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Whether `path` is the root of a mount (its device differs from its
/// parent's, or it is `/`).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Ok(up)) = (std::fs::metadata(path), std::fs::metadata(path.join(".."))) else {
        return false;
    };
    m.dev() != up.dev() || m.ino() == up.ino()
}

/// Mounts a bpf filesystem at `target`, which must hold no mount yet.
pub fn mount_bpffs(target: &Path) -> io::Result<()> {
    if is_bpffs(target) || is_mount_point(target) {
        return Err(io::Error::other(format!(
            "{} is a mount point already; not mounting over it",
            target.display()
        )));
    }
    let src = CString::new("bpf").expect("no NUL");
    let dst = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("path contains NUL"))?;
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a pinned BPF object (program, map or link) and returns its fd.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("path contains NUL"))?;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        // Explicit, zeroed: the kernel rejects non-zero bytes past the
        // fields it knows.
        _pad: u32,
    }
    let attr = ObjGet {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_OBJ_GET.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Key/value pairs the kernel prints in `/proc/self/fdinfo` for a BPF fd
/// (`prog_id`, `link_id`, `ifindex`, `prog_jited`, ...).
pub fn fdinfo(fd: &OwnedFd) -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

pub fn fdinfo_u64(info: &[(String, String)], key: &str) -> Option<u64> {
    info.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buffer of IF_NAMESIZE as the API requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(s.to_string_lossy().into_owned())
}

/// Whether the BPF JIT is enabled (`/proc/sys/net/core/bpf_jit_enable`).
pub fn jit_enabled() -> Option<bool> {
    std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable")
        .ok()
        .map(|s| s.trim() != "0")
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use
/// memcg and may refuse the raise (EPERM even as root): harmless then.
pub fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid rlimit struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    if rc != 0 {
        tracing::debug!(
            "setrlimit(RLIMIT_MEMLOCK) failed: {}; fine on kernels with memcg accounting",
            io::Error::last_os_error()
        );
    }
}

/// `BPF_MAP_GET_NEXT_KEY`: writes the key after `key` (the first key when
/// `None`) into `next`. `Ok(false)` when there is none (ENOENT).
pub fn map_next_key(map: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    #[repr(C)]
    struct NextKey {
        map_fd: u32,
        _pad: u32,
        key: u64,
        next_key: u64,
    }
    let attr = NextKey {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        next_key: next.as_mut_ptr() as u64,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_GET_NEXT_KEY; the
    // caller sizes `key` and `next` as the map's key.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_GET_NEXT_KEY,
            &attr as *const NextKey,
            std::mem::size_of::<NextKey>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether the LPM trie `map` holds exactly `key` (prefix length and
/// bits; the kernel's `struct bpf_lpm_trie_key` layout). A lookup cannot
/// tell: it answers with the longest match. `BPF_MAP_GET_NEXT_KEY` can:
/// for a key that is not in the trie it returns the first key, for one
/// that is, the key after it (none after the last).
pub fn lpm_has_exact(map: BorrowedFd<'_>, key: &[u8], first: &[u8]) -> io::Result<bool> {
    let mut next = vec![0u8; key.len()];
    if !map_next_key(map, Some(key), &mut next)? {
        return Ok(true);
    }
    Ok(key == first || next != first)
}
