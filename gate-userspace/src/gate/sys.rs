//! Thin system helpers the gate needs and aya does not offer: bpffs mounting,
//! opening pinned objects, reading their fdinfo, interface names, the XDP
//! program on an interface (netlink), exact lookups in an LPM trie.

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

/// The XDP program attached to interface `ifindex` as netlink reports it:
/// its id (0 when several are attached) and the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkXdp {
    pub prog_id: u32,
    pub mode: &'static str,
}

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;

/// Asks the kernel (RTM_GETLINK) which XDP program runs on `ifindex`;
/// `None` when none does.
pub fn xdp_on_link(ifindex: u32) -> io::Result<Option<LinkXdp>> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16 bytes) + ifinfomsg (16 bytes).
    let mut req = [0u8; 32];
    req[0..4].copy_from_slice(&32u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNSPEC as u8;
    req[20..24].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    // SAFETY: valid buffer and length on our socket.
    let sent = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid buffer and length on our socket.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_getlink(&buf[..n as usize])
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Attributes `(type, payload)` of a netlink attribute stream.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(b, 0)? as usize;
        let ty = u16_at(b, 2)? & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, payload))
    })
}

fn parse_getlink(msg: &[u8]) -> io::Result<Option<LinkXdp>> {
    let bad = || io::Error::other("malformed netlink answer");
    let len = u32_at(msg, 0).ok_or_else(bad)? as usize;
    let ty = u16_at(msg, 4).ok_or_else(bad)?;
    let msg = msg.get(..len).ok_or_else(bad)?;
    if ty == NLMSG_ERROR {
        let errno = u32_at(msg, 16).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if ty != RTM_NEWLINK {
        return Err(bad());
    }
    let Some((_, xdp)) = attrs(msg.get(32..).ok_or_else(bad)?).find(|(t, _)| *t == IFLA_XDP) else {
        return Ok(None);
    };
    let mut attached = 0u8;
    let (mut any, mut drv, mut skb) = (0u32, 0u32, 0u32);
    for (t, p) in attrs(xdp) {
        match t {
            IFLA_XDP_ATTACHED => attached = p.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => any = u32_at(p, 0).unwrap_or(0),
            IFLA_XDP_DRV_PROG_ID => drv = u32_at(p, 0).unwrap_or(0),
            IFLA_XDP_SKB_PROG_ID => skb = u32_at(p, 0).unwrap_or(0),
            _ => {}
        }
    }
    let mode = match attached {
        0 => return Ok(None),
        1 => "native",
        2 => "skb",
        3 => "offloaded",
        _ => "several modes",
    };
    let prog_id = [any, drv, skb].into_iter().find(|i| *i != 0).unwrap_or(0);
    Ok(Some(LinkXdp { prog_id, mode }))
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// The kernel's ENOTSUPP (not in libc): a map type without batch operations.
const ENOTSUPP: i32 = 524;

/// `bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct Batch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn batch_call(cmd: libc::c_long, attr: &mut Batch) -> io::Result<()> {
    // SAFETY: attr is a valid bpf_attr prefix for the batch commands; the
    // caller sizes the buffers it points to for `count` elements.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Batch,
            std::mem::size_of::<Batch>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an error says the map type has no batch operations.
pub fn batch_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(ENOTSUPP)
    )
}

/// Elements per batch call: bounded, so one call never holds the kernel
/// for long and a failure says where it stopped.
pub const BATCH: usize = 16 * 1024;

/// `BPF_MAP_UPDATE_BATCH` of `keys` (each `key_size` bytes) and `values`
/// (each `value_size`), in calls of at most [`BATCH`]. On an error, how many
/// elements were written before it, and the error.
pub fn map_update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    key_size: usize,
    values: &[u8],
    value_size: usize,
) -> Result<(), (usize, io::Error)> {
    let n = keys.len() / key_size;
    debug_assert_eq!(values.len() / value_size, n);
    let mut done = 0;
    while done < n {
        let c = (n - done).min(BATCH);
        let mut attr = Batch {
            keys: keys[done * key_size..].as_ptr() as u64,
            values: values[done * value_size..].as_ptr() as u64,
            count: c as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        if let Err(e) = batch_call(BPF_MAP_UPDATE_BATCH, &mut attr) {
            return Err((done + attr.count as usize, e));
        }
        done += c;
    }
    Ok(())
}

/// `BPF_MAP_DELETE_BATCH` of `keys`, in calls of at most [`BATCH`]. On an
/// error (ENOENT: a key that is not there), how many were deleted before it.
pub fn map_delete_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    key_size: usize,
) -> Result<(), (usize, io::Error)> {
    let n = keys.len() / key_size;
    let mut done = 0;
    while done < n {
        let c = (n - done).min(BATCH);
        let mut attr = Batch {
            keys: keys[done * key_size..].as_ptr() as u64,
            count: c as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        if let Err(e) = batch_call(BPF_MAP_DELETE_BATCH, &mut attr) {
            return Err((done + attr.count as usize, e));
        }
        done += c;
    }
    Ok(())
}

/// Every key of `map` (each `key_size` bytes, concatenated) with
/// `BPF_MAP_LOOKUP_BATCH`, values read and dropped; `None` when the map
/// type has no batch lookup (the caller walks the keys instead).
pub fn map_keys_batch(
    map: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut kbuf = vec![0u8; BATCH * key_size];
    let mut vbuf = vec![0u8; BATCH * value_size];
    let mut token = vec![0u8; key_size];
    let mut first = true;
    loop {
        let mut out = vec![0u8; key_size];
        let mut attr = Batch {
            in_batch: if first { 0 } else { token.as_ptr() as u64 },
            out_batch: out.as_mut_ptr() as u64,
            keys: kbuf.as_mut_ptr() as u64,
            values: vbuf.as_mut_ptr() as u64,
            count: BATCH as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let r = batch_call(BPF_MAP_LOOKUP_BATCH, &mut attr);
        keys.extend_from_slice(&kbuf[..attr.count as usize * key_size]);
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Some(keys)),
            Err(e) if first && batch_unsupported(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        token = out;
        first = false;
    }
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// `bpf_attr` for the single-element map commands.
#[repr(C)]
struct Elem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn elem_call(cmd: libc::c_long, attr: &Elem) -> io::Result<()> {
    // SAFETY: attr is a valid bpf_attr prefix for the element commands;
    // the caller sizes key and value as the map's.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const Elem,
            std::mem::size_of::<Elem>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `BPF_MAP_UPDATE_ELEM` (BPF_ANY) with raw key and value bytes.
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    elem_call(
        BPF_MAP_UPDATE_ELEM,
        &Elem {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        },
    )
}

/// `BPF_MAP_DELETE_ELEM` with raw key bytes.
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    elem_call(
        BPF_MAP_DELETE_ELEM,
        &Elem {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: 0,
            flags: 0,
        },
    )
}

const BPF_MAP_CREATE: libc::c_long = 0;

/// `bpf_attr` for `BPF_MAP_CREATE`, up to `inner_map_fd`.
#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
}

/// `BPF_MAP_CREATE` of an unpinned map (a map-in-map with `inner` as its
/// template).
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    inner: Option<&OwnedFd>,
) -> io::Result<OwnedFd> {
    let attr = MapCreate {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
        inner_map_fd: inner.map_or(0, |f| f.as_raw_fd() as u32),
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_CREATE.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreate,
            std::mem::size_of::<MapCreate>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}
