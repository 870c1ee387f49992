//! `cargo xtask demo`: the main job on an embedded default world (keys,
//! certifications and statements made at run time), in namespaces it creates
//! and removes: web of trust -> statements -> plan -> gate, observe then enforce.

use std::{net::SocketAddr, path::Path, time::Duration};

use integration_tests::{
    netns::{connect, Listener, NetNs, Pair},
    unique,
    world::World,
    wotgate_bin, wotgate_cmd, PinnedGate,
};

fn wotgate(ns: Option<&NetNs>, pin: &Path, args: &[&str]) -> (bool, String) {
    println!("\n$ wotgate {}", args.join(" "));
    let out = wotgate_cmd(ns, pin, args).output().expect("run wotgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{text}");
    (out.status.success(), text)
}

fn must(ns: Option<&NetNs>, pin: &Path, args: &[&str]) -> String {
    let (ok, text) = wotgate(ns, pin, args);
    assert!(ok, "wotgate {args:?} failed");
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
        "  connect {who:16} from {src:22} to {dst:22} -> {}",
        if ok {
            "connected"
        } else {
            "no answer (SYN dropped)"
        }
    );
    ok
}

fn main() {
    let bin = wotgate_bin();
    let dir = std::env::temp_dir().join(format!("wotgate-demo-{}", unique("w")));
    println!(
        "== 0. the embedded default world (keys and statements made now, in {})",
        dir.display()
    );
    let world = World::create(&dir, &bin);
    println!(
        "{}",
        include_str!("../src/world.rs")
            .lines()
            .skip(3)
            .take(9)
            .map(|l| l.trim_start_matches("//! "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
    let pair = Pair::new("demo", &clients);
    let mut pg = PinnedGate::new("demo");
    pg.release();
    let pin = pg.path().to_path_buf();
    let _smtp = Listener::start(&pair.server.name, 25);
    let (s, c) = (&pair.server, pair.client.name.as_str());
    let server = "[2001:db8:ffff::1]:25";
    let config = world.config.to_str().unwrap();
    let mallory = world
        .parties
        .iter()
        .find(|p| p.name == "mallory")
        .unwrap()
        .tsk
        .fingerprint()
        .to_hex();

    println!("\n== 1. the web of trust as our MX sees it (depth 2, mallory refused)");
    must(
        None,
        &pin,
        &[
            "trust",
            "list",
            "--keyring",
            world.keyring().to_str().unwrap(),
            "--root",
            &world.root(),
            "--refuse",
            &mallory,
        ],
    );
    let statements: Vec<String> = world
        .parties
        .iter()
        .map(|p| {
            world
                .dir
                .join(format!("statements/{}.asc", p.name))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["statement", "verify"];
    args.extend(statements.iter().map(String::as_str));
    args.extend(["--config", config]);
    let _ = wotgate(None, &pin, &args); // exits 2: some statements are rejected

    println!("\n== 2. roll out in observe mode: plan loaded, nothing dropped, would-drops counted");
    must(
        Some(s),
        &pin,
        &["attach", "--iface", &pair.server_if, "--observe"],
    );
    must(Some(s), &pin, &["plan", "--config", config, "--load"]);
    for p in &world.parties {
        assert!(
            try_connect(c, p.domain, p.client, server),
            "observe mode must not drop"
        );
    }
    must(Some(s), &pin, &["inspect"]);

    println!("\n== 3. enforce: only peers the web of trust vouches for reach port 25");
    must(
        Some(s),
        &pin,
        &["attach", "--iface", &pair.server_if, "--enforce"],
    );
    for p in &world.parties {
        assert_eq!(
            try_connect(c, p.domain, p.client, server),
            p.admitted,
            "{}",
            p.domain
        );
    }
    assert!(!try_connect(c, "unknown", "2001:db8:ffff::2", server));
    assert!(!try_connect(c, "IPv4", "192.0.2.2", "192.0.2.1:25"));
    for p in &world.parties {
        must(Some(s), &pin, &["check", p.client]);
    }
    must(Some(s), &pin, &["inspect"]);
    println!("\ndemo done: namespaces, links, pins and the world's files are removed on exit");
}
