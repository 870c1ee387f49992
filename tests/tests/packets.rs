//! Packet-level tests: one hand-built frame per case through the real XDP
//! program (BPF_PROG_TEST_RUN), checked against the spec and the reference.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{Map, MapData, PerCpuArray};
use gate_common::{maps, Reason, MAX_EXT_HEADERS, REASON_COUNT};
use integration_tests::PinnedGate;
use wotgate::{
    gate::{
        prefixes::PrefixSet,
        replay::{Outcome, XDP_DROP, XDP_PASS},
        Settings,
    },
    packet::{Builder, Ext, ACK, RST, SYN},
    reference,
};

/// Allow a /48, deny a /64 inside it, allow an /80 inside the deny.
const SET: &str = "allow 2001:db8:1::/48 trusted\n\
                   deny 2001:db8:1:bad::/64 denied\n\
                   allow 2001:db8:1:bad:1::/80 re-allowed\n";
const TRUSTED: &str = "2001:db8:1::5";
const UNTRUSTED: &str = "2001:db8:2::5";
const DENIED: &str = "2001:db8:1:bad::5";
const REALLOWED: &str = "2001:db8:1:bad:1::5";
const DST: &str = "2001:db8:ffff::25";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn set() -> PrefixSet {
    PrefixSet::parse(SET, "packets").unwrap()
}

fn syn(src: &str) -> Builder {
    tcp(src, 25, SYN)
}

fn tcp(src: &str, dport: u16, flags: u8) -> Builder {
    Builder::ipv6_tcp(a(src), a(DST), 40000, dport, flags)
}

fn v4(dport: u16, flags: u8) -> Builder {
    Builder::ipv4_tcp(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(198, 51, 100, 25),
        40000,
        dport,
        flags,
    )
}

/// A gate with `settings` and the test set loaded.
fn gate(tag: &str, settings: &Settings) -> PinnedGate {
    let mut pg = PinnedGate::new(tag);
    pg.gate().set_settings(settings).unwrap();
    pg.gate().load_set(&set()).unwrap();
    pg
}

/// Runs `packets` through a fresh gate and asserts that the kernel and the
/// reference classifier both give each its expected action and reason.
fn check_all(tag: &str, settings: &Settings, cases: &[(&str, Vec<u8>, u32, Reason)]) {
    let pg = &mut gate(tag, settings);
    let s = set();
    let mut r = pg.gate().runner().unwrap();
    for (what, packet, action, reason) in cases {
        let want = Outcome {
            action: *action,
            reason: *reason,
        };
        let kernel = r.run(packet).unwrap();
        let refr = reference::classify(packet, settings, &s);
        assert_eq!(kernel, want, "kernel: {what}: {}", hex(packet));
        assert_eq!(refr, want, "reference: {what}: {}", hex(packet));
    }
}

fn check(settings: &Settings, packet: Vec<u8>, action: u32, reason: Reason) {
    check_all("pkt", settings, &[("packet", packet, action, reason)]);
}

fn enforce() -> Settings {
    Settings::default()
}

fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn trusted_syn_passes() {
    check(
        &enforce(),
        syn(TRUSTED).build(),
        XDP_PASS,
        Reason::TrustedPass,
    );
}

#[test]
fn untrusted_syn_dropped() {
    check(
        &enforce(),
        syn(UNTRUSTED).build(),
        XDP_DROP,
        Reason::UntrustedDrop,
    );
}

#[test]
fn denied_inside_allowed_dropped() {
    check(
        &enforce(),
        syn(DENIED).build(),
        XDP_DROP,
        Reason::DeniedDrop,
    );
}

#[test]
fn allowed_inside_denied_passes() {
    check(
        &enforce(),
        syn(REALLOWED).build(),
        XDP_PASS,
        Reason::TrustedPass,
    );
}

