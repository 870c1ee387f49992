//! Which XDP program runs on an interface, asked of the kernel over
//! rtnetlink (RTM_GETLINK) and read from the IFLA_XDP attributes.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

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
