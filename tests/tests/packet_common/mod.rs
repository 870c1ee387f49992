//! Shared helpers of the packet tests: the test set, packet shorthands, and
//! a check that runs a frame through the kernel and the reference classifier.
#![allow(dead_code, unused_imports)]

pub use std::net::{Ipv4Addr, Ipv6Addr};

pub use aya::maps::{Map, MapData, PerCpuArray};
pub use gate_common::{maps, Reason, MAX_EXT_HEADERS, REASON_COUNT};
pub use integration_tests::{
    packet::{Builder, Ext, ACK, RST, SYN},
    reference, PinnedGate,
};
pub use wotgate::{
    gate::{
        replay::{Outcome, XDP_DROP, XDP_PASS},
        Settings,
    },
    model::prefixes::PrefixSet,
};

/// Allow a /48, deny a /64 inside it, allow an /80 inside the deny.
pub const SET: &str = "allow 2001:db8:1::/48 trusted\n\
                   deny 2001:db8:1:bad::/64 denied\n\
                   allow 2001:db8:1:bad:1::/80 re-allowed\n";
pub const TRUSTED: &str = "2001:db8:1::5";
pub const UNTRUSTED: &str = "2001:db8:2::5";
pub const DENIED: &str = "2001:db8:1:bad::5";
pub const REALLOWED: &str = "2001:db8:1:bad:1::5";
pub const DST: &str = "2001:db8:ffff::25";

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn set() -> PrefixSet {
    PrefixSet::parse(SET, "packets").unwrap()
}

pub fn syn(src: &str) -> Builder {
    tcp(src, 25, SYN)
}

pub fn tcp(src: &str, dport: u16, flags: u8) -> Builder {
    Builder::ipv6_tcp(a(src), a(DST), 40000, dport, flags)
}

pub fn v4(dport: u16, flags: u8) -> Builder {
    Builder::ipv4_tcp(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(198, 51, 100, 25),
        40000,
        dport,
        flags,
    )
}

/// A gate with `settings` and the test set loaded.
pub fn gate(tag: &str, settings: &Settings) -> PinnedGate {
    let mut pg = PinnedGate::new(tag);
    pg.gate().set_settings(settings).unwrap();
    pg.gate().load_set(&set()).unwrap();
    pg
}

/// Runs `packets` through a fresh gate and asserts that the kernel and the
/// reference classifier both give each its expected action and reason.
pub fn check_all(tag: &str, settings: &Settings, cases: &[(&str, Vec<u8>, u32, Reason)]) {
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

pub fn check(settings: &Settings, packet: Vec<u8>, action: u32, reason: Reason) {
    check_all("pkt", settings, &[("packet", packet, action, reason)]);
}

pub fn enforce() -> Settings {
    Settings::default()
}

pub fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` extension headers, cycling through every type.
pub fn chain(mut b: Builder, n: usize) -> Builder {
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
