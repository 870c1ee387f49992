//! Packet-level tests, second half: observe and protected-destination modes,
//! several ports, the header-chain bound, header length and field edge cases.

mod packet_common;
use packet_common::*;

/// The test-run counter bank slot of `r`, summed over CPUs.
fn test_count(pg: &PinnedGate, r: Reason) -> u64 {
    let data = MapData::from_pin(pg.path().join(maps::COUNTERS)).unwrap();
    let arr: PerCpuArray<MapData, u64> = Map::PerCpuArray(data).try_into().unwrap();
    arr.get(&(REASON_COUNT + r as u32), 0).unwrap().iter().sum()
}

#[test]
fn observe_mode_passes_and_counts() {
    let observe = Settings {
        observe: true,
        ..enforce()
    };
    check_all(
        "obs",
        &observe,
        &[
            (
                "untrusted",
                syn(UNTRUSTED).build(),
                XDP_PASS,
                Reason::ObserveUntrusted,
            ),
            (
                "denied",
                syn(DENIED).build(),
                XDP_PASS,
                Reason::ObserveDenied,
            ),
            (
                "ipv4",
                v4(25, SYN).build(),
                XDP_PASS,
                Reason::ObserveNonIpv6,
            ),
            (
                "malformed",
                chain(syn(TRUSTED), MAX_EXT_HEADERS + 1).build(),
                XDP_PASS,
                Reason::ObserveMalformed,
            ),
            (
                "trusted",
                syn(TRUSTED).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "ack",
                tcp(UNTRUSTED, 25, ACK).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
    // The would-drop total moves along with the breakdown, once per packet;
    // and test runs leave the real-traffic bank alone.
    let mut pg = gate("obs2", &observe);
    let before = test_count(&pg, Reason::ObserveWouldDrop);
    let real_before = pg.gate().counters().unwrap();
    {
        let mut r = pg.gate().runner().unwrap();
        let out = r.run(&syn(UNTRUSTED).build()).unwrap();
        assert_eq!(out.reason, Reason::ObserveUntrusted);
        assert_eq!(out.action, XDP_PASS);
        r.run(&syn(TRUSTED).build()).unwrap();
    }
    assert_eq!(test_count(&pg, Reason::ObserveWouldDrop), before + 1);
    assert_eq!(pg.gate().counters().unwrap(), real_before);
}

#[test]
fn protected_destination_mode() {
    let protect = Settings {
        protect: vec!["2001:db8:ffff::/48".parse().unwrap()],
        ..enforce()
    };
    let other = "2001:db8:fffe::25";
    check_all(
        "prot",
        &protect,
        &[
            (
                "to protected",
                syn(UNTRUSTED).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "trusted to protected",
                syn(TRUSTED).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "to other",
                Builder::ipv6_tcp(a(UNTRUSTED), a(other), 1, 25, SYN).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "long chain to other",
                chain(
                    Builder::ipv6_tcp(a(UNTRUSTED), a(other), 1, 25, SYN),
                    MAX_EXT_HEADERS + 1,
                )
                .build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            ("ipv4", v4(25, SYN).build(), XDP_PASS, Reason::OtherPass),
        ],
    );
}

#[test]
fn multiple_ports() {
    let ports = Settings {
        ports: vec![25, 465, 587],
        ..enforce()
    };
    check_all(
        "ports",
        &ports,
        &[
            (
                "25",
                tcp(UNTRUSTED, 25, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "465",
                tcp(UNTRUSTED, 465, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "587",
                tcp(UNTRUSTED, 587, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "587 trusted",
                tcp(TRUSTED, 587, SYN).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "80",
                tcp(UNTRUSTED, 80, SYN).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "v4 465",
                v4(465, SYN).build(),
                XDP_DROP,
                Reason::NonIpv6Drop,
            ),
        ],
    );
    let eight = Settings {
        ports: vec![1, 25, 465, 587, 2525, 8025, 10025, 65535],
        ..enforce()
    };
    check_all(
        "ports8",
        &eight,
        &[
            (
                "1",
                tcp(UNTRUSTED, 1, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "65535",
                tcp(UNTRUSTED, 65535, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "10025",
                tcp(UNTRUSTED, 10025, SYN).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "26",
                tcp(UNTRUSTED, 26, SYN).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

/// Eight extension headers (as `chain` makes them) whose last announces a
/// ninth header of type `ninth`; `tail` follows instead of `b`'s transport.
fn eight_then(b: Builder, ninth: u8, tail: &[u8]) -> Vec<u8> {
    let mut p = chain(b, MAX_EXT_HEADERS).build();
    let mut off = 14 + 40;
    let mut next = p[14 + 6];
    for i in 0..MAX_EXT_HEADERS {
        let len = match next {
            44 => 8,
            51 => (usize::from(p[off + 1]) + 2) * 4,
            _ => (usize::from(p[off + 1]) + 1) * 8,
        };
        if i == MAX_EXT_HEADERS - 1 {
            p[off] = ninth;
        }
        next = p[off];
        off += len;
    }
    assert_eq!(off, p.len() - 20, "the chain ends where TCP starts");
    p.truncate(off);
    p.extend_from_slice(tail);
    p
}

#[test]
fn ninth_header_is_malformed_before_it_is_read() {
    let mut frag = vec![6u8, 0, 0, 0x29, 0, 0, 0, 1]; // offset 5: non-first
    frag.extend(vec![0u8; 20]);
    check_all(
        "ninth",
        &enforce(),
        &[
            (
                "non-first fragment as ninth",
                eight_then(syn(TRUSTED), 44, &frag),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "ninth announced, frame ends",
                eight_then(syn(TRUSTED), 60, &[]),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "ninth announced, one byte of it",
                eight_then(syn(TRUSTED), 0, &[6]),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "ICMPv6 NS behind nine headers",
                chain(Builder::icmpv6(a(UNTRUSTED), a(DST), 135), 9).build(),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "ICMPv6 NS behind eight headers",
                chain(Builder::icmpv6(a(UNTRUSTED), a(DST), 135), 8).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "UDP after eight headers",
                chain(Builder::ipv6_udp(a(UNTRUSTED), a(DST), 1, 25), 8).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

/// An untrusted IPv6 SYN with `hdr` (whose first byte this sets to TCP)
/// spliced in as the only extension header, of type `kind`.
fn with_raw_ext(kind: u8, mut hdr: Vec<u8>) -> Vec<u8> {
    let mut p = syn(UNTRUSTED).build();
    p[14 + 6] = kind;
    hdr[0] = 6;
    p.splice(54..54, hdr);
    p
}

#[test]
fn extension_header_lengths() {
    let hbh = |units: u8| {
        let mut h = vec![0u8; (usize::from(units) + 1) * 8];
        h[1] = units;
        h
    };
    let ah = |len: u8| {
        let mut h = vec![0u8; (usize::from(len) + 2) * 4];
        h[1] = len;
        h
    };
    // Lengths that do not match the bytes that follow: TCP is read from
    // the wrong place (zero flags) or beyond the frame.
    let mut short = hbh(2);
    short[1] = 1;
    let mut long = hbh(1);
    long[1] = 40;
    let mut frag_reserved = vec![0u8; 8];
    frag_reserved[3] = 0x07; // offset 0, reserved bits and M set
    check_all(
        "extlen",
        &enforce(),
        &[
            (
                "hbh 24 bytes",
                with_raw_ext(0, hbh(2)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "dst 2048 bytes",
                with_raw_ext(60, hbh(255)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "routing 40 bytes",
                with_raw_ext(43, hbh(4)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "ah 12 bytes",
                with_raw_ext(51, ah(1)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "ah 8 bytes",
                with_raw_ext(51, ah(0)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "ah 1028 bytes",
                with_raw_ext(51, ah(255)),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "fragment, low bits set",
                with_raw_ext(44, frag_reserved),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "length says less",
                with_raw_ext(0, short),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "length past the end",
                with_raw_ext(0, long),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "non-first fragment after hop-by-hop",
                syn(UNTRUSTED)
                    .ext(Ext::HopByHop)
                    .ext(Ext::Fragment { offset: 5 })
                    .build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn ipv4_header_fields() {
    let base = v4(25, SYN).build();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    let with_opts = |words: u8| {
        edit(&|p: &mut Vec<u8>| {
            p[14] = 0x40 | (5 + words);
            p.splice(34..34, vec![1u8; usize::from(words) * 4]);
        })
    };
    check_all(
        "v4fields",
        &enforce(),
        &[
            ("ihl 6", with_opts(1), XDP_DROP, Reason::NonIpv6Drop),
            ("ihl 15", with_opts(10), XDP_DROP, Reason::NonIpv6Drop),
            (
                "ihl 4",
                edit(&|p: &mut Vec<u8>| p[14] = 0x44),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "version 6",
                edit(&|p: &mut Vec<u8>| p[14] = 0x65),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "udp",
                edit(&|p: &mut Vec<u8>| p[14 + 9] = 17),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "non-first fragment",
                edit(&|p: &mut Vec<u8>| p[14 + 7] = 1),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "first fragment (MF)",
                edit(&|p: &mut Vec<u8>| p[14 + 6] = 0x20),
                XDP_DROP,
                Reason::NonIpv6Drop,
            ),
            (
                "DF",
                edit(&|p: &mut Vec<u8>| p[14 + 6] = 0x40),
                XDP_DROP,
                Reason::NonIpv6Drop,
            ),
            (
                "ihl points past the frame",
                edit(&|p: &mut Vec<u8>| p[14] = 0x4F),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn ipv6_version_must_be_6() {
    let mut p = syn(UNTRUSTED).build();
    p[14] = 0x40;
    check(&enforce(), p, XDP_PASS, Reason::OtherPass);
}

#[test]
fn syn_with_other_flags_is_still_a_syn() {
    check_all(
        "flags",
        &enforce(),
        &[
            (
                "syn fin",
                tcp(UNTRUSTED, 25, SYN | 0x01).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "syn psh urg ece cwr",
                tcp(UNTRUSTED, 25, SYN | 0xE8).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "all flags",
                tcp(UNTRUSTED, 25, 0xFF).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "no flags",
                tcp(UNTRUSTED, 25, 0).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn vlan_tpids_in_either_order() {
    let mut inner_ad = syn(UNTRUSTED).vlan(1).vlan(2).build();
    inner_ad[12..14].copy_from_slice(&[0x81, 0x00]);
    inner_ad[16..18].copy_from_slice(&[0x88, 0xA8]);
    let mut single_ad = syn(UNTRUSTED).vlan(1).build();
    single_ad[12..14].copy_from_slice(&[0x88, 0xA8]);
    let mut bare_tag = syn(UNTRUSTED).build()[..14].to_vec();
    bare_tag[12..14].copy_from_slice(&[0x81, 0x00]);
    check_all(
        "tpid",
        &enforce(),
        &[
            ("8100 then 88a8", inner_ad, XDP_DROP, Reason::UntrustedDrop),
            ("88a8 alone", single_ad, XDP_DROP, Reason::UntrustedDrop),
            (
                "tag announced, frame ends",
                bare_tag,
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn observe_with_protected_host() {
    let s = Settings {
        ports: vec![25, 587],
        observe: true,
        protect: vec![DST.parse::<Ipv6Addr>().unwrap().into()],
    };
    check_all(
        "obsprot",
        &s,
        &[
            (
                "to the host",
                syn(UNTRUSTED).build(),
                XDP_PASS,
                Reason::ObserveUntrusted,
            ),
            (
                "denied to the host",
                tcp(DENIED, 587, SYN).build(),
                XDP_PASS,
                Reason::ObserveDenied,
            ),
            (
                "to the next address",
                Builder::ipv6_tcp(a(UNTRUSTED), a("2001:db8:ffff::26"), 1, 25, SYN).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            ("ipv4", v4(25, SYN).build(), XDP_PASS, Reason::OtherPass),
        ],
    );
}
