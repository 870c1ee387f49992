//! Two-instruction XDP programs (`r0 = ACTION; exit`) the benchmarks measure
//! the gate against (pass-only, drop-all), loaded with bpf(2) directly: they
//! are not part of the shipped object. Also pinning and XDP links for them.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// `bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for BPF_OBJ_PIN.
#[repr(C)]
struct ObjPin {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// `bpf_attr` for BPF_LINK_CREATE (XDP).
#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _pad: [u64; 4],
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a zero-padded bpf_attr prefix for cmd, of the size given.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, size_of::<T>()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// A command that returns a new file descriptor.
fn bpf_fd<T>(cmd: libc::c_long, attr: &T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the kernel returned a fresh fd the caller now owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `r0 = action; exit` as an XDP program named `name` (at most 15 bytes).
pub fn load_constant(action: u32, name: &str) -> io::Result<OwnedFd> {
    // bpf_insn: code, dst/src registers, offset, immediate (little endian):
    // BPF_ALU64|BPF_MOV|BPF_K r0 = action, then BPF_JMP|BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (u64::from(action) << 32), 0x95];
    let license = CString::new("GPL").expect("no NUL");
    let mut prog_name = [0u8; 16];
    prog_name[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    bpf_fd(
        BPF_PROG_LOAD,
        &ProgLoad {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 0,
            log_size: 0,
            log_buf: 0,
            kern_version: 0,
            prog_flags: 0,
            prog_name,
            prog_ifindex: 0,
            expected_attach_type: 0,
        },
    )
}

/// Pins `prog` at `path` (in a bpf filesystem).
pub fn pin(prog: &OwnedFd, path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let attr = ObjPin {
        pathname: path.as_ptr() as u64,
        bpf_fd: prog.as_raw_fd() as u32,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    bpf(BPF_OBJ_PIN, &attr).map(drop)
}

/// Attaches `prog` to the interface `ifindex` (of the calling thread's
/// network namespace) in native mode, through a link that lives as long as
/// the returned fd.
pub fn link_xdp(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    bpf_fd(
        BPF_LINK_CREATE,
        &LinkCreate {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: 0,
            _pad: [0; 4],
        },
    )
}
