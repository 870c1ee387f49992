//! The wotgate XDP program: drops TCP SYNs to protected ports unless the IPv6
//! source matches an allow entry of the active trusted set; everything else passes.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    macros::{map, xdp},
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, PerCpuArray,
    },
    programs::XdpContext,
};
use gate_common::{
    lookup::{
        self as lk, Bucket, Found, ListEntry, LookupHeader, Node, Store, Words, BPF_F_MMAPABLE,
        DEFAULT_BUCKETS, DEFAULT_LEAF_WORDS, DEFAULT_LISTS, DEFAULT_NODES, HDR_SHORT, HDR_VALID,
        LV_ALLOW, LV_DENY, LV_NONE,
    },
    record::{RecordSlot, DEFAULT_RECORD_SLOTS},
    Entry, GateConfig, Ipv6Bytes, Label, Meta, Reason, ACTIVE_SETTINGS, ACTIVE_TRIE, CONFIG_SLOTS,
    COUNTER_SLOTS, FLAG_OBSERVE, FLAG_PROTECT_DST, LABELS_MAX_ENTRIES, MAX_EXT_HEADERS,
    MAX_VLAN_TAGS, PROTECT_MAX_ENTRIES, REASON_COUNT, TEST_RUN_IFINDEX, TRUST_MAX_ENTRIES,
    VERDICT_ALLOW,
};

const BPF_F_NO_PREALLOC: u32 = 1;

/// One configuration per settings slot.
#[map(name = "WG_CONFIG")]
static WG_CONFIG: Array<GateConfig> = Array::pinned(CONFIG_SLOTS, 0);
/// Which trie (bit 0) and which settings slot (bit 1) the datapath reads;
/// a bit is flipped by user space after the inactive half has been written
/// (and, for the trie, checked).
#[map(name = "WG_ACTIVE")]
static WG_ACTIVE: Array<u32> = Array::pinned(1, 0);
#[map(name = "WG_TRUST_0")]
static WG_TRUST_0: LpmTrie<Ipv6Bytes, Entry> = LpmTrie::pinned(TRUST_MAX_ENTRIES, 0);
#[map(name = "WG_TRUST_1")]
static WG_TRUST_1: LpmTrie<Ipv6Bytes, Entry> = LpmTrie::pinned(TRUST_MAX_ENTRIES, 0);
/// Label tables, one per trie; only user space reads them.
#[map(name = "WG_LABELS_0")]
static WG_LABELS_0: HashMap<u32, Label> = HashMap::pinned(LABELS_MAX_ENTRIES, BPF_F_NO_PREALLOC);
#[map(name = "WG_LABELS_1")]
static WG_LABELS_1: HashMap<u32, Label> = HashMap::pinned(LABELS_MAX_ENTRIES, BPF_F_NO_PREALLOC);
#[map(name = "WG_META")]
static WG_META: Array<Meta> = Array::pinned(1, 0);
/// Protected destinations, one trie per settings slot.
#[map(name = "WG_PROTECT_0")]
static WG_PROTECT_0: LpmTrie<Ipv6Bytes, u32> = LpmTrie::pinned(PROTECT_MAX_ENTRIES, 0);
#[map(name = "WG_PROTECT_1")]
static WG_PROTECT_1: LpmTrie<Ipv6Bytes, u32> = LpmTrie::pinned(PROTECT_MAX_ENTRIES, 0);
/// The compiled lookup (see `gate_common::lookup`): one header per copy,
/// and each copy's arrays; copy N is written with trie N and selected by
/// the same bit of `WG_ACTIVE`.
#[map(name = "WG_LOOKUP")]
static WG_LOOKUP: Array<LookupHeader> = Array::pinned(2, 0);
#[map(name = "WG_BUCKETS_0")]
static WG_BUCKETS_0: Array<Bucket> = Array::pinned(DEFAULT_BUCKETS, BPF_F_MMAPABLE);
#[map(name = "WG_BUCKETS_1")]
static WG_BUCKETS_1: Array<Bucket> = Array::pinned(DEFAULT_BUCKETS, BPF_F_MMAPABLE);
#[map(name = "WG_LISTS_0")]
static WG_LISTS_0: Array<ListEntry> = Array::pinned(DEFAULT_LISTS, BPF_F_MMAPABLE);
#[map(name = "WG_LISTS_1")]
static WG_LISTS_1: Array<ListEntry> = Array::pinned(DEFAULT_LISTS, BPF_F_MMAPABLE);
#[map(name = "WG_NODES_0")]
static WG_NODES_0: Array<Node> = Array::pinned(DEFAULT_NODES, BPF_F_MMAPABLE);
#[map(name = "WG_NODES_1")]
static WG_NODES_1: Array<Node> = Array::pinned(DEFAULT_NODES, BPF_F_MMAPABLE);
#[map(name = "WG_LEAVES_0")]
static WG_LEAVES_0: Array<u64> = Array::pinned(DEFAULT_LEAF_WORDS, BPF_F_MMAPABLE);
#[map(name = "WG_LEAVES_1")]
static WG_LEAVES_1: Array<u64> = Array::pinned(DEFAULT_LEAF_WORDS, BPF_F_MMAPABLE);
// The record of each half's set (user space only: never read here).
#[map(name = "WG_RECORD_0")]
static WG_RECORD_0: Array<RecordSlot> = Array::pinned(DEFAULT_RECORD_SLOTS, BPF_F_MMAPABLE);
#[map(name = "WG_RECORD_1")]
static WG_RECORD_1: Array<RecordSlot> = Array::pinned(DEFAULT_RECORD_SLOTS, BPF_F_MMAPABLE);
#[map(name = "WG_COUNTERS")]
static WG_COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(COUNTER_SLOTS, 0);

