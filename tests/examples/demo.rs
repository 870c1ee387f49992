//! `cargo xtask demo`: the gate end to end on an embedded default, inside
//! namespaces it creates and removes: observe, then enforce, real TCP.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use integration_tests::{
    netns::{connect, Listener, NetNs, Pair},
    wotgate_bin, PinnedGate,
};

const PREFIXES: &str = include_str!("demo.prefixes");

fn wotgate(ns: &NetNs, pin: &Path, args: &[&str]) -> String {
    let bin = wotgate_bin();
    let mut full = vec![bin.to_str().unwrap(), "--pin-dir", pin.to_str().unwrap()];
    full.extend_from_slice(args);
    println!("\n$ wotgate {}", args.join(" "));
    let out = ns.cmd(&full).output().expect("run wotgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{text}");
    assert!(out.status.success(), "wotgate {args:?} failed");
    text
}

fn try_connect(ns: &str, who: &str, src: &str, dst: &str) -> bool {
    let ok = connect(
        ns,
        src.parse().unwrap(),
        dst.parse::<SocketAddr>().unwrap(),
        Duration::from_millis(1500),
    )
    .is_ok();
    println!(
        "  connect {who:10} from {src:22} to {dst:24} -> {}",
        if ok {
            "connected"
        } else {
            "no answer (SYN dropped)"
        }
    );
    ok
}

fn main() {
    let pair = Pair::new("demo", &["2001:db8:1::10", "2001:db8:1:bad::10"]);
    let mut pg = PinnedGate::new("demo");
    pg.release();
    let pin = pg.path().to_path_buf();
    let _smtp = Listener::start(&pair.server.name, 25);
    let file = std::env::temp_dir().join(format!("{}.prefixes", pair.server.name));
    std::fs::write(&file, PREFIXES).unwrap();
    let (s, c) = (&pair.server, pair.client.name.as_str());
    let server = "[2001:db8:ffff::1]:25";
    let peers = [
        ("trusted", "2001:db8:1::10"),
        ("refused", "2001:db8:1:bad::10"),
        ("unknown", "2001:db8:ffff::2"),
    ];

    println!("== 1. roll out in observe mode: nothing is dropped, would-drops are counted");
    wotgate(
        s,
        &pin,
        &["attach", "--iface", &pair.server_if, "--observe"],
    );
    wotgate(s, &pin, &["prefixes", "load", file.to_str().unwrap()]);
    for (who, src) in peers {
        assert!(
            try_connect(c, who, src, server),
            "observe mode must not drop"
        );
    }
    wotgate(s, &pin, &["inspect"]);

    println!("\n== 2. enforce: only the trusted peer reaches port 25");
    wotgate(s, &pin, &["attach", "--iface", &pair.server_if]);
    let mut results = Vec::new();
    for (who, src) in peers {
        results.push(try_connect(c, who, src, server));
    }
    results.push(try_connect(c, "IPv4", "192.0.2.2", "192.0.2.1:25"));
    assert_eq!(results, [true, false, false, false], "enforce verdicts");
    for (_, src) in peers {
        wotgate(s, &pin, &["check", src]);
    }
    wotgate(s, &pin, &["inspect"]);
    let _ = std::fs::remove_file(&file);
    let _ = Command::new("true").status();
    println!("\ndemo done: namespaces, links and pins are removed on exit");
}
