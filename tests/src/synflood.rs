//! A small SYN sender for the flood and upgrade tests: prebuilt Ethernet +
//! IPv6 + TCP SYN frames with the sources the caller gives (documentation
//! addresses only), sent on an AF_PACKET socket inside a test namespace with
//! sendmmsg, checksums correct so a SYN that slipped through would be seen;
//! and the trusted peer that connects meanwhile ([`Connector`]).

use std::{
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use ipnet::Ipv6Net;
use rand::Rng;

use crate::netns::{connect, in_netns, NetNs};

/// Ethernet (14) + IPv6 (40) + TCP without options (20).
pub const FRAME_LEN: usize = 74;
/// Frames per sendmmsg call.
pub const BATCH: usize = 64;

const ETH_P_IPV6: u16 = 0x86dd;
const SOL_PACKET: i32 = 263;
const PACKET_QDISC_BYPASS: i32 = 20;

/// Sums 16-bit big-endian words (one's complement, not folded).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// One SYN frame from `src` to `dst`:`dport`, valid checksum.
pub fn syn_frame(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    seq: u32,
) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let (src_mac, dst_mac) = macs;
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6; // TCP
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let tcp = &mut f[54..74];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    set_source(&mut f, src);
    f
}

/// Puts `src` into a frame made by [`syn_frame`] and fixes its checksum.
pub fn set_source(f: &mut [u8; FRAME_LEN], src: Ipv6Addr) {
    f[22..38].copy_from_slice(&src.octets());
    f[70] = 0;
    f[71] = 0;
    // Pseudo-header: addresses, TCP length 20, next header 6.
    let acc = sum16(&f[22..54], 20 + 6);
    let c = fold(sum16(&f[54..74], acc));
    f[70..72].copy_from_slice(&c.to_be_bytes());
}

/// Sends SYN frames out of one interface of a test namespace.
pub struct SynSender {
    fd: OwnedFd,
    template: [u8; FRAME_LEN],
    frames: Vec<[u8; FRAME_LEN]>,
}