const ETH_HLEN: usize = 14;
const ETH_TYPE_OFF: usize = 12;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;

const IPV4_MIN_HLEN: usize = 20;
const IPV4_PROTO_OFF: usize = 9;
const IPV4_FRAG_OFF: usize = 6;
const IPV4_FRAG_MASK: u16 = 0x1FFF;

const IPV6_HLEN: usize = 40;
const IPV6_NEXT_OFF: usize = 6;
const IPV6_SRC_OFF: usize = 8;
const IPV6_DST_OFF: usize = 24;
const IPV6_FRAG_HLEN: usize = 8;
const IPV6_FRAG_OFFSET_MASK: u16 = 0xFFF8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

const TCP_MIN_HLEN: usize = 20;
const TCP_DPORT_OFF: usize = 2;
const TCP_FLAGS_OFF: usize = 13;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// Offsets past this are impossible for a well-formed walk (18 bytes of L2,
/// 40 of IPv6, at most 2048 per extension header); the check only gives the
/// verifier an upper bound.
const MAX_OFF: usize = 0x7000;

#[xdp]
pub fn wotgate(ctx: XdpContext) -> u32 {
    // The packet is parsed before any map is read: only a SYN to a port
    // (or a chain too long to judge) needs the settings and the set.
    let (reason, observe) = match parse(&ctx) {
        Some(seen) => judge(seen),
        None => (Reason::OtherPass, false),
    };
    let bank = if ctx.ingress_ifindex() as u32 == TEST_RUN_IFINDEX {
        REASON_COUNT
    } else {
        0
    };
    if !reason.drops() {
        count(bank, reason);
        return XDP_PASS;
    }
    if observe {
        count(bank, Reason::ObserveWouldDrop);
        count(bank, reason.observed());
        return XDP_PASS;
    }
    count(bank, reason);
    XDP_DROP
}

#[inline(always)]
fn count(bank: u32, reason: Reason) {
    if let Some(c) = WG_COUNTERS.get_ptr_mut(bank + reason as u32) {
        // SAFETY: per-CPU slot, only this CPU's program touches it.
        unsafe { *c += 1 };
    }
}

/// What parsing found that the settings must judge; anything else (`None`
/// from [`parse`]: not a TCP SYN, ACK clear, nor an over-long IPv6 chain,
/// or truncated) passes whatever the settings say.
#[derive(Clone, Copy)]
enum Seen {
    /// An IPv4 TCP SYN to `port`.
    Syn4 { port: u16 },
    /// An IPv6 TCP SYN to `port`; `ip` is its IPv6 header.
    Syn6 { ip: Hdr, port: u16 },
    /// An IPv6 packet whose extension-header chain is too long to judge.
    Long6 { ip: Hdr },
}

/// The selector, then the settings slot it names (one word read first, so
/// a packet sees one settings slot and one half of the set, each complete),
/// and the reason for what `seen` found; also whether the gate observes.
#[inline(always)]
fn judge(seen: Seen) -> (Reason, bool) {
    let active = WG_ACTIVE.get(0).copied().unwrap_or(0);
    let slot = ((active & ACTIVE_SETTINGS) != 0) as u32;
    let Some(cfg) = WG_CONFIG.get(slot) else {
        return (Reason::OtherPass, false);
    };
    let reason = match seen {
        // IPv4 is never trusted: a SYN to a protected port is dropped,
        // unless the gate only protects listed IPv6 destinations.
        Seen::Syn4 { port } => {
            if cfg.flags & FLAG_PROTECT_DST == 0 && cfg.is_protected_port(port) {
                Reason::NonIpv6Drop
            } else {
                Reason::OtherPass
            }
        }
        Seen::Syn6 { ip, port } => {
            if cfg.is_protected_port(port) && dst_protected(cfg, active, ip) {
                // The source is read only here, for SYNs to protected ports.
                source_reason(active, ip)
            } else {
                Reason::OtherPass
            }
        }
        Seen::Long6 { ip } => {
            if dst_protected(cfg, active, ip) {
                Reason::MalformedDrop
            } else {
                Reason::OtherPass
            }
        }
    };
    (reason, cfg.flags & FLAG_OBSERVE != 0)
}

