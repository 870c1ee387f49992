//! Reference classifier: the gate's verdict computed in plain user-space Rust,
//! written from the classification spec, to check the XDP program against.

use std::net::Ipv6Addr;

use gate_common::{Reason, MAX_EXT_HEADERS, MAX_VLAN_TAGS};
use ipnet::Ipv6Net;

use wotgate::gate::{
    replay::{Outcome, XDP_DROP, XDP_PASS},
    Settings,
};
use wotgate::model::prefixes::{PrefixSet, Verdict};

/// The configuration the classifier needs: the gate-wide settings
/// (`ports`, `observe`, `protect`), exactly as `Gate::set_settings` takes them.
pub type RefConfig = Settings;

const ETH_HLEN: usize = 14;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// The verdict the spec gives `packet` (an Ethernet frame) under `cfg` and
/// the trusted set `set`: the action and the reason the program counts.
pub fn classify(packet: &[u8], cfg: &RefConfig, set: &PrefixSet) -> Outcome {
    finish(judge(packet, cfg, set), cfg.observe)
}

/// Applies the enforce/observe rule to a reason.
fn finish(reason: Reason, observe: bool) -> Outcome {
    if reason.drops() {
        if observe {
            Outcome {
                action: XDP_PASS,
                reason: reason.observed(),
            }
        } else {
            Outcome {
                action: XDP_DROP,
                reason,
            }
        }
    } else {
        Outcome {
            action: XDP_PASS,
            reason,
        }
    }
}

/// `len` bytes of `p` starting at `off`, or `None` when the frame is shorter.
fn bytes(p: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    p.get(off..off.checked_add(len)?)
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The reason before observe mode is applied.
pub fn judge(p: &[u8], cfg: &RefConfig, set: &PrefixSet) -> Reason {
    let Some(eth) = bytes(p, 0, ETH_HLEN) else {
        return Reason::OtherPass;
    };
    let mut ethertype = be16(&eth[12..14]);
    let mut off = ETH_HLEN;
    let mut tags = 0;
    while tags < MAX_VLAN_TAGS && (ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD) {
        let Some(tag) = bytes(p, off, 4) else {
            return Reason::OtherPass;
        };
        ethertype = be16(&tag[2..4]);
        off += 4;
        tags += 1;
    }
    match ethertype {
        ETH_P_IPV6 => judge_ipv6(p, off, cfg, set),
        ETH_P_IPV4 => judge_ipv4(p, off, cfg),
        _ => Reason::OtherPass,
    }
}

fn judge_ipv4(p: &[u8], off: usize, cfg: &RefConfig) -> Reason {
    if !cfg.protect.is_empty() {
        return Reason::OtherPass;
    }
    let Some(ip) = bytes(p, off, 20) else {
        return Reason::OtherPass;
    };
    let ihl = usize::from(ip[0] & 0x0F) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Reason::OtherPass;
    }
    if ip[9] != IPPROTO_TCP || be16(&ip[6..8]) & 0x1FFF != 0 {
        return Reason::OtherPass;
    }
    let Some(tcp) = bytes(p, off + ihl, 20) else {
        return Reason::OtherPass;
    };
    if is_syn(tcp) && cfg.ports.contains(&be16(&tcp[2..4])) {
        Reason::NonIpv6Drop
    } else {
        Reason::OtherPass
    }
}

