//! Raw BPF map commands aya does not offer: batch update, delete and key
//! reads, single-element update and delete with raw bytes, map creation.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

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