/// Whether the gate protects the destination of IPv6 header `ip`: every
/// destination, unless the settings list protected ones.
#[inline(always)]
fn dst_protected(cfg: &GateConfig, active: u32, ip: Hdr) -> bool {
    if cfg.flags & FLAG_PROTECT_DST == 0 {
        return true;
    }
    let dst = Key::new(128, ip.addr(IPV6_DST_OFF));
    let protected = if active & ACTIVE_SETTINGS == 0 {
        WG_PROTECT_0.get(&dst)
    } else {
        WG_PROTECT_1.get(&dst)
    };
    protected.is_some()
}

/// A header of `N` bytes at `off`, bounds-checked once. All fields are read
/// through the returned pointer at constant offsets: separate checks per
/// field get merged by LLVM into forms the verifier cannot follow.
#[inline(always)]
fn hdr<const N: usize>(ctx: &XdpContext, off: usize) -> Option<Hdr> {
    let start = ctx.data();
    let end = ctx.data_end();
    if off > MAX_OFF || start + off + N > end {
        return None;
    }
    Some(Hdr((start + off) as *const u8))
}

#[derive(Clone, Copy)]
struct Hdr(*const u8);

impl Hdr {
    #[inline(always)]
    fn u8(self, i: usize) -> u8 {
        // SAFETY: callers only read inside the N bytes `hdr` checked.
        unsafe { *self.0.add(i) }
    }
    #[inline(always)]
    fn be16(self, i: usize) -> u16 {
        // SAFETY: as above; one (possibly misaligned) load, see build.rs.
        u16::from_be(unsafe { core::ptr::read_unaligned(self.0.add(i) as *const u16) })
    }
    #[inline(always)]
    fn be32(self, i: usize) -> u32 {
        // SAFETY: as above.
        u32::from_be(unsafe { core::ptr::read_unaligned(self.0.add(i) as *const u32) })
    }
    /// The address at `i` as the compiled lookup's words: four loads.
    #[inline(always)]
    fn words(self, i: usize) -> Words {
        [
            self.be32(i),
            self.be32(i + 4),
            self.be32(i + 8),
            self.be32(i + 12),
        ]
    }
    #[inline(always)]
    fn addr(self, i: usize) -> Ipv6Bytes {
        // SAFETY: as above, 16 bytes inside the checked header.
        unsafe { core::ptr::read_unaligned(self.0.add(i) as *const Ipv6Bytes) }
    }
}

#[inline(always)]
fn parse(ctx: &XdpContext) -> Option<Seen> {
    let mut ethertype = hdr::<ETH_HLEN>(ctx, 0)?.be16(ETH_TYPE_OFF);
    if ethertype == ETH_P_IPV6 {
        // The common case first: no tags to walk.
        return ipv6(ctx, ETH_HLEN);
    }
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = hdr::<VLAN_HLEN>(ctx, off)?.be16(2);
        off += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IPV6 => ipv6(ctx, off),
        ETH_P_IP => ipv4(ctx, off),
        _ => None,
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, off: usize) -> Option<Seen> {
    let ip = hdr::<IPV4_MIN_HLEN>(ctx, off)?;
    let vihl = ip.u8(0);
    let ihl = ((vihl & 0x0F) as usize) * 4;
    if vihl >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return None;
    }
    if ip.u8(IPV4_PROTO_OFF) != IPPROTO_TCP || ip.be16(IPV4_FRAG_OFF) & IPV4_FRAG_MASK != 0 {
        return None;
    }
    let port = syn_port(ctx, off + ihl)?;
    Some(Seen::Syn4 { port })
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, off: usize) -> Option<Seen> {
    let ip = hdr::<IPV6_HLEN>(ctx, off)?;
    if ip.u8(0) >> 4 != 6 {
        return None;
    }
    let mut next = ip.u8(IPV6_NEXT_OFF);
    let mut off = off + IPV6_HLEN;
    // Iteration i sees the header after i extension headers; at i ==
    // MAX_EXT_HEADERS a further extension header is one too many.
    for i in 0..=MAX_EXT_HEADERS {
        // TCP is tested on its own first: the gated path skips the set test.
        if next == IPPROTO_TCP {
            let port = syn_port(ctx, off)?;
            return Some(Seen::Syn6 { ip, port });
        }
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
            }
            // ICMPv6 (and so neighbour discovery), UDP, ESP, no-next-header...
            _ => return None,
        }
        if i == MAX_EXT_HEADERS {
            return Some(Seen::Long6 { ip });
        }
        let len = if next == IPPROTO_FRAGMENT {
            let h = hdr::<IPV6_FRAG_HLEN>(ctx, off)?;
            if h.be16(2) & IPV6_FRAG_OFFSET_MASK != 0 {
                // Not the first fragment: no TCP header to judge.
                return None;
            }
            next = h.u8(0);
            IPV6_FRAG_HLEN
        } else {
            let h = hdr::<2>(ctx, off)?;
            let n = h.u8(1) as usize;
            let len = if next == IPPROTO_AH {
                (n + 2) * 4
            } else {
                (n + 1) * 8
            };
            next = h.u8(0);
            len
        };
        off += len;
    }
    Some(Seen::Long6 { ip })
}

