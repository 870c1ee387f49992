//! The daemon's metrics endpoint, scraped from inside the daemon's
//! namespace while the real daemon (`wotgate run`) keeps a real gate: the
//! values it reports are compared with what `inspect` reads from the pins,
//! a trusted connection moves the gate's counter, and a plan the load guard
//! refuses moves the refusal counters.

use std::{path::PathBuf, time::Duration};

use integration_tests::{
    daemon::{get, value, wait_scrape, wotgate, Cleanup, DaemonProc, METRICS},
    netns::{connect, Listener, Pair},
    require_kernel, unique,
    world::World,
    wotgate_bin,
};
use serde_json::Value;

const SERVER: &str = "[2001:db8:ffff::1]:25";

#[test]
fn the_metrics_endpoint_reports_what_the_kernel_enforces() {
    require_kernel();
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-metrics-{}", unique("w"))),
        &bin,
    );
    let party = |n: &str| world.parties.iter().find(|p| p.name == n).unwrap();
    let alpha = party("alpha").client;
    let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
    let pair = Pair::new("met", &clients);
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("met")));
    let _cleanup = Cleanup {
        pin: pin.clone(),
        dir: None,
    };
    let _smtp = Listener::start(&pair.server.name, 25);
    let config = world.dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n[daemon]\nrefresh_interval = \"1h\"\nmax_plan_age = \"2h\"\n[metrics]\nlisten = \"{METRICS}\"\n",
            std::fs::read_to_string(&world.config).unwrap(),
            pair.server_if,
            pin.display()
        ),
    )
    .unwrap();
    let log = world.dir.join("daemon.log");
    let ns = &pair.server;
    let nsn = ns.name.as_str();

    let d = DaemonProc::start(ns, &config, &log);
    let text = wait_scrape(nsn, &log, "the first plan", |t| {
        value(t, "wotgate_refresh_total{result=\"ok\"}").unwrap_or(0.0) >= 1.0
    });
    let inspect: Value = serde_json::from_slice(
        &wotgate(
            ns,
            &["--pin-dir", pin.to_str().unwrap(), "inspect", "--json"],
        )
        .stdout,
    )
    .expect("inspect --json");
    let entries = inspect["entries"].as_array().expect("entries").len();
    assert!(entries > 0, "{inspect:#}");
    assert_eq!(
        value(&text, "wotgate_plan_entries"),
        Some(entries as f64),
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_kernel_entries"), Some(entries as f64));
    assert_eq!(
        value(&text, "wotgate_kernel_matches_plan"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_gate_pinned"), Some(1.0));
    assert!(
        value(&text, "wotgate_trusted_keys").unwrap() >= 2.0,
        "{text}"
    );
    assert!(value(&text, "wotgate_statements{result=\"accepted\"}").unwrap() >= 1.0);
    assert_eq!(
        value(&text, "wotgate_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(value(&text, "wotgate_last_refresh_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(
        value(&text, "wotgate_safety_valve_refusals_total"),
        Some(0.0)
    );
    let status: Value = serde_json::from_slice(
        &wotgate(
            ns,
            &["status", "--config", config.to_str().unwrap(), "--json"],
        )
        .stdout,
    )
    .expect("status --json");
    let digest = status["plan"]["digest"].as_str().expect("plan digest");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("wotgate_plan_info{{digest=\"{digest}\""))),
        "{text}"
    );
    assert!(text.contains("wotgate_build_info{version=\""), "{text}");

    let (code, body) = get(nsn, "/ready").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(nsn, "/healthz").unwrap().0, 200);
    assert_eq!(get(nsn, "/nothing").unwrap().0, 404);

    // A trusted connection moves the gate's counter, read at scrape time.
    let passed = |t: &str| value(t, "wotgate_gate_packets_total{reason=\"trusted_pass\"}").unwrap();
    let before = passed(&text);
    assert!(
        connect(
            &pair.client.name,
            alpha.parse().unwrap(),
            SERVER.parse().unwrap(),
            Duration::from_millis(1000),
        )
        .is_ok(),
        "alpha is trusted"
    );
    let text = wait_scrape(nsn, &log, "the trusted SYN counted", |t| passed(t) > before);
    assert!(passed(&text) >= before + 1.0);

    // Every statement withdrawn: the new plan would drop every trusted
    // entry, so the load guard refuses it and the current set stays.
    let held = world.dir.join("statements.held");
    std::fs::rename(world.dir.join("statements"), &held).unwrap();
    std::fs::create_dir(world.dir.join("statements")).unwrap();
    d.signal(libc::SIGHUP);
    let text = wait_scrape(nsn, &log, "the refused refresh", |t| {
        value(t, "wotgate_refresh_total{result=\"refused\"}").unwrap_or(0.0) >= 1.0
    });
    assert_eq!(
        value(&text, "wotgate_safety_valve_refusals_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "wotgate_refresh_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(value(&text, "wotgate_last_refresh_successful"), Some(0.0));
    assert_eq!(value(&text, "wotgate_plan_entries"), Some(entries as f64));
    assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
    assert_eq!(
        value(&text, "wotgate_config_last_reload_successful"),
        Some(1.0)
    );
    // The refused plan leaves the enforced one in place, young enough: ready.
    let (code, body) = get(nsn, "/ready").unwrap();
    assert_eq!(code, 200, "{body}");

    // A configuration error at reload: counted, the running one stays.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\nunknown_key = 1\n")).unwrap();
    d.signal(libc::SIGHUP);
    let text = wait_scrape(nsn, &log, "the failed reload", |t| {
        value(t, "wotgate_config_last_reload_successful") == Some(0.0)
    });
    assert!(
        value(
            &text,
            "wotgate_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );
    std::fs::write(&config, good).unwrap();

    // The gate vanishes under the running daemon (pins removed, detached):
    // scrapes still answer, with zeros, and readiness fails with the reason.
    wotgate::gate::purge(&pin).unwrap();
    let text = wait_scrape(nsn, &log, "the vanished gate", |t| {
        value(t, "wotgate_gate_pinned") == Some(0.0)
    });
    assert_eq!(
        value(&text, "wotgate_kernel_matches_plan"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_kernel_entries"), Some(0.0));
    assert_eq!(
        value(&text, "wotgate_gate_packets_total{reason=\"trusted_pass\"}"),
        Some(0.0)
    );
    let (code, body) = get(nsn, "/ready").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the pinned gate cannot be read"), "{body}");
    assert_eq!(get(nsn, "/healthz").unwrap().0, 200);
}