#[test]
fn syn_ack_passes() {
    check(
        &enforce(),
        tcp(UNTRUSTED, 25, SYN | ACK).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

#[test]
fn ack_passes() {
    check(
        &enforce(),
        tcp(UNTRUSTED, 25, ACK).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

#[test]
fn rst_passes() {
    check(
        &enforce(),
        tcp(UNTRUSTED, 25, RST).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

#[test]
fn syn_to_465_passes_when_only_25_protected() {
    check(
        &enforce(),
        tcp(UNTRUSTED, 465, SYN).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

#[test]
fn syn_to_80_passes() {
    check(
        &enforce(),
        tcp(UNTRUSTED, 80, SYN).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

#[test]
fn ipv4_syn_to_25_dropped() {
    check(
        &enforce(),
        v4(25, SYN).build(),
        XDP_DROP,
        Reason::NonIpv6Drop,
    );
}

#[test]
fn ipv4_non_syn_and_other_port_pass() {
    check_all(
        "pkt4",
        &enforce(),
        &[
            (
                "v4 syn-ack",
                v4(25, SYN | ACK).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "v4 syn to 80",
                v4(80, SYN).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn vlan_8021q() {
    check_all(
        "vlan",
        &enforce(),
        &[
            (
                "untrusted",
                syn(UNTRUSTED).vlan(100).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "trusted",
                syn(TRUSTED).vlan(100).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "ipv4",
                v4(25, SYN).vlan(100).build(),
                XDP_DROP,
                Reason::NonIpv6Drop,
            ),
        ],
    );
}

#[test]
fn qinq_8021ad_then_8021q() {
    let p = syn(UNTRUSTED).vlan(100).vlan(200).build();
    assert_eq!(&p[12..14], &[0x88, 0xA8]);
    assert_eq!(&p[16..18], &[0x81, 0x00]);
    check_all(
        "qinq",
        &enforce(),
        &[
            ("untrusted", p, XDP_DROP, Reason::UntrustedDrop),
            (
                "trusted",
                syn(TRUSTED).vlan(1).vlan(2).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "ipv4",
                v4(25, SYN).vlan(1).vlan(2).build(),
                XDP_DROP,
                Reason::NonIpv6Drop,
            ),
        ],
    );
}

#[test]
fn third_vlan_tag_passes() {
    check(
        &enforce(),
        syn(UNTRUSTED).vlan(1).vlan(2).vlan(3).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

/// An untrusted SYN behind one extension header is still dropped, a
/// trusted one still passes.
fn one_ext(tag: &str, e: Ext) {
    check_all(
        tag,
        &enforce(),
        &[
            (
                "untrusted",
                syn(UNTRUSTED).ext(e).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "trusted",
                syn(TRUSTED).ext(e).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "denied",
                syn(DENIED).ext(e).build(),
                XDP_DROP,
                Reason::DeniedDrop,
            ),
        ],
    );
}

#[test]
fn ext_hop_by_hop() {
    one_ext("hbh", Ext::HopByHop);
}

#[test]
fn ext_routing() {
    one_ext("rt", Ext::Routing);
}

#[test]
fn ext_destination_options() {
    one_ext("dst", Ext::DestOpts);
}

#[test]
fn ext_fragment_first() {
    one_ext("frag", Ext::Fragment { offset: 0 });
}

#[test]
fn ext_ah() {
    one_ext("ah", Ext::Ah);
}

/// `n` extension headers, cycling through every type.
fn chain(mut b: Builder, n: usize) -> Builder {
    let kinds = [
        Ext::HopByHop,
        Ext::Routing,
        Ext::DestOpts,
        Ext::Ah,
        Ext::Fragment { offset: 0 },
    ];
    for i in 0..n {
        b = b.ext(kinds[i % kinds.len()]);
    }
    b
}

#[test]
fn chain_at_bound_judged_by_tcp() {
    check_all(
        "bound",
        &enforce(),
        &[
            (
                "untrusted",
                chain(syn(UNTRUSTED), MAX_EXT_HEADERS).build(),
                XDP_DROP,
                Reason::UntrustedDrop,
            ),
            (
                "trusted",
                chain(syn(TRUSTED), MAX_EXT_HEADERS).build(),
                XDP_PASS,
                Reason::TrustedPass,
            ),
            (
                "ack",
                chain(tcp(UNTRUSTED, 25, ACK), MAX_EXT_HEADERS).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn chain_past_bound_malformed() {
    check_all(
        "past",
        &enforce(),
        &[
            (
                "untrusted",
                chain(syn(UNTRUSTED), MAX_EXT_HEADERS + 1).build(),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "trusted",
                chain(syn(TRUSTED), MAX_EXT_HEADERS + 1).build(),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
            (
                "ten",
                chain(syn(TRUSTED), MAX_EXT_HEADERS + 2).build(),
                XDP_DROP,
                Reason::MalformedDrop,
            ),
        ],
    );
}

#[test]
fn first_fragment_judged_by_tcp() {
    check(
        &enforce(),
        syn(UNTRUSTED).ext(Ext::Fragment { offset: 0 }).build(),
        XDP_DROP,
        Reason::UntrustedDrop,
    );
}

#[test]
fn non_first_fragment_passes() {
    check_all(
        "frag1",
        &enforce(),
        &[
            (
                "offset 1",
                syn(UNTRUSTED).ext(Ext::Fragment { offset: 1 }).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
            (
                "offset max",
                syn(UNTRUSTED).ext(Ext::Fragment { offset: 0x1FFF }).build(),
                XDP_PASS,
                Reason::OtherPass,
            ),
        ],
    );
}

#[test]
fn truncated_ethernet_passes() {
    // The kernel refuses test runs of frames shorter than an Ethernet
    // header, so the shortest the program can see is 14 bytes; a frame cut
    // inside its VLAN tags is the truncated link header it can meet.
    let tagged = syn(UNTRUSTED).vlan(1).vlan(2).build();
    let mut cases = Vec::new();
    for n in 14..22 {
        cases.push((
            "cut in vlan tags",
            tagged[..n].to_vec(),
            XDP_PASS,
            Reason::OtherPass,
        ));
    }
    // Just the Ethernet header, claiming IPv6.
    cases.push((
        "bare ethernet",
        syn(UNTRUSTED).build()[..14].to_vec(),
        XDP_PASS,
        Reason::OtherPass,
    ));
    check_all("teth", &enforce(), &cases);
    let s = set();
    for n in 0..14 {
        let r = reference::classify(&tagged[..n], &enforce(), &s);
        assert_eq!(r.reason, Reason::OtherPass);
        assert_eq!(r.action, XDP_PASS);
    }
    // And the test run of a too-short frame is refused, not misjudged.
    let pg = &mut gate("teth2", &enforce());
    let mut r = pg.gate().runner().unwrap();
    assert!(r.run(&tagged[..13]).is_err());
}

#[test]
fn truncated_ipv6_passes() {
    let p = syn(UNTRUSTED).build();
    let cases: Vec<_> = (14..14 + 40)
        .map(|n| ("cut in ipv6", p[..n].to_vec(), XDP_PASS, Reason::OtherPass))
        .collect();
    check_all("tip6", &enforce(), &cases);
}

#[test]
fn truncated_extension_header_passes() {
    let p = syn(UNTRUSTED)
        .ext(Ext::Fragment { offset: 0 })
        .ext(Ext::Ah)
        .build();
    let cases: Vec<_> = (54..54 + 8 + 24)
        .map(|n| ("cut in ext", p[..n].to_vec(), XDP_PASS, Reason::OtherPass))
        .collect();
    check_all("text", &enforce(), &cases);
}

#[test]
fn truncated_tcp_passes() {
    let p = syn(UNTRUSTED).build();
    let mut cases: Vec<_> = (54..54 + 20)
        .map(|n| ("cut in tcp", p[..n].to_vec(), XDP_PASS, Reason::OtherPass))
        .collect();
    let q = v4(25, SYN).build();
    cases.extend((14..q.len()).map(|n| {
        (
            "cut in ipv4/tcp",
            q[..n].to_vec(),
            XDP_PASS,
            Reason::OtherPass,
        )
    }));
    // The whole packets are dropped: the cut is what makes them pass.
    cases.push(("whole v6", p, XDP_DROP, Reason::UntrustedDrop));
    cases.push(("whole v4", q, XDP_DROP, Reason::NonIpv6Drop));
    check_all("ttcp", &enforce(), &cases);
}

#[test]
fn icmpv6_neighbour_discovery_passes() {
    let mut cases = Vec::new();
    for src in [UNTRUSTED, DENIED, TRUSTED] {
        for kind in [135u8, 136] {
            cases.push((
                "nd",
                Builder::icmpv6(a(src), a(DST), kind).build(),
                XDP_PASS,
                Reason::OtherPass,
            ));
        }
    }
    check_all("nd", &enforce(), &cases);
}

#[test]
fn udp_to_25_passes() {
    check(
        &enforce(),
        Builder::ipv6_udp(a(UNTRUSTED), a(DST), 1, 25).build(),
        XDP_PASS,
        Reason::OtherPass,
    );
}

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
