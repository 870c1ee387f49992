//! Unit tests of the metrics endpoint: the Prometheus text, readiness, and
//! a gate that is not pinned.

use std::path::Path;

use super::*;

fn plan(at: u64) -> LoadedRecord {
    LoadedRecord {
        at,
        generation: 3,
        entries: 2,
        digest: "sha256:ab".into(),
        from: "refresh".into(),
    }
}

fn kernel() -> KernelView {
    KernelView {
        counters: vec![("trusted_pass", 7), ("untrusted_drop", 2)],
        entries: 2,
        digest: "sha256:ab".into(),
        generation: 3,
    }
}

fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.split_once(' ').is_some_and(|(s, _)| s == series))
        .map(|l| l.rsplit_once(' ').unwrap().1)
}

#[test]
fn encodes_the_snapshot_and_the_kernel() {
    let mut s = Snapshot::new(Duration::from_secs(3600), 1000);
    s.plan = Some(plan(1000));
    s.record_refresh(LastRefresh {
        at: 1000,
        duration: Duration::from_millis(250),
        result: "ok",
        error: None,
    });
    s.record_refresh(LastRefresh {
        at: 1100,
        duration: Duration::from_millis(500),
        result: "refused",
        error: Some("shrink".into()),
    });
    s.safety_valve_refusals = 1;
    s.config_reload_failures = 2;
    s.record_state_write_error("plan");
    s.record_state_write_error("status");
    s.record_state_write_error("status");
    s.trusted_keys = Some(4);
    s.statements_accepted = 3;
    s.statements_rejected_by_rule.insert("expired", 2);
    use crate::source::wellknown::{Domain, SourceKind};
    let rep = |outcome| SourceReport {
        domain: Domain::parse("alpha.example").unwrap(),
        kind: SourceKind::Statement,
        url: "https://alpha.example/x".into(),
        outcome,
        bytes: 0,
    };
    s.record_sources(&[rep(Outcome::Fetched)], 900);
    s.record_sources(
        &[rep(Outcome::Failed {
            error: "timeout".into(),
        })],
        1100,
    );
    let t = encode(&s, Some(&kernel()));
    let v = |series: &str| line(&t, series).unwrap_or_else(|| panic!("{series} in\n{t}"));
    assert_eq!(
        v(&format!(
            "wotgate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        "1"
    );
    assert_eq!(
        v("wotgate_gate_packets_total{reason=\"trusted_pass\"}"),
        "7"
    );
    assert_eq!(v("wotgate_plan_entries"), "2");
    assert_eq!(
        v("wotgate_plan_info{digest=\"sha256:ab\",generation=\"3\",from=\"refresh\"}"),
        "1"
    );
    assert_eq!(v("wotgate_kernel_matches_plan"), "1");
    assert_eq!(v("wotgate_trusted_keys"), "4");
    assert_eq!(v("wotgate_statements{result=\"accepted\"}"), "3");
    assert_eq!(v("wotgate_statements{result=\"rejected\"}"), "2");
    assert_eq!(v("wotgate_statements_rejected{rule=\"expired\"}"), "2");
    assert_eq!(v("wotgate_refresh_total{result=\"ok\"}"), "1");
    assert_eq!(v("wotgate_refresh_total{result=\"failed\"}"), "0");
    assert_eq!(v("wotgate_refresh_total{result=\"refused\"}"), "1");
    assert_eq!(v("wotgate_safety_valve_refusals_total"), "1");
    assert_eq!(v("wotgate_config_reload_failures_total"), "2");
    assert_eq!(v("wotgate_state_write_errors_total{file=\"plan\"}"), "1");
    assert_eq!(v("wotgate_state_write_errors_total{file=\"status\"}"), "2");
    assert_eq!(v("wotgate_state_write_errors_total{file=\"serials\"}"), "0");
    assert_eq!(v("wotgate_last_refresh_timestamp_seconds"), "1100.0");
    assert_eq!(v("wotgate_last_refresh_duration_seconds"), "0.5");
    assert_eq!(v("wotgate_config_last_reload_successful"), "1");
    assert_eq!(
        v("wotgate_config_last_reload_success_timestamp_seconds"),
        "1000.0"
    );
    let src = "{source=\"alpha.example/statement\"}";
    assert_eq!(v(&format!("wotgate_source_fetch_errors_total{src}")), "1");
    assert_eq!(
        v(&format!(
            "wotgate_source_last_success_timestamp_seconds{src}"
        )),
        "900"
    );
    assert!(t.contains("# TYPE wotgate_refresh_total counter"), "{t}");

    // A gate that vanished: zeros, never a panic.
    let t = encode(&s, None);
    assert_eq!(line(&t, "wotgate_kernel_matches_plan"), Some("0"));
    assert_eq!(line(&t, "wotgate_gate_pinned"), Some("0"));
    assert_eq!(
        line(&t, "wotgate_gate_packets_total{reason=\"trusted_pass\"}"),
        Some("0")
    );
    // A kernel set that differs from the plan.
    let other = KernelView {
        digest: "sha256:cd".into(),
        ..kernel()
    };
    assert_eq!(
        line(&encode(&s, Some(&other)), "wotgate_kernel_matches_plan"),
        Some("0")
    );
    assert!(
        !t.contains("wotgate_policy"),
        "no policy server, no policy metrics:\n{t}"
    );
    // Nothing yet: no plan info, no sources, still well formed.
    let t = encode(&Snapshot::new(Duration::from_secs(60), 0), None);
    assert_eq!(line(&t, "wotgate_plan_entries"), Some("0"));
    assert!(!t.contains("wotgate_plan_info{"), "{t}");
}

#[test]
fn encodes_the_policy_counters() {
    let mut s = Snapshot::new(Duration::from_secs(3600), 0);
    s.policy = Some(PolicyCounts {
        requests: [5, 3, 1],
        verdicts: [4, 3, 1, 1],
        failures: [1, 2, 0, 0, 0],
        connections: 2,
        refused: 7,
    });
    let t = encode(&s, None);
    let v = |series: &str| line(&t, series).unwrap_or_else(|| panic!("{series} in\n{t}"));
    assert_eq!(v("wotgate_policy_requests_total{stage=\"rcpt\"}"), "5");
    assert_eq!(v("wotgate_policy_requests_total{stage=\"data\"}"), "3");
    assert_eq!(v("wotgate_policy_requests_total{stage=\"other\"}"), "1");
    assert_eq!(v("wotgate_policy_verdicts_total{result=\"pass\"}"), "4");
    assert_eq!(v("wotgate_policy_verdicts_total{result=\"fail\"}"), "3");
    assert_eq!(v("wotgate_policy_verdicts_total{result=\"defer\"}"), "1");
    assert_eq!(v("wotgate_policy_verdicts_total{result=\"dunno\"}"), "1");
    assert_eq!(v("wotgate_policy_failures_total{check=\"prefix\"}"), "1");
    assert_eq!(v("wotgate_policy_failures_total{check=\"sender\"}"), "2");
    assert_eq!(v("wotgate_policy_failures_total{check=\"helo\"}"), "0");
    assert_eq!(v("wotgate_policy_failures_total{check=\"tls-key\"}"), "0");
    assert_eq!(v("wotgate_policy_failures_total{check=\"tls-aead\"}"), "0");
    assert_eq!(v("wotgate_policy_connections"), "2");
    assert_eq!(v("wotgate_policy_connections_refused_total"), "7");
    for (name, kind) in [
        ("wotgate_policy_requests_total", "counter"),
        ("wotgate_policy_verdicts_total", "counter"),
        ("wotgate_policy_failures_total", "counter"),
        ("wotgate_policy_connections", "gauge"),
        ("wotgate_policy_connections_refused_total", "counter"),
    ] {
        assert!(
            t.contains(&format!("# TYPE {name} {kind}")),
            "{name} in\n{t}"
        );
        assert!(t.contains(&format!("# HELP {name} ")), "{name} in\n{t}");
    }

    // The live counters reach the scrape through Metrics.
    let m = Metrics::new(
        PathBuf::from("/nonexistent"),
        Snapshot::new(Duration::ZERO, 0),
    );
    assert_eq!(m.snapshot().policy, None);
    let c = Arc::new(policy::counters::Counters::default());
    m.set_policy(c.clone());
    c.refuse();
    assert_eq!(m.snapshot().policy.map(|p| p.refused), Some(1));
}

#[test]
fn readiness_needs_a_recent_plan_the_kernel_enforces() {
    let mut s = Snapshot::new(Duration::from_secs(3600), 0);
    let k = kernel();
    assert_eq!(
        readiness(&s, Ok(&k), 1000).unwrap_err(),
        "no plan is enforced yet"
    );
    s.plan = Some(plan(1000));
    assert!(readiness(&s, Ok(&k), 1000 + 3600).is_ok());
    s.observing = true;
    assert!(readiness(&s, Ok(&k), 1000)
        .unwrap_err()
        .contains("observes"));
    s.observing = false;
    s.last_refresh = Some(LastRefresh {
        at: 4000,
        duration: Duration::ZERO,
        result: "failed",
        error: Some("keyring.pgp: garbage".into()),
    });
    let e = readiness(&s, Ok(&k), 1000 + 3601).unwrap_err();
    assert_eq!(
        e,
        "the enforced plan is 3601 s old, older than daemon.max_plan_age (3600 s); last refresh: failed: keyring.pgp: garbage"
    );
    let other = KernelView {
        entries: 1,
        ..kernel()
    };
    assert!(readiness(&s, Ok(&other), 1000)
        .unwrap_err()
        .contains("differs from the plan"));
    assert!(readiness(&s, Err("not pinned"), 1000)
        .unwrap_err()
        .contains("cannot be read: not pinned"));
}

#[test]
fn a_missing_gate_reads_as_an_error() {
    assert!(read_kernel(Path::new("/nonexistent/wotgate-pins")).is_err());
}
