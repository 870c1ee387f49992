//! Packet-level tests: one hand-built frame per case through the real XDP
//! program (BPF_PROG_TEST_RUN), checked against the spec and the reference:
//! TCP flags, ports, IPv4, VLANs, extension headers, fragments, truncation.

mod packet_common;
use packet_common::*;

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
