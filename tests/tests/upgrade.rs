//! Replacing the running XDP program in place (`wotgate upgrade`, `attach`
//! on an attached gate) while untrusted SYNs flood and trusted peers
//! connect: nothing untrusted gets through, every trusted connect succeeds,
//! the program changes and the maps stay; a build whose maps do not fit the
//! pins is refused and the old program keeps running.

use std::{
    net::{Ipv6Addr, SocketAddr},
    path::Path,
    process::Output,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{MapData, MapInfo};
use integration_tests::{
    netns::{connect, Listener, Pair},
    synflood::{mac_of, random_sources, tcp_counter, Connector, SynSender},
    wotgate_cmd, PinnedGate,
};
use rand::{rngs::StdRng, SeedableRng};
use wotgate::gate::Gate;

const TRUSTED: &str = "2001:db8:1::10";
const SERVER: &str = "2001:db8:ffff::1";
/// Flood sources: random below this documentation block, none trusted.
const FLOOD: &str = "2001:db8:8000::/33";

fn wotgate(pair: &Pair, pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(Some(&pair.server), pin, args)
        .output()
        .expect("run wotgate")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "wotgate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pinned program's id and the program id of every link.
fn programs(pin: &Path) -> (u64, Vec<u64>) {
    let gate = Gate::open(pin).expect("open");
    let (id, _) = gate.program_info().expect("program info");
    let links = gate
        .attachments()
        .expect("attachments")
        .iter()
        .map(|a| a.program_id.expect("link program"))
        .collect();
    (id.expect("program id"), links)
}

/// Every pinned map's name and kernel id.
fn map_ids(pin: &Path) -> Vec<(String, u32)> {
    gate_common::maps::ALL
        .iter()
        .map(|n| {
            let info = MapInfo::from_pin(pin.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n.to_string(), info.id())
        })
        .collect()
}

fn counter(pin: &Path, name: &str) -> u64 {
    Gate::open(pin)
        .expect("open")
        .counters()
        .expect("counters")
        .into_iter()
        .find(|(r, _)| r.name() == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// Untrusted SYNs about every 100 µs from a thread of their own, and a
/// trusted peer connecting in a loop, until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    flood: Option<JoinHandle<()>>,
    trusted: Option<Connector>,
}

impl Traffic {
    fn start(pair: &Pair) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let server_mac = mac_of(&pair.server, &pair.server_if).expect("server MAC");
        let mut sender = SynSender::open(
            &pair.client,
            &pair.client_if,
            server_mac,
            SERVER.parse().unwrap(),
            25,
        )
        .expect("SYN sender");
        let mut rng = StdRng::seed_from_u64(12);
        let sources = random_sources(4096, FLOOD.parse().unwrap(), &mut rng, |_| false);
        let flood = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n = sender.send(&sources[i..i + 1]).expect("send");
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    i = (i + 1) % sources.len();
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        let trusted = Connector::start(
            &pair.client.name,
            TRUSTED.parse().unwrap(),
            format!("[{SERVER}]:25").parse().unwrap(),
            Duration::from_secs(1),
            Duration::from_millis(5),
        );
        Traffic {
            stop,
            sent,
            flood: Some(flood),
            trusted: Some(trusted),
        }
    }

    /// Stops; returns (untrusted SYNs sent, trusted connects ok, failed).
    fn finish(mut self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.flood.take() {
            t.join().expect("flood thread");
        }
        let (ok, failed) = self.trusted.take().expect("trusted peer").finish();
        (self.sent.load(Ordering::Relaxed), ok, failed)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `during` with traffic flowing for 300 ms before and after it, then
/// checks: every trusted connect succeeded, the listener took exactly the
/// trusted connections (no untrusted SYN reached it), and every untrusted
/// SYN that reached the gate was counted as dropped.
fn under_traffic<T>(pair: &Pair, pin: &Path, during: impl FnOnce() -> T) -> T {
    let opens = tcp_counter(&pair.server, "PassiveOpens");
    let drops = counter(pin, "untrusted_drop");
    let tx_dropped = integration_tests::synflood::tx_dropped(&pair.client, &pair.client_if);
    let traffic = Traffic::start(pair);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let r = during();
    eprintln!("step took {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let (sent, good, bad) = traffic.finish();
    let opens = tcp_counter(&pair.server, "PassiveOpens") - opens;
    let lost = integration_tests::synflood::tx_dropped(&pair.client, &pair.client_if) - tx_dropped;
    let drops = counter(pin, "untrusted_drop") - drops;
    eprintln!("untrusted SYNs sent {sent} (lost on the way {lost}), dropped by the gate {drops}; trusted connects {good} ok, {bad} failed; passive opens {opens}");
    assert_eq!(bad, 0, "a trusted connect failed");
    assert!(good >= 5, "too few trusted connects to judge: {good}");
    assert!(sent >= 100, "too few untrusted SYNs to judge: {sent}");
    assert_eq!(
        opens, good,
        "the server took {opens} connections, {good} trusted ones were made: an untrusted SYN got through"
    );
    assert!(
        drops >= sent - lost && drops <= sent,
        "every untrusted SYN is counted as dropped: {drops} drops, {sent} sent, {lost} lost"
    );
    r
}

#[test]
fn upgrade_replaces_the_program_without_a_gap_and_keeps_the_maps() {
    integration_tests::require_kernel();
    let pair = Pair::new("upg", &[TRUSTED]);
    let mut pg = PinnedGate::new("upg");
    pg.release();
    let pin = pg.path().to_path_buf();
    let _l25 = Listener::start(&pair.server.name, 25);
    let file = std::env::temp_dir().join(format!("{}.prefixes", pair.server.name));
    std::fs::write(&file, "allow 2001:db8:1::/48 trusted peer\n").unwrap();
    ok(&wotgate(
        &pair,
        &pin,
        &["prefixes", "load", file.to_str().unwrap()],
    ));
    let _ = std::fs::remove_file(&file);
    ok(&wotgate(
        &pair,
        &pin,
        &["attach", "--iface", &pair.server_if],
    ));
    let (old, links) = programs(&pin);
    assert_eq!(links, vec![old], "the link runs the pinned program");
    let maps = map_ids(&pin);

    // The upgrade itself, under the flood.
    let text = under_traffic(&pair, &pin, || ok(&wotgate(&pair, &pin, &["upgrade"])));
    let (new, links) = programs(&pin);
    assert_ne!(new, old, "a new program: {text}");
    assert_eq!(links, vec![new], "the link runs the new program");
    assert!(text.contains(&format!("id {old} -> {new}")), "{text}");
    assert_eq!(map_ids(&pin), maps, "the same maps, not new ones");
    assert!(!pin.join("prog_next").exists());

    // Attach again, and upgrade --if-changed: this build runs already.
    let text = ok(&wotgate(
        &pair,
        &pin,
        &["attach", "--iface", &pair.server_if],
    ));
    assert!(!text.contains("upgraded"), "{text}");
    let text = ok(&wotgate(&pair, &pin, &["upgrade", "--if-changed"]));
    assert!(text.contains("nothing replaced"), "{text}");
    assert_eq!(programs(&pin).0, new);

    // A pinned map this build cannot use (another size): refused, named,
    // and the old program keeps gating.
    let counters = pin.join("WG_COUNTERS");
    std::fs::remove_file(&counters).unwrap();
    // BPF_MAP_TYPE_PERCPU_ARRAY, 4-byte keys, 8-byte values, 3 entries.
    let odd = aya_obj::maps::Map::new_from_params(6, 4, 8, 3, 0);
    MapData::create(odd, "WG_COUNTERS", None)
        .expect("create a map")
        .pin(&counters)
        .expect("pin it");
    let out = under_traffic_refused(&pair, &pin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("has maps this build cannot use"), "{err}");
    assert!(
        err.contains("WG_COUNTERS has max_entries 3, this build needs"),
        "{err}"
    );
    assert!(err.contains("wotgate detach --purge"), "{err}");
    assert_eq!(programs(&pin), (new, vec![new]), "nothing replaced");

    // An older layout of the metadata: the existing purge-and-attach refusal.
    let meta = pin.join("WG_META");
    std::fs::remove_file(&meta).unwrap();
    // BPF_MAP_TYPE_ARRAY of 48-byte records (the first layout).
    MapData::create(
        aya_obj::maps::Map::new_from_params(2, 4, 48, 1, 0),
        "WG_META",
        None,
    )
    .expect("create a map")
    .pin(&meta)
    .expect("pin it");
    let out = wotgate(&pair, &pin, &["upgrade"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("was made by another wotgate version"), "{err}");
    assert!(
        err.contains("wotgate detach --purge, then wotgate attach"),
        "{err}"
    );
    assert_eq!(programs_raw(&pin), new, "nothing replaced");
    let dst: SocketAddr = format!("[{SERVER}]:25").parse().unwrap();
    let untrusted: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
    assert!(
        connect(
            &pair.client.name,
            untrusted.into(),
            dst,
            Duration::from_millis(800)
        )
        .is_err(),
        "the old program still drops untrusted SYNs"
    );
    assert!(connect(
        &pair.client.name,
        TRUSTED.parse().unwrap(),
        dst,
        Duration::from_secs(2)
    )
    .is_ok());
}

/// `wotgate upgrade` refused while traffic flows; the counters map was
/// replaced in the pins, so drops are read from the inspect of the kernel
/// side only through the listener and the passive opens.
fn under_traffic_refused(pair: &Pair, pin: &Path) -> Output {
    let opens = tcp_counter(&pair.server, "PassiveOpens");
    let traffic = Traffic::start(pair);
    std::thread::sleep(Duration::from_millis(300));
    let out = wotgate(pair, pin, &["upgrade"]);
    std::thread::sleep(Duration::from_millis(300));
    let (sent, good, bad) = traffic.finish();
    let opens = tcp_counter(&pair.server, "PassiveOpens") - opens;
    assert_eq!(bad, 0, "a trusted connect failed");
    assert!(sent >= 100 && good >= 5, "sent {sent}, trusted {good}");
    assert_eq!(opens, good, "an untrusted SYN got through");
    out
}

/// The pinned program's id, read without opening the gate's maps (whose
/// layout the test changed).
fn programs_raw(pin: &Path) -> u64 {
    let fd = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .map(|p| p.id())
        .collect::<Vec<_>>();
    let prog = aya::programs::Xdp::from_pin(
        pin.join("prog"),
        aya_obj::programs::XdpAttachType::Interface,
    )
    .expect("pinned program");
    let id = prog.info().expect("info").id();
    assert!(fd.contains(&id));
    u64::from(id)
}

/// A gate pinned before the compiled lookup (no `WG_LOOKUP`, no arrays) is
/// refused by `upgrade` and by every command that opens it, with the
/// purge-and-attach message, and nothing is loaded over it.
#[test]
fn pins_without_the_compiled_lookup_are_refused() {
    let mut pg = PinnedGate::new("uplk");
    pg.release();
    let pin = pg.path().to_path_buf();
    for name in gate_common::maps::ALL.iter().filter(|n| {
        n.starts_with("WG_LOOKUP")
            || n.starts_with("WG_BUCKETS")
            || n.starts_with("WG_LISTS")
            || n.starts_with("WG_NODES")
            || n.starts_with("WG_LEAVES")
    }) {
        std::fs::remove_file(pin.join(name)).unwrap();
    }
    let err = Gate::open(&pin).err().expect("refused").to_string();
    assert!(err.contains("was made by another wotgate version"), "{err}");
    assert!(err.contains("WG_LOOKUP"), "{err}");
    for args in [&["upgrade"][..], &["inspect"][..]] {
        let out = wotgate_cmd(None, &pin, args).output().expect("run wotgate");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains("WG_LOOKUP"), "{args:?}: {text}");
        assert!(text.contains("wotgate detach --purge"), "{args:?}: {text}");
    }
    assert!(
        !pin.join("WG_LOOKUP").exists(),
        "nothing was loaded over it"
    );
}

/// A gate pinned before the records keeps its whole set in its LPM tries,
/// which this version reads only for prefixes shorter than /32 while a
/// compiled copy is valid: it is refused with the purge-and-attach advice
/// by every command, and nothing is loaded over it.
#[test]
fn pins_without_the_records_are_refused() {
    let mut pg = PinnedGate::new("uprc");
    pg.release();
    let pin = pg.path().to_path_buf();
    for name in gate_common::maps::RECORD {
        std::fs::remove_file(pin.join(name)).unwrap();
    }
    let err = Gate::open(&pin).err().expect("refused").to_string();
    assert!(err.contains("was made by another wotgate version"), "{err}");
    assert!(err.contains("WG_RECORD_0"), "{err}");
    for args in [&["upgrade"][..], &["inspect"][..]] {
        let out = wotgate_cmd(None, &pin, args).output().expect("run wotgate");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains("WG_RECORD_0"), "{args:?}: {text}");
        assert!(text.contains("wotgate detach --purge"), "{args:?}: {text}");
    }
    assert!(
        !pin.join("WG_RECORD_0").exists(),
        "nothing was loaded over it"
    );
}

/// A gate pinned before trie nodes carried their per-word counts has
/// 72-byte nodes: the new program would misread them, so it is refused
/// with the purge-and-attach advice, and nothing is loaded over it.
#[test]
fn pins_with_the_old_trie_node_layout_are_refused() {
    let mut pg = PinnedGate::new("upnd");
    pg.release();
    let pin = pg.path().to_path_buf();
    let old = pin.join(gate_common::maps::NODES[0]);
    std::fs::remove_file(&old).unwrap();
    // BPF_MAP_TYPE_ARRAY of 72-byte values, the old `Node`.
    let fd = wotgate::gate::sys::map_create(2, 4, 72, 16, None).expect("creating the old map");
    integration_tests::baseline::pin(&fd, &old).expect("pinning it");
    let err = Gate::open(&pin).err().expect("refused").to_string();
    assert!(err.contains("was made by another wotgate version"), "{err}");
    assert!(err.contains("72-byte trie nodes"), "{err}");
    let out = wotgate_cmd(None, &pin, &["upgrade"])
        .output()
        .expect("run wotgate");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("wotgate detach --purge"), "{text}");
}