/// SYN set and ACK clear.
fn is_syn(tcp: &[u8]) -> bool {
    tcp[13] & (TCP_SYN | TCP_ACK) == TCP_SYN
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

fn judge_ipv6(p: &[u8], ip_off: usize, cfg: &RefConfig, set: &PrefixSet) -> Reason {
    let Some(ip) = bytes(p, ip_off, 40) else {
        return Reason::OtherPass;
    };
    if ip[0] >> 4 != 6 {
        return Reason::OtherPass;
    }
    let src = addr(&ip[8..24]);
    let dst = addr(&ip[24..40]);
    if !cfg.protect.is_empty() && !cfg.protect.iter().any(|n| n.contains(&dst)) {
        return Reason::OtherPass;
    }
    let mut next = ip[6];
    let mut off = ip_off + 40;
    for i in 0..=MAX_EXT_HEADERS {
        if next == IPPROTO_TCP {
            return judge_tcp6(p, off, src, cfg, set);
        }
        if !matches!(
            next,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
        ) {
            return Reason::OtherPass;
        }
        if i == MAX_EXT_HEADERS {
            return Reason::MalformedDrop;
        }
        let len = if next == IPPROTO_FRAGMENT {
            let Some(h) = bytes(p, off, 8) else {
                return Reason::OtherPass;
            };
            if be16(&h[2..4]) & 0xFFF8 != 0 {
                return Reason::OtherPass;
            }
            next = h[0];
            8
        } else {
            let Some(h) = bytes(p, off, 2) else {
                return Reason::OtherPass;
            };
            let len = if next == IPPROTO_AH {
                (usize::from(h[1]) + 2) * 4
            } else {
                (usize::from(h[1]) + 1) * 8
            };
            next = h[0];
            len
        };
        off += len;
    }
    unreachable!("the loop returns at i == MAX_EXT_HEADERS")
}

fn judge_tcp6(p: &[u8], off: usize, src: Ipv6Addr, cfg: &RefConfig, set: &PrefixSet) -> Reason {
    let Some(tcp) = bytes(p, off, 20) else {
        return Reason::OtherPass;
    };
    if !is_syn(tcp) || !cfg.ports.contains(&be16(&tcp[2..4])) {
        return Reason::OtherPass;
    }
    match longest_match(set, src) {
        None => Reason::UntrustedDrop,
        Some(Verdict::Allow) => Reason::TrustedPass,
        Some(Verdict::Deny) => Reason::DeniedDrop,
    }
}

/// Longest-prefix match by scanning every entry (deliberately not
/// `PrefixSet::lookup`, so the two can check each other).
pub fn longest_match(set: &PrefixSet, a: Ipv6Addr) -> Option<Verdict> {
    set.iter()
        .filter(|e| e.prefix.contains(&a))
        .max_by_key(|e| e.prefix.prefix_len())
        .map(|e| e.verdict)
}

/// Whether `dst` is gated under `protect` (empty: every destination).
pub fn protected_destination(protect: &[Ipv6Net], dst: Ipv6Addr) -> bool {
    protect.is_empty() || protect.iter().any(|n| n.contains(&dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Builder, Ext, ACK, FIN, RST, SYN};
    use std::net::Ipv4Addr;

    fn set() -> PrefixSet {
        PrefixSet::parse(
            "allow 2001:db8:1::/48 t\ndeny 2001:db8:1:bad::/64 d\nallow 2001:db8:1:bad:1::/80 ok\n",
            "ref",
        )
        .unwrap()
    }

    fn cfg() -> RefConfig {
        Settings::default()
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const DST: &str = "2001:db8:ffff::25";

    fn syn6(src: &str, dport: u16, flags: u8) -> Builder {
        Builder::ipv6_tcp(a(src), a(DST), 40000, dport, flags)
    }

    fn reason(p: &[u8], c: &RefConfig) -> Reason {
        classify(p, c, &set()).reason
    }

    #[test]
    fn trust_levels() {
        let c = cfg();
        let t = classify(&syn6("2001:db8:1::5", 25, SYN).build(), &c, &set());
        assert_eq!(
            t,
            Outcome {
                action: XDP_PASS,
                reason: Reason::TrustedPass
            }
        );
        let u = classify(&syn6("2001:db8:2::5", 25, SYN).build(), &c, &set());
        assert_eq!(
            u,
            Outcome {
                action: XDP_DROP,
                reason: Reason::UntrustedDrop
            }
        );
        let d = classify(&syn6("2001:db8:1:bad::5", 25, SYN).build(), &c, &set());
        assert_eq!(
            d,
            Outcome {
                action: XDP_DROP,
                reason: Reason::DeniedDrop
            }
        );
        // An allow nested inside the deny wins for its own addresses.
        let n = syn6("2001:db8:1:bad:1::9", 25, SYN).build();
        assert_eq!(reason(&n, &c), Reason::TrustedPass);
    }

    #[test]
    fn only_pure_syns_to_protected_ports() {
        let c = cfg();
        for flags in [SYN | ACK, ACK, RST, FIN, 0] {
            let p = syn6("2001:db8:2::5", 25, flags).build();
            assert_eq!(reason(&p, &c), Reason::OtherPass, "flags {flags:#x}");
        }
        // Other flags alongside SYN do not matter, only ACK does.
        let p = syn6("2001:db8:2::5", 25, SYN | FIN | RST | 0x80).build();
        assert_eq!(reason(&p, &c), Reason::UntrustedDrop);
        for port in [24, 26, 80, 465] {
            let p = syn6("2001:db8:2::5", port, SYN).build();
            assert_eq!(reason(&p, &c), Reason::OtherPass, "port {port}");
        }
        let c2 = Settings {
            ports: vec![25, 465, 587],
            ..cfg()
        };
        let p = syn6("2001:db8:2::5", 465, SYN).build();
        assert_eq!(reason(&p, &c2), Reason::UntrustedDrop);
    }

    #[test]
    fn ipv4_and_other_ethertypes() {
        let c = cfg();
        let v4 = |dport, flags| {
            Builder::ipv4_tcp(
                Ipv4Addr::new(192, 0, 2, 1),
                Ipv4Addr::new(198, 51, 100, 1),
                1,
                dport,
                flags,
            )
            .build()
        };
        assert_eq!(reason(&v4(25, SYN), &c), Reason::NonIpv6Drop);
        assert_eq!(reason(&v4(25, SYN | ACK), &c), Reason::OtherPass);
        assert_eq!(reason(&v4(80, SYN), &c), Reason::OtherPass);
        // Non-first IPv4 fragment.
        let mut f = v4(25, SYN);
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x01;
        assert_eq!(reason(&f, &c), Reason::OtherPass);
        // IHL with options: TCP moves.
        let mut o = v4(25, SYN);
        o[14] = 0x46;
        o.splice(34..34, [1, 1, 1, 1]);
        assert_eq!(reason(&o, &c), Reason::NonIpv6Drop);
        o[14] = 0x44; // IHL 4 < 5
        assert_eq!(reason(&o, &c), Reason::OtherPass);
        // Protected destinations configured: IPv4 is never gated.
        let pc = Settings {
            protect: vec!["2001:db8:ffff::/48".parse().unwrap()],
            ..cfg()
        };
        assert_eq!(reason(&v4(25, SYN), &pc), Reason::OtherPass);
        // ARP.
        let mut arp = v4(25, SYN);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(reason(&arp, &c), Reason::OtherPass);
    }

    #[test]
    fn vlan_tags() {
        let c = cfg();
        let one = syn6("2001:db8:2::5", 25, SYN).vlan(7).build();
        assert_eq!(reason(&one, &c), Reason::UntrustedDrop);
        let two = syn6("2001:db8:2::5", 25, SYN).vlan(7).vlan(8).build();
        assert_eq!(reason(&two, &c), Reason::UntrustedDrop);
        let three = syn6("2001:db8:2::5", 25, SYN)
            .vlan(7)
            .vlan(8)
            .vlan(9)
            .build();
        assert_eq!(reason(&three, &c), Reason::OtherPass);
        // Truncated inside a tag.
        assert_eq!(reason(&one[..17], &c), Reason::OtherPass);
    }

    #[test]
    fn extension_headers_and_bound() {
        let c = cfg();
        for e in [
            Ext::HopByHop,
            Ext::Routing,
            Ext::DestOpts,
            Ext::Ah,
            Ext::Fragment { offset: 0 },
        ] {
            let p = syn6("2001:db8:2::5", 25, SYN).ext(e).build();
            assert_eq!(reason(&p, &c), Reason::UntrustedDrop, "{e:?}");
        }
        let frag = syn6("2001:db8:2::5", 25, SYN)
            .ext(Ext::Fragment { offset: 1 })
            .build();
        assert_eq!(reason(&frag, &c), Reason::OtherPass);
        let mut b = syn6("2001:db8:2::5", 25, SYN);
        for _ in 0..MAX_EXT_HEADERS {
            b = b.ext(Ext::DestOpts);
        }
        assert_eq!(reason(&b.build(), &c), Reason::UntrustedDrop);
        let trusted = syn6("2001:db8:1::5", 25, SYN);
        let mut t = trusted.clone();
        for _ in 0..=MAX_EXT_HEADERS {
            t = t.ext(Ext::HopByHop);
        }
        // Past the bound even a trusted source is dropped, and even an ACK.
        assert_eq!(reason(&t.build(), &c), Reason::MalformedDrop);
        let mut ack = syn6("2001:db8:1::5", 25, ACK);
        for _ in 0..=MAX_EXT_HEADERS {
            ack = ack.ext(Ext::Routing);
        }
        assert_eq!(reason(&ack.build(), &c), Reason::MalformedDrop);
        // ...but ICMPv6 after eight headers is not.
        let mut icmp = Builder::icmpv6(a("2001:db8:2::5"), a(DST), 135);
        for _ in 0..MAX_EXT_HEADERS {
            icmp = icmp.ext(Ext::HopByHop);
        }
        assert_eq!(reason(&icmp.build(), &c), Reason::OtherPass);
    }

    #[test]
    fn extension_lengths() {
        let c = cfg();
        // Hop-by-hop with hdr ext len 1 (16 bytes), AH with payload len 1 (12).
        let mut p = syn6("2001:db8:2::5", 25, SYN).build();
        p[14 + 6] = IPPROTO_HOPOPTS;
        let mut hbh = vec![0u8; 16];
        hbh[0] = IPPROTO_AH;
        hbh[1] = 1;
        let mut ah = vec![0u8; 12];
        ah[0] = IPPROTO_TCP;
        ah[1] = 1;
        p.splice(54..54, hbh.into_iter().chain(ah));
        assert_eq!(reason(&p, &c), Reason::UntrustedDrop);
        // Length off by 4: TCP read from the wrong place (a zero flags byte).
        let mut q = p.clone();
        q[54 + 16 + 1] = 0;
        assert_eq!(reason(&q, &c), Reason::OtherPass);
    }

    #[test]
    fn truncation_passes() {
        let c = cfg();
        let p = syn6("2001:db8:2::5", 25, SYN).build();
        for n in 0..p.len() {
            assert_eq!(reason(&p[..n], &c), Reason::OtherPass, "cut at {n}");
        }
        assert_eq!(reason(&p, &c), Reason::UntrustedDrop);
        let v4 = Builder::ipv4_tcp(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 1),
            1,
            25,
            SYN,
        )
        .build();
        for n in 0..v4.len() {
            assert_eq!(reason(&v4[..n], &c), Reason::OtherPass, "cut at {n}");
        }
    }

    #[test]
    fn observe_mode() {
        let c = Settings {
            observe: true,
            ..cfg()
        };
        let u = classify(&syn6("2001:db8:2::5", 25, SYN).build(), &c, &set());
        assert_eq!(
            u,
            Outcome {
                action: XDP_PASS,
                reason: Reason::ObserveUntrusted
            }
        );
        let d = syn6("2001:db8:1:bad::1", 25, SYN).build();
        assert_eq!(reason(&d, &c), Reason::ObserveDenied);
        let t = syn6("2001:db8:1::1", 25, SYN).build();
        assert_eq!(reason(&t, &c), Reason::TrustedPass);
    }

    #[test]
    fn protected_destinations() {
        let c = Settings {
            protect: vec!["2001:db8:ffff::/48".parse().unwrap()],
            ..cfg()
        };
        let inside = syn6("2001:db8:2::5", 25, SYN).build();
        assert_eq!(reason(&inside, &c), Reason::UntrustedDrop);
        let outside =
            Builder::ipv6_tcp(a("2001:db8:2::5"), a("2001:db8:fffe::1"), 1, 25, SYN).build();
        assert_eq!(reason(&outside, &c), Reason::OtherPass);
        // Outside a protected destination even a long chain is not malformed.
        let mut long = Builder::ipv6_tcp(a("2001:db8:2::5"), a("2001:db8:fffe::1"), 1, 25, SYN);
        for _ in 0..=MAX_EXT_HEADERS {
            long = long.ext(Ext::DestOpts);
        }
        assert_eq!(reason(&long.build(), &c), Reason::OtherPass);
        assert!(protected_destination(&[], a("::1")));
    }

    #[test]
    fn longest_match_agrees_with_prefix_set_lookup() {
        let s = set();
        for x in [
            "2001:db8:1::",
            "2001:db8:1:bad::",
            "2001:db8:1:bad:1::1",
            "2001:db8:1:bad:2::1",
            "2001:db8:1:bac:ffff::",
            "2001:db8:2::",
            "::",
        ] {
            let addr = a(x);
            assert_eq!(
                longest_match(&s, addr),
                s.lookup(addr).map(|e| e.verdict),
                "{x}"
            );
        }
    }
}