impl SynSender {
    /// An AF_PACKET socket bound to `ifname` inside `ns` (it stays there
    /// whichever thread uses it), sending to `dst`:`dport` from the MAC of
    /// `ifname` to `dst_mac`.
    pub fn open(
        ns: &NetNs,
        ifname: &str,
        dst_mac: [u8; 6],
        dst: Ipv6Addr,
        dport: u16,
    ) -> io::Result<SynSender> {
        let src_mac = mac_of(ns, ifname)?;
        let name = ifname.to_string();
        let fd = in_netns(&ns.name, move || -> io::Result<OwnedFd> {
            let index = ifindex(&name)?;
            // SAFETY: plain socket(2); protocol 0: this socket receives nothing.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let one: i32 = 1;
            // SAFETY: valid option pointer and size. Bypassing the qdisc is
            // an optimisation only: its failure is harmless.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_PACKET,
                    PACKET_QDISC_BYPASS,
                    &one as *const i32 as *const libc::c_void,
                    4,
                )
            };
            // SAFETY: zeroed sockaddr_ll, then the fields bind needs.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_IPV6.to_be();
            sll.sll_ifindex = index as i32;
            // SAFETY: valid sockaddr_ll of the size given.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(fd)
        })?;
        let template = syn_frame(
            (src_mac, dst_mac),
            Ipv6Addr::UNSPECIFIED,
            dst,
            40000,
            dport,
            1,
        );
        Ok(SynSender {
            fd,
            template,
            frames: vec![template; BATCH],
        })
    }

    /// Sends one SYN from each of `sources` (at most [`BATCH`]) in one
    /// sendmmsg; returns how many the kernel took.
    pub fn send(&mut self, sources: &[Ipv6Addr]) -> io::Result<usize> {
        let n = sources.len().min(BATCH);
        for (i, src) in sources[..n].iter().enumerate() {
            let f = &mut self.frames[i];
            // A different source port per frame too, as a real flood has.
            let port = 1024 + ((i as u32 * 7919) % 60000) as u16;
            f.copy_from_slice(&self.template);
            f[54..56].copy_from_slice(&port.to_be_bytes());
            set_source(f, *src);
        }
        let mut iov: Vec<libc::iovec> = self.frames[..n]
            .iter_mut()
            .map(|f| libc::iovec {
                iov_base: f.as_mut_ptr() as *mut libc::c_void,
                iov_len: FRAME_LEN,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: zeroed msghdr, then one iovec.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = v as *mut libc::iovec;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: `msgs` points at `n` valid headers whose buffers live
        // until the call returns.
        let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // A full device queue: nothing sent this time.
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::WouldBlock {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(rc as usize)
    }
}

/// The index of `name` in the calling thread's namespace.
fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// The MAC address of `ifname` in `ns` (`ip -o link`: nsenter keeps the
/// host's /sys).
pub fn mac_of(ns: &NetNs, ifname: &str) -> io::Result<[u8; 6]> {
    let out = ns.exec(&["ip", "-o", "link", "show", "dev", ifname]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default();
    let bytes: Vec<u8> = mac
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    bytes
        .try_into()
        .map_err(|_| io::Error::other(format!("no MAC address for {ifname}: {text:?}")))
}

/// `n` distinct random addresses inside `within` for which `skip` is false.
pub fn random_sources(
    n: usize,
    within: Ipv6Net,
    rng: &mut impl Rng,
    skip: impl Fn(Ipv6Addr) -> bool,
) -> Vec<Ipv6Addr> {
    let base = u128::from(within.network());
    let host_bits = 128 - u32::from(within.prefix_len());
    let mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = Ipv6Addr::from(base | (rng.gen::<u128>() & mask));
        if !skip(a) && seen.insert(a) {
            out.push(a);
        }
    }
    out
}

/// A counter of the `Tcp:` line of /proc/net/snmp in `ns` (IPv4 and IPv6
/// together), e.g. `PassiveOpens`: every SYN a listener took.
pub fn tcp_counter(ns: &NetNs, name: &str) -> u64 {
    let out = ns.exec(&["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(head), Some(vals)) = (tcp.next(), tcp.next()) else {
        panic!("no Tcp lines in /proc/net/snmp: {text}");
    };
    let i = head
        .split_whitespace()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no {name} in {head}"));
    vals.split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value for {name} in {vals}"))
}

/// Column `column` of `ifname`'s line in the namespace's `/proc/net/dev`
/// (nsenter keeps the host's /sys): receive bytes 0, packets 1, errs 2,
/// drop 3, fifo, frame, compressed, multicast; transmit bytes 8, packets 9,
/// errs 10, drop 11, ...
fn dev_stat(ns: &NetNs, ifname: &str, column: usize) -> u64 {
    let out = ns.exec(&["cat", "/proc/net/dev"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{ifname}:")))
        .unwrap_or_else(|| panic!("no {ifname} in /proc/net/dev: {text}"));
    line.split_whitespace()
        .nth(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no column {column} for {ifname}: {line}"))
}

/// Packets `ifname` in `ns` dropped on transmit (a veth counts there what
/// its peer's full queue refused; such a packet may also have been
/// refused to the sender, so this bounds the loss from above).
pub fn tx_dropped(ns: &NetNs, ifname: &str) -> u64 {
    dev_stat(ns, ifname, 11)
}

/// Packets `ifname` in `ns` received; on a veth with native XDP these are
/// the packets its program ran on, dropped or not.
pub fn rx_packets(ns: &NetNs, ifname: &str) -> u64 {
    dev_stat(ns, ifname, 1)
}

/// A trusted peer beside a flood: opens real TCP connections from `src` in
/// its namespace to `dst` in a loop, on a thread of its own, until
/// [`Connector::finish`]; counts the connects that succeeded and failed.
pub struct Connector {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Connector {
    /// Each connect waits up to `timeout` (a SYN lost in a full veth queue
    /// is sent again after 1 s); `pause` between connects.
    pub fn start(
        ns: &str,
        src: IpAddr,
        dst: SocketAddr,
        timeout: Duration,
        pause: Duration,
    ) -> Connector {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let thread = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let ns = ns.to_string();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = match connect(&ns, src, dst, timeout) {
                        Ok(_) => &ok,
                        Err(_) => &failed,
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                }
            })
        };
        Connector {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops, waits for the connect under way; (succeeded, failed).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("trusted peer thread");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
