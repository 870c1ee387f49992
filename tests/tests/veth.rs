//! Real TCP through veth pairs in namespaces with the gate attached by the
//! `wotgate` binary: verdicts in both modes, swaps under load, loader killed.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    process::{Command, Output},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use integration_tests::{
    netns::{connect, Listener, NetNs, Pair},
    wotgate_bin, wotgate_cmd, PinnedGate,
};
use wotgate::model::prefixes::PrefixSet;

const TRUSTED: &str = "2001:db8:1::10";
const DENIED: &str = "2001:db8:1:bad::10";
const UNTRUSTED: &str = "2001:db8:ffff::2";
const SERVER6: &str = "[2001:db8:ffff::1]";

fn run(ns: &NetNs, pin: &Path, args: &[&str]) -> Output {
    let out = wotgate_cmd(Some(ns), pin, args)
        .output()
        .expect("run wotgate");
    assert!(
        out.status.success(),
        "wotgate {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn counters(ns: &NetNs, pin: &Path) -> serde_json::Value {
    let out = run(ns, pin, &["inspect", "--json"]);
    serde_json::from_slice(&out.stdout).expect("inspect json")
}

fn counter(status: &serde_json::Value, name: &str) -> u64 {
    status["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == name)
        .and_then(|c| c[1].as_u64())
        .unwrap_or_else(|| panic!("no counter {name}"))
}

fn ok(ns: &str, src: &str, dst: &str) -> bool {
    let src: IpAddr = src.parse().unwrap();
    let dst: SocketAddr = dst.parse().unwrap();
    connect(ns, src, dst, Duration::from_millis(1500)).is_ok()
}

struct Rig {
    pair: Pair,
    pg: PinnedGate,
    _l25: Listener,
    _l2626: Listener,
    accepted25: Arc<std::sync::atomic::AtomicUsize>,
    file: tempfile_path::TempFile,
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn rig(tag: &str, mode: &str) -> Rig {
    let pair = Pair::new(tag, &[TRUSTED, DENIED]);
    let mut pg = PinnedGate::new(tag);
    pg.release();
    let l25 = Listener::start(&pair.server.name, 25);
    let l2626 = Listener::start(&pair.server.name, 2626);
    let accepted25 = l25.accepted.clone();
    let file = tempfile_path::TempFile(
        std::env::temp_dir().join(format!("{}.prefixes", pair.server.name)),
    );
    std::fs::write(
        &file.0,
        "allow 2001:db8:1::/48 trusted peer\ndeny 2001:db8:1:bad::/64 refused key\n",
    )
    .unwrap();
    // The set first: attach refuses to enforce with an empty one.
    run(
        &pair.server,
        pg.path(),
        &["prefixes", "load", file.0.to_str().unwrap()],
    );
    run(
        &pair.server,
        pg.path(),
        &["attach", "--iface", &pair.server_if, "--xdp-mode", mode],
    );
    Rig {
        pair,
        pg,
        _l25: l25,
        _l2626: l2626,
        accepted25,
        file,
    }
}

fn verdicts(mode: &str) {
    let r = rig(&format!("v{}", &mode[..1]), mode);
    let c = &r.pair.client.name;
    let status = counters(&r.pair.server, r.pg.path());
    let att = &status["attachments"][0];
    assert_eq!(att["iface"], r.pair.server_if.as_str());
    assert_eq!(att["mode"], mode);
    assert_eq!(att["live"], true);

    assert!(
        ok(c, TRUSTED, &format!("{SERVER6}:25")),
        "trusted IPv6 must connect"
    );
    assert!(
        !ok(c, UNTRUSTED, &format!("{SERVER6}:25")),
        "untrusted IPv6 must not"
    );
    assert!(
        !ok(c, DENIED, &format!("{SERVER6}:25")),
        "denied inside allowed must not"
    );
    assert!(!ok(c, "192.0.2.2", "192.0.2.1:25"), "IPv4 to 25 must not");
    assert!(
        ok(c, UNTRUSTED, &format!("{SERVER6}:2626")),
        "other ports are not gated"
    );
    assert!(
        ok(c, "192.0.2.2", "192.0.2.1:2626"),
        "IPv4 to other ports passes"
    );
    assert_eq!(
        r.accepted25.load(Ordering::Relaxed),
        1,
        "only the trusted connect reached port 25"
    );

    let s = counters(&r.pair.server, r.pg.path());
    assert!(counter(&s, "trusted_pass") >= 1);
    assert!(counter(&s, "untrusted_drop") >= 1);
    assert!(counter(&s, "denied_drop") >= 1);
    assert!(counter(&s, "non_ipv6_drop") >= 1);
    assert!(counter(&s, "other_pass") >= 1);

    // Detach: everything passes again.
    run(
        &r.pair.server,
        r.pg.path(),
        &["detach", "--iface", &r.pair.server_if],
    );
    assert!(
        ok(c, UNTRUSTED, &format!("{SERVER6}:25")),
        "detached gate must not drop"
    );
    drop(r.file);
}

#[test]
fn native_mode_real_tcp() {
    verdicts("native");
}

#[test]
fn skb_mode_real_tcp() {
    verdicts("skb");
}

/// Sets that all contain the trusted peer's prefix, padded differently.
fn padded_set(n: usize, salt: u16) -> PrefixSet {
    let mut text = String::from("allow 2001:db8:1::/48 trusted peer\n");
    for i in 0..n {
        text.push_str(&format!(
            "allow 2001:db8:{:x}:{:x}::/64 pad{salt}\n",
            0x100 + salt as usize,
            i
        ));
    }
    PrefixSet::parse(&text, "padded").unwrap()
}

#[test]
fn swaps_under_continuous_connects_drop_nothing_trusted() {
    let mut r = rig("sw", "native");
    let c = r.pair.client.name.clone();
    use std::io::{Read, Write};
    let mut established = connect(
        &c,
        TRUSTED.parse().unwrap(),
        format!("{SERVER6}:25").parse().unwrap(),
        Duration::from_secs(2),
    )
    .expect("established connection");
    established
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();

    r.pg.reopen();
    let before = counters(&r.pair.server, r.pg.path());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connects = {
        let (stop, c) = (stop.clone(), c.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                connect(
                    &c,
                    TRUSTED.parse().unwrap(),
                    format!("{SERVER6}:25").parse().unwrap(),
                    Duration::from_secs(3),
                )
                .expect("a trusted connect failed during a swap");
                n += 1;
            }
            n
        })
    };
    let mut generations = Vec::new();
    for i in 0..30u16 {
        let set = padded_set(if i % 2 == 0 { 2000 } else { 500 }, i);
        generations.push(r.pg.gate().load_set(&set).expect("swap").generation);
        established.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        established
            .read_exact(&mut buf)
            .expect("established connection broke during swap");
        assert_eq!(&buf, b"ping");
    }
    stop.store(true, Ordering::Relaxed);
    let n = connects.join().expect("connect thread");
    assert!(n > 0, "no connects happened during the swaps");
    assert!(
        generations.windows(2).all(|w| w[1] == w[0] + 1),
        "{generations:?}"
    );
    let after = counters(&r.pair.server, r.pg.path());
    for name in ["untrusted_drop", "denied_drop"] {
        assert_eq!(
            counter(&after, name),
            counter(&before, name),
            "{name} moved during swaps: a trusted SYN was dropped"
        );
    }
    assert!(counter(&after, "trusted_pass") >= counter(&before, "trusted_pass") + n as u64);
}

#[test]
fn enforcing_survives_a_killed_loader() {
    killed_loader(false);
}

/// The same load, but it can be enforced ahead of its trie (no prefix
/// shorter than /32): killed while that trie fills, the new set is
/// enforced from its compiled copy until the next writer, whose repair
/// undoes the update (the previous set enforced again).
#[test]
fn a_loader_killed_while_enforcing_ahead_is_undone_by_the_next_writer() {
    killed_loader(true);
}

fn killed_loader(ahead: bool) {
    let r = rig(if ahead { "ka" } else { "kl" }, "native");
    let c = r.pair.client.name.clone();
    let gen_before = counters(&r.pair.server, r.pg.path())["generation"]
        .as_u64()
        .unwrap();

    // A big load, killed with SIGKILL while it fills the inactive trie.
    // A prefix shorter than /32 keeps it from going ahead of that trie (the
    // datapath may read the trie on a miss): the trie is filled before the
    // flip.
    let big =
        tempfile_path::TempFile(std::env::temp_dir().join(format!("{}.big", r.pair.server.name)));
    let mut text = String::new();
    if !ahead {
        text.push_str("deny 3fff::/20\n");
    }
    for i in 0..400_000u32 {
        text.push_str(&format!(
            "allow 2001:db8:{:x}:{:x}::/64\n",
            0x8000 + (i >> 16),
            i & 0xffff
        ));
    }
    std::fs::write(&big.0, text).unwrap();
    let bin = wotgate_bin();
    let mut child = Command::new(&bin)
        .args([
            "--pin-dir",
            r.pg.path().to_str().unwrap(),
            "prefixes",
            "load",
            big.0.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    // Wait until it is filling the inactive trie, then kill it.
    let observer = wotgate::gate::Gate::open(r.pg.path()).unwrap();
    let inactive = 1 - observer.active_trie().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Entries go in in prefix order; the 1000th is 2001:db8:8000:3e7::/64.
    let probe = "2001:db8:8000:3e7::1".parse().unwrap();
    while integration_tests::lookup_in(r.pg.path(), inactive, probe)
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started filling"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let still_running = child.try_wait().unwrap().is_none();
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(
        still_running,
        "the load finished before it could be killed; make it bigger"
    );
    assert!(!status.success());
    // The half being written: its record or its trie (where it keeps the
    // new set) is partly filled.
    let (in_record, in_trie) = observer.half_counts(inactive).unwrap();
    let partial = in_record.max(in_trie);
    assert!(
        (1000..400_000).contains(&partial),
        "killed mid-fill: {partial} entries in the inactive trie"
    );
    drop(observer);

    let s = counters(&r.pair.server, r.pg.path());
    assert_eq!(
        s["generation"].as_u64().unwrap(),
        gen_before,
        "a killed load must not change the active set"
    );
    assert_eq!(s["entries"].as_array().unwrap().len(), 2);
    if ahead {
        // The new set (which lacks the trusted peer) is enforced until a
        // repair; readers show the previous one and the update under way.
        assert!(
            s["update_under_way"]
                .as_str()
                .is_some_and(|u| u.contains("enforced ahead")),
            "{s:#}"
        );
        assert!(
            !ok(&c, TRUSTED, &format!("{SERVER6}:25")),
            "the new set is enforced until the next writer"
        );
        assert!(wotgate::gate::Gate::open(r.pg.path())
            .unwrap()
            .repair()
            .unwrap());
        let s = counters(&r.pair.server, r.pg.path());
        assert_eq!(s["generation"].as_u64().unwrap(), gen_before, "{s:#}");
        assert!(s["update_under_way"].is_null(), "{s:#}");
    }
    assert!(
        ok(&c, TRUSTED, &format!("{SERVER6}:25")),
        "trusted still connects"
    );
    assert!(
        !ok(&c, UNTRUSTED, &format!("{SERVER6}:25")),
        "untrusted still dropped"
    );

    // The next load cleans up the half-filled trie and works.
    run(
        &r.pair.server,
        r.pg.path(),
        &["prefixes", "load", r.file.0.to_str().unwrap()],
    );
    let s = counters(&r.pair.server, r.pg.path());
    assert_eq!(s["generation"].as_u64().unwrap(), gen_before + 1);
    assert_eq!(
        s["trie_entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .max(),
        Some(2)
    );
}
