//! Smoke: the program loads, the verifier accepts it, a trusted and an
//! untrusted SYN get their verdicts.
use gate_common::Reason;
use integration_tests::PinnedGate;
use wotgate::{
    gate::prefixes::PrefixSet,
    packet::{Builder, SYN},
};

#[test]
fn loads_and_judges() {
    let mut pg = PinnedGate::new("smk");
    let set =
        PrefixSet::parse("allow 2001:db8:1::/48 t\ndeny 2001:db8:1:bad::/64 d\n", "x").unwrap();
    pg.gate().load_set(&set).unwrap();
    let dst = "2001:db8:ffff::1".parse().unwrap();
    let mut r = pg.gate().runner().unwrap();
    for (src, want) in [
        ("2001:db8:1::5", Reason::TrustedPass),
        ("2001:db8:2::5", Reason::UntrustedDrop),
        ("2001:db8:1:bad::5", Reason::DeniedDrop),
    ] {
        let out = r
            .run(&Builder::ipv6_tcp(src.parse().unwrap(), dst, 1234, 25, SYN).build())
            .unwrap();
        assert_eq!(out.reason, want, "{src}");
    }
}