/// The destination port of the TCP header at `off` if it is a SYN (ACK
/// clear); `None` for anything else, or when truncated.
#[inline(always)]
fn syn_port(ctx: &XdpContext, off: usize) -> Option<u16> {
    let tcp = hdr::<TCP_MIN_HLEN>(ctx, off)?;
    if tcp.u8(TCP_FLAGS_OFF) & (TCP_SYN | TCP_ACK) != TCP_SYN {
        return None;
    }
    Some(tcp.be16(TCP_DPORT_OFF))
}

/// The reason for a gated SYN with IPv6 header `ip`: its source looked up
/// in the compiled copy of the active half, or in that half's LPM trie when
/// the copy is not valid or cannot answer.
#[inline(always)]
fn source_reason(active: u32, ip: Hdr) -> Reason {
    let t = active & ACTIVE_TRIE;
    let compiled = match WG_LOOKUP.get(t) {
        Some(h) if h.flags & HDR_VALID != 0 => {
            let src = ip.words(IPV6_SRC_OFF);
            let found = if t == 0 {
                lk::lookup(&Copy0, h.bucket_mask, &src)
            } else {
                lk::lookup(&Copy1, h.bucket_mask, &src)
            };
            match found {
                Found::Verdict(v) => Some(v),
                Found::Miss if h.flags & HDR_SHORT == 0 => Some(LV_NONE),
                // Only a prefix shorter than /32 can hold it: the trie.
                Found::Miss => None,
            }
        }
        _ => None,
    };
    let verdict = match compiled {
        Some(v) => v,
        None => trie_verdict(t, ip.addr(IPV6_SRC_OFF)),
    };
    match verdict {
        LV_NONE => Reason::UntrustedDrop,
        LV_ALLOW => Reason::TrustedPass,
        // Deny, or anything that is not a well-formed allow: fail closed.
        _ => Reason::DeniedDrop,
    }
}

/// The longest match in LPM trie `t` as a compiled-lookup verdict.
#[inline(always)]
fn trie_verdict(t: u32, src: Ipv6Bytes) -> u32 {
    let key = Key::new(128, src);
    let entry = if t == 0 {
        WG_TRUST_0.get(&key)
    } else {
        WG_TRUST_1.get(&key)
    };
    match entry {
        None => LV_NONE,
        Some(e) if e.verdict == VERDICT_ALLOW => LV_ALLOW,
        Some(_) => LV_DENY,
    }
}

/// The arrays of compiled copy 0 and copy 1.
struct Copy0;
struct Copy1;

macro_rules! store {
    ($t:ty, $b:ident, $l:ident, $n:ident, $v:ident) => {
        impl Store for $t {
            #[inline(always)]
            fn bucket(&self, i: u32) -> Option<&Bucket> {
                $b.get(i)
            }
            #[inline(always)]
            fn list(&self, i: u32) -> Option<&ListEntry> {
                $l.get(i)
            }
            #[inline(always)]
            fn node(&self, i: u32) -> Option<&Node> {
                $n.get(i)
            }
            #[inline(always)]
            fn leaf_word(&self, i: u32) -> Option<u64> {
                $v.get(i).copied()
            }
        }
    };
}
store!(Copy0, WG_BUCKETS_0, WG_LISTS_0, WG_NODES_0, WG_LEAVES_0);
store!(Copy1, WG_BUCKETS_1, WG_LISTS_1, WG_NODES_1, WG_LEAVES_1);

/// Keeps the user-space-only maps in the object so the loader creates and
/// pins them with the rest. Never loaded.
#[xdp]
pub fn wotgate_maps(_ctx: XdpContext) -> u32 {
    let _ = WG_LABELS_0.get_ptr(&0);
    let _ = WG_LABELS_1.get_ptr(&0);
    let _ = WG_META.get_ptr(0);
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
