//! Building test packets (Ethernet, VLAN tags, IPv4/IPv6, extension headers,
//! TCP, ICMPv6) for the packet tests and the benchmarks.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// An IPv6 extension header to put between the fixed header and the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header with this fragment offset (in 8-byte units).
    Fragment {
        offset: u16,
    },
    Ah,
}

impl Ext {
    pub fn proto(self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::Routing => 43,
            Ext::Fragment { .. } => 44,
            Ext::Ah => 51,
            Ext::DestOpts => 60,
        }
    }
}

#[derive(Clone, Debug)]
enum L3 {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ext: Vec<Ext>,
    },
}

#[derive(Clone, Debug)]
enum L4 {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Icmpv6 { kind: u8 },
    Udp { sport: u16, dport: u16 },
}

/// A packet under construction; `build` serialises it.
#[derive(Clone, Debug)]
pub struct Builder {
    vlans: Vec<u16>,
    l3: L3,
    l4: L4,
}

impl Builder {
    pub fn ipv6_tcp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u8) -> Builder {
        Builder {
            vlans: Vec::new(),
            l3: L3::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            l4: L4::Tcp {
                sport,
                dport,
                flags,
            },
        }
    }

    pub fn ipv4_tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Builder {
        Builder {
            vlans: Vec::new(),
            l3: L3::V4 { src, dst },
            l4: L4::Tcp {
                sport,
                dport,
                flags,
            },
        }
    }

    /// ICMPv6 of the given type (135 = neighbour solicitation, 136 = advert).
    pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, kind: u8) -> Builder {
        Builder {
            vlans: Vec::new(),
            l3: L3::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            l4: L4::Icmpv6 { kind },
        }
    }

    pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Builder {
        Builder {
            vlans: Vec::new(),
            l3: L3::V6 {
                src,
                dst,
                ext: Vec::new(),
            },
            l4: L4::Udp { sport, dport },
        }
    }

    /// Adds an 802.1Q tag (the first call: outer tag, sent as 802.1ad when a
    /// second tag follows).
    pub fn vlan(mut self, id: u16) -> Builder {
        self.vlans.push(id);
        self
    }

    /// Appends an IPv6 extension header (ignored for IPv4).
    pub fn ext(mut self, e: Ext) -> Builder {
        if let L3::V6 { ext, .. } = &mut self.l3 {
            ext.push(e);
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut l4 = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&sport.to_be_bytes());
                t[2..4].copy_from_slice(&dport.to_be_bytes());
                t[4..8].copy_from_slice(&1u32.to_be_bytes());
                t[12] = 5 << 4;
                t[13] = flags;
                t[14..16].copy_from_slice(&65535u16.to_be_bytes());
                t
            }
            L4::Icmpv6 { kind } => {
                let mut t = vec![0u8; 24];
                t[0] = kind;
                t
            }
            L4::Udp { sport, dport } => {
                let mut t = vec![0u8; 8];
                t[0..2].copy_from_slice(&sport.to_be_bytes());
                t[2..4].copy_from_slice(&dport.to_be_bytes());
                t[4..6].copy_from_slice(&8u16.to_be_bytes());
                t
            }
        };
        let proto = match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Icmpv6 { .. } => 58,
            L4::Udp { .. } => 17,
        };
        let (ethertype, l3) = match &self.l3 {
            L3::V4 { src, dst } => {
                let mut h = vec![0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                h[8] = 64;
                h[9] = proto;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                (0x0800u16, h)
            }
            L3::V6 { src, dst, ext } => {
                let mut chain = Vec::new();
                for (i, e) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(proto, |n| n.proto());
                    chain.extend(ext_bytes(*e, next));
                }
                let first = ext.first().map_or(proto, |e| e.proto());
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
                h[6] = first;
                h[7] = 64;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&dst.octets());
                h.extend(chain);
                (0x86DDu16, h)
            }
        };
        let mut f = vec![0x02, 0, 0, 0, 0, 0x25, 0x02, 0, 0, 0, 0, 0x01];
        let n = self.vlans.len();
        for (i, id) in self.vlans.iter().enumerate() {
            let tpid: u16 = if n > 1 && i == 0 { 0x88A8 } else { 0x8100 };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(id & 0x0FFF).to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend(l3);
        f.append(&mut l4);
        f
    }
}

/// Serialises one extension header whose Next Header is `next`.
pub fn ext_bytes(e: Ext, next: u8) -> Vec<u8> {
    match e {
        Ext::HopByHop | Ext::Routing | Ext::DestOpts => {
            // 8 bytes: next, hdr ext len 0, then PadN / routing type 0 data.
            let mut h = vec![0u8; 8];
            h[0] = next;
            if e != Ext::Routing {
                h[2] = 1; // PadN
                h[3] = 4;
            }
            h
        }
        Ext::Fragment { offset } => {
            let mut h = vec![0u8; 8];
            h[0] = next;
            h[2..4].copy_from_slice(&((offset << 3) | 1).to_be_bytes()); // M flag set
            h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            h
        }
        Ext::Ah => {
            // Payload length 4 => (4 + 2) * 4 = 24 bytes.
            let mut h = vec![0u8; 24];
            h[0] = next;
            h[1] = 4;
            h
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_syn_layout() {
        let p = Builder::ipv6_tcp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1234,
            25,
            SYN,
        )
        .build();
        assert_eq!(p.len(), 14 + 40 + 20);
        assert_eq!(&p[12..14], &[0x86, 0xDD]);
        assert_eq!(p[14 + 6], 6);
        assert_eq!(&p[54 + 2..54 + 4], &25u16.to_be_bytes());
        assert_eq!(p[54 + 13], SYN);
    }

    #[test]
    fn the_check_commands_probe_is_an_ipv6_syn() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(
            wotgate::gate::replay::syn_frame(a.into(), b.into(), 40000, 2525),
            Builder::ipv6_tcp(a, b, 40000, 2525, SYN).build()
        );
    }

    #[test]
    fn the_check_commands_ipv4_probe_is_an_ipv4_syn() {
        let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 25));
        let probe = wotgate::gate::replay::syn_frame(a.into(), b.into(), 40000, 25);
        let want = Builder::ipv4_tcp(a, b, 40000, 25, SYN).build();
        assert_eq!(probe.len(), want.len());
        assert_eq!(&probe[12..14], &[0x08, 0x00]);
        // Addresses, protocol and the TCP header as the builder makes them.
        assert_eq!(probe[14 + 9], want[14 + 9]);
        assert_eq!(&probe[14 + 12..], &want[14 + 12..]);
    }

    #[test]
    fn ext_chain_links_next_headers() {
        let p = Builder::ipv6_tcp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1,
            25,
            SYN,
        )
        .ext(Ext::HopByHop)
        .ext(Ext::Ah)
        .build();
        assert_eq!(p[14 + 6], 0); // first: hop-by-hop
        assert_eq!(p[54], 51); // hop-by-hop -> AH
        assert_eq!(p[62], 6); // AH -> TCP
        assert_eq!(p.len(), 14 + 40 + 8 + 24 + 20);
    }

    #[test]
    fn qinq_uses_8021ad_outer() {
        let p = Builder::ipv4_tcp(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            1,
            25,
            SYN,
        )
        .vlan(10)
        .vlan(20)
        .build();
        assert_eq!(&p[12..14], &[0x88, 0xA8]);
        assert_eq!(&p[16..18], &[0x81, 0x00]);
        assert_eq!(&p[20..22], &[0x08, 0x00]);
    }
}
