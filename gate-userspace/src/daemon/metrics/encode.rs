//! The Prometheus text (format 0.0.4) of a [`Snapshot`] and the kernel's
//! view, as `/metrics` serves it.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::policy;

use super::{kernel_matches_plan, KernelView, Snapshot, RESULTS, STATE_FILES};

type Labels = Vec<(&'static str, String)>;

fn labels(k: &'static str, v: impl Into<String>) -> Labels {
    vec![(k, v.into())]
}

/// The Prometheus text for `s` and the kernel view (`None`: no gate).
pub fn encode(s: &Snapshot, k: Option<&KernelView>) -> String {
    let mut reg = Registry::default();
    let family = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Gauge>::default();
        reg.register(name, help, f.clone());
        f
    };
    let counter_family = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        reg.register(name, help, f.clone());
        f
    };
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        reg.register(name, help, g);
    };
    let gauge_f = |reg: &mut Registry, name: &str, help: &str, v: f64| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        reg.register(name, help, g);
    };
    let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    };

    family(
        &mut reg,
        "wotgate_build_info",
        "The running wotgate's version",
    )
    .get_or_create(&labels("version", env!("CARGO_PKG_VERSION")))
    .set(1);

    let packets = counter_family(
        &mut reg,
        "wotgate_gate_packets",
        "Packets by the gate's reason, read from its maps (0 when no gate is pinned)",
    );
    match k {
        Some(k) => {
            for (r, v) in &k.counters {
                packets.get_or_create(&labels("reason", *r)).inc_by(*v);
            }
        }
        None => {
            for r in gate_common::Reason::ALL {
                let _ = packets.get_or_create(&labels("reason", r.name()));
            }
        }
    }
    gauge(
        &mut reg,
        "wotgate_gate_pinned",
        "1 when the pinned gate's maps could be read",
        k.is_some() as i64,
    );
    gauge(
        &mut reg,
        "wotgate_kernel_entries",
        "Entries in the set the kernel enforces now",
        k.map_or(0, |k| k.entries as i64),
    );
    gauge(
        &mut reg,
        "wotgate_kernel_generation",
        "Generation of the set the kernel enforces now",
        k.map_or(0, |k| k.generation as i64),
    );
    gauge(
        &mut reg,
        "wotgate_plan_entries",
        "Entries in the plan the daemon loaded",
        s.plan.as_ref().map_or(0, |p| p.entries as i64),
    );
    let info = family(
        &mut reg,
        "wotgate_plan_info",
        "The loaded plan's digest (SHA-256 over the kernel set) and generation",
    );
    if let Some(p) = &s.plan {
        info.get_or_create(&vec![
            ("digest", p.digest.clone()),
            ("generation", p.generation.to_string()),
            ("from", p.from.clone()),
        ])
        .set(1);
    }
    gauge_f(
        &mut reg,
        "wotgate_plan_loaded_timestamp_seconds",
        "When the loaded plan was built and loaded",
        s.plan.as_ref().map_or(0.0, |p| p.at as f64),
    );
    gauge(
        &mut reg,
        "wotgate_kernel_matches_plan",
        "1 when the entries and digest read back from the maps equal the loaded plan",
        kernel_matches_plan(s, k) as i64,
    );
    gauge(
        &mut reg,
        "wotgate_observing_until_first_plan",
        "1 while the gate observes until the first plan that trusts somebody",
        s.observing as i64,
    );
    gauge(
        &mut reg,
        "wotgate_trusted_keys",
        "Keys the trust engine trusted in the last refresh that got that far (roots included)",
        s.trusted_keys.map_or(0, |n| n as i64),
    );
    let statements = family(
        &mut reg,
        "wotgate_statements",
        "Statements judged in the last refresh that got that far, by result",
    );
    let rejected: usize = s.statements_rejected_by_rule.values().sum();
    statements
        .get_or_create(&labels("result", "accepted"))
        .set(s.statements_accepted as i64);
    statements
        .get_or_create(&labels("result", "rejected"))
        .set(rejected as i64);
    let by_rule = family(
        &mut reg,
        "wotgate_statements_rejected",
        "Statements rejected in the last refresh that got that far, by rule",
    );
    for (rule, n) in &s.statements_rejected_by_rule {
        by_rule.get_or_create(&labels("rule", *rule)).set(*n as i64);
    }
    let refreshes = counter_family(
        &mut reg,
        "wotgate_refresh",
        "Refreshes since the daemon started, by result (refused: by the load guard)",
    );
    for (r, n) in RESULTS.iter().zip(s.refreshes) {
        refreshes.get_or_create(&labels("result", *r)).inc_by(n);
    }
    counter(
        &mut reg,
        "wotgate_refresh_unchanged",
        "Refreshes counted as ok whose plan the kernel enforced already (nothing swapped)",
        s.refreshes_unchanged,
    );
    let last = s.last_refresh.as_ref();
    gauge_f(
        &mut reg,
        "wotgate_last_refresh_timestamp_seconds",
        "When the last refresh started",
        last.map_or(0.0, |r| r.at as f64),
    );
    gauge_f(
        &mut reg,
        "wotgate_last_refresh_duration_seconds",
        "How long the last refresh took",
        last.map_or(0.0, |r| r.duration.as_secs_f64()),
    );
    gauge(
        &mut reg,
        "wotgate_last_refresh_successful",
        "1 when the last refresh loaded its plan",
        last.is_some_and(|r| r.result == "ok") as i64,
    );
    gauge(
        &mut reg,
        "wotgate_config_last_reload_successful",
        "1 when the configuration was read without error at the last reload",
        s.config_last_reload_successful as i64,
    );
    gauge_f(
        &mut reg,
        "wotgate_config_last_reload_success_timestamp_seconds",
        "When the configuration was last read without error",
        s.config_last_reload_success_at as f64,
    );
    counter(
        &mut reg,
        "wotgate_config_reload_failures",
        "Reloads (SIGHUP) whose configuration had an error; the running configuration stayed",
        s.config_reload_failures,
    );
    let state_errors = counter_family(
        &mut reg,
        "wotgate_state_write_errors",
        "Failed writes to the state directory by file (plan, status, serials); the gate keeps enforcing, the state on disk lags",
    );
    for (f, n) in STATE_FILES.iter().zip(s.state_write_errors) {
        state_errors.get_or_create(&labels("file", *f)).inc_by(n);
    }
    counter(
        &mut reg,
        "wotgate_safety_valve_refusals",
        "Plans the safety valve refused because they would remove too many entries",
        s.safety_valve_refusals,
    );
    gauge_f(
        &mut reg,
        "wotgate_max_plan_age_seconds",
        "daemon.max_plan_age: /ready fails when the plan is older",
        s.max_plan_age.as_secs_f64(),
    );
    let errors = counter_family(
        &mut reg,
        "wotgate_source_fetch_errors",
        "Failed fetches of a participant's source (DOMAIN/KIND) since the daemon started",
    );
    let success = family(
        &mut reg,
        "wotgate_source_last_success_timestamp_seconds",
        "When a participant's source (DOMAIN/KIND) was last fetched (or found not published)",
    );
    for (name, st) in &s.sources {
        errors
            .get_or_create(&labels("source", name.clone()))
            .inc_by(st.errors);
        if let Some(t) = st.last_success {
            success
                .get_or_create(&labels("source", name.clone()))
                .set(t as i64);
        }
    }
    if let Some(p) = &s.policy {
        let requests = counter_family(
            &mut reg,
            "wotgate_policy_requests",
            "Policy requests answered, by SMTP stage (rcpt, data: DATA or BDAT, other)",
        );
        for (stage, n) in policy::counters::STAGES.iter().zip(p.requests) {
            requests.get_or_create(&labels("stage", *stage)).inc_by(n);
        }
        let verdicts = counter_family(
            &mut reg,
            "wotgate_policy_verdicts",
            "Policy verdicts: pass, fail (rejected, or labelled in observe mode), defer (no usable trust state, or a malformed or unsupported request), dunno (no verdict of its own: END-OF-MESSAGE, or a DATA label repeating the recipients' verdicts)",
        );
        for (result, n) in policy::counters::RESULTS.iter().zip(p.verdicts) {
            verdicts.get_or_create(&labels("result", *result)).inc_by(n);
        }
        let failures = counter_family(
            &mut reg,
            "wotgate_policy_failures",
            "Failed policy verdicts by the check that failed",
        );
        for (check, n) in policy::counters::CHECKS.iter().zip(p.failures) {
            failures.get_or_create(&labels("check", *check)).inc_by(n);
        }
        gauge(
            &mut reg,
            "wotgate_policy_connections",
            "Connections to the policy server open now",
            p.connections as i64,
        );
        counter(
            &mut reg,
            "wotgate_policy_connections_refused",
            "Connections to the policy server closed at once because policy.max_connections were open",
            p.refused,
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &reg);
    out
}
