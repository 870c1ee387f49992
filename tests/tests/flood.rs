//! The gate under a SYN flood: a few seconds of SYNs to port 25 from random
//! untrusted documentation sources (a different one each packet) on a veth
//! pair, while a trusted peer opens real TCP connections. Every trusted
//! connect succeeds, every flood SYN that arrived is counted as an
//! untrusted drop, and the listener takes only the trusted connections.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use integration_tests::{
    netns::{Listener, Pair},
    synflood::{mac_of, random_sources, tcp_counter, tx_dropped, Connector, SynSender, BATCH},
    wotgate_cmd, PinnedGate,
};
use ipnet::Ipv6Net;
use rand::{rngs::StdRng, SeedableRng};
use wotgate::{
    gate::{compile::Capacity, Gate},
    model::prefixes::PrefixSet,
};

const TRUSTED: &str = "2001:db8:1::10";
const SERVER: &str = "2001:db8:ffff::1";
/// The flood's sources: random below this block; the set's padding lives
/// in it too, so lookups go deep and miss.
const FLOOD: &str = "2001:db8:8000::/33";
const FLOOD_FOR: Duration = Duration::from_secs(3);

fn counter(pin: &std::path::Path, name: &str) -> u64 {
    Gate::open(pin)
        .expect("open")
        .counters()
        .expect("counters")
        .into_iter()
        .find(|(r, _)| r.name() == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn a_syn_flood_from_random_sources_is_dropped_and_trusted_peers_connect() {
    integration_tests::require_kernel();
    let pair = Pair::new("fld", &[TRUSTED]);
    let listener = Listener::start(&pair.server.name, 25);

    // The trusted peer's /48 and 10,000 /56-/64 prefixes among the flood's sources.
    let mut rng = StdRng::seed_from_u64(25);
    let mut text = String::from("allow 2001:db8:1::/48 trusted peer\n");
    let mut pads = std::collections::HashSet::new();
    for (i, a) in random_sources(10_000, FLOOD.parse().unwrap(), &mut rng, |_| false)
        .into_iter()
        .enumerate()
    {
        let len = 56 + (i % 9) as u8;
        let net = Ipv6Net::new(a, len).unwrap().trunc();
        text.push_str(&format!("allow {net} pad\n"));
        pads.insert(net);
    }
    // All of it under one /32: a deep trie, more nodes than the default
    // capacity holds, so the gate is sized for the set (as `attach
    // --prefixes` does).
    let set = PrefixSet::parse(&text, "flood set").unwrap();
    let mut pg = PinnedGate::with_capacity("fld", &Capacity::for_set(&set, 0.25));
    pg.release();
    let pin = pg.path().to_path_buf();
    let file = std::env::temp_dir().join(format!("{}.prefixes", pair.server.name));
    std::fs::write(&file, &text).unwrap();
    for args in [
        vec!["prefixes", "load", file.to_str().unwrap()],
        vec!["attach", "--iface", &pair.server_if],
    ] {
        let out = wotgate_cmd(Some(&pair.server), &pin, &args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wotgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_file(&file);
    // The flood meets the compiled lookup (one deep trie under
    // 2001:db8::/32), not the LPM trie it falls back to.
    let out = wotgate_cmd(Some(&pair.server), &pin, &["inspect", "--json"])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    assert_eq!(s["lookup"]["kind"], "compiled", "{}", s["lookup"]);
    // 65,536 distinct sources no prefix of the set covers (the padding is
    // /56 to /64, the trusted peer outside the block).
    let sources = random_sources(1 << 16, FLOOD.parse().unwrap(), &mut rng, |a| {
        (56..=64).any(|l| pads.contains(&Ipv6Net::new(a, l).unwrap().trunc()))
    });

    let server_mac = mac_of(&pair.server, &pair.server_if).unwrap();
    let mut sender = SynSender::open(
        &pair.client,
        &pair.client_if,
        server_mac,
        SERVER.parse().unwrap(),
        25,
    )
    .unwrap();
    let opens = tcp_counter(&pair.server, "PassiveOpens");
    let drops = counter(&pin, "untrusted_drop");
    let lost = tx_dropped(&pair.client, &pair.client_if);
    // A SYN lost in a full veth queue is sent again after 1 s: 5 s each.
    let trusted = Connector::start(
        &pair.client.name,
        TRUSTED.parse().unwrap(),
        format!("[{SERVER}]:25").parse().unwrap(),
        Duration::from_secs(5),
        Duration::from_millis(20),
    );
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut i = 0;
    while t0.elapsed() < FLOOD_FOR {
        sent += sender.send(&sources[i..i + BATCH]).unwrap() as u64;
        i = (i + BATCH) % sources.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    // The trusted peer goes on a little after the flood, then stops.
    std::thread::sleep(Duration::from_millis(200));
    let (good, bad) = trusted.finish();
    let opens = tcp_counter(&pair.server, "PassiveOpens") - opens;
    let drops = counter(&pin, "untrusted_drop") - drops;
    let lost = tx_dropped(&pair.client, &pair.client_if) - lost;
    eprintln!(
        "flood: {sent} SYNs in {secs:.1} s ({:.0}/s), {lost} lost in the veth queue, {drops} dropped by the gate; trusted connects {good} ok, {bad} failed",
        sent as f64 / secs
    );
    assert!(sent >= 10_000, "the flood was too small to judge: {sent}");
    assert_eq!(bad, 0, "a trusted connect failed under the flood");
    assert!(good >= 3, "too few trusted connects to judge: {good}");
    // A SYN the veth queue refused may be counted both as lost and as not
    // sent: every SYN not lost is dropped, and no more than were sent.
    assert!(
        drops >= sent - lost && drops <= sent,
        "every flood SYN that arrived is an untrusted drop: {drops} drops, {sent} sent, {lost} lost"
    );
    assert_eq!(
        opens, good,
        "the server took {opens} connections for {good} trusted connects: an untrusted SYN got through"
    );
    assert_eq!(listener.accepted.load(Ordering::Relaxed) as u64, good);
}
