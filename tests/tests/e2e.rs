//! The main job end to end: a web of trust and signed statements made with
//! real OpenPGP, `wotgate plan --load` into a gate on a veth, real TCP.

use std::{net::SocketAddr, time::Duration};

use integration_tests::{
    netns::{connect, Listener, Pair},
    unique,
    world::World,
    wotgate_bin, PinnedGate,
};

#[test]
fn statements_from_the_web_of_trust_decide_who_reaches_port_25() {
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-e2e-{}", unique("w"))),
        &bin,
    );
    let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
    let pair = Pair::new("e2e", &clients);
    let mut pg = PinnedGate::new("e2e");
    pg.release();
    let pin = pg.path().to_str().unwrap().to_string();
    let b = bin.to_str().unwrap();
    let _smtp = Listener::start(&pair.server.name, 25);

    // The plan into the pinned gate first: attach refuses to enforce with
    // an empty set.
    let out = pair.server.exec(&[
        b,
        "--pin-dir",
        &pin,
        "plan",
        "--config",
        world.config.to_str().unwrap(),
        "--load",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("allow 2001:db8:a::/48"), "{plan}");
    assert!(plan.contains("deny 2001:db8:a:bad::/64"), "{plan}");
    assert!(
        world.dir.join("state").exists(),
        "serials recorded after the load"
    );
    pair.server
        .exec(&[b, "--pin-dir", &pin, "attach", "--iface", &pair.server_if]);

    let inspect: serde_json::Value = serde_json::from_slice(
        &pair
            .server
            .exec(&[b, "--pin-dir", &pin, "inspect", "--json"])
            .stdout,
    )
    .unwrap();
    let mut loaded: Vec<(String, String)> = inspect["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["verdict"].as_str().unwrap().to_string(),
                e["prefix"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            ("allow".to_string(), "2001:db8:a::/48".to_string()),
            ("allow".into(), "2001:db8:b::/48".into()),
            ("deny".into(), "2001:db8:a:bad::/64".into()),
        ]
    );

    for p in &world.parties {
        let got = connect(
            &pair.client.name,
            p.client.parse().unwrap(),
            "[2001:db8:ffff::1]:25".parse::<SocketAddr>().unwrap(),
            Duration::from_millis(1500),
        )
        .is_ok();
        assert_eq!(
            got, p.admitted,
            "{} ({}) from {}",
            p.name, p.domain, p.client
        );
    }
    let v4 = connect(
        &pair.client.name,
        "192.0.2.2".parse().unwrap(),
        "192.0.2.1:25".parse().unwrap(),
        Duration::from_millis(1500),
    );
    assert!(v4.is_err(), "IPv4 must not reach port 25");

    // The participant-side check agrees: gamma is too far from the root.
    let gamma = world.dir.join("statements/gamma.asc");
    let out = std::process::Command::new(&bin)
        .args([
            "statement",
            "verify",
            gamma.to_str().unwrap(),
            "--config",
            world.config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("untrusted-signer"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
