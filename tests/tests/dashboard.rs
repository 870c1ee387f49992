//! The Grafana dashboard (packaging/grafana/wotgate.json) queries only what
//! the daemon exports: every metric name in its PromQL, every label it
//! selects or groups by, and every label value it names, exist in the
//! daemon's /metrics text as rendered by `daemon::metrics::encode` with
//! every family present (a plan, a refresh, a source, the policy server, a gate).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use wotgate::daemon::metrics::{self, KernelView, LastRefresh, Snapshot, SourceStats};
use wotgate::daemon::state::LoadedRecord;
use wotgate::policy::counters::PolicyCounts;

/// Labels Prometheus adds to every scraped series (not the daemon's).
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// The daemon's output with every family it can export.
fn exported() -> String {
    let mut s = Snapshot::new(Duration::from_secs(3600), 1000);
    s.plan = Some(LoadedRecord {
        at: 1000,
        generation: 1,
        entries: 2,
        digest: "sha256:00".into(),
        from: "refresh".into(),
    });
    s.record_refresh(LastRefresh {
        at: 1000,
        duration: Duration::from_millis(10),
        result: "ok",
        error: None,
    });
    s.trusted_keys = Some(3);
    s.statements_rejected_by_rule.insert("expired", 1);
    s.sources.insert(
        "alpha.example/statement".into(),
        SourceStats {
            errors: 1,
            last_success: Some(900),
        },
    );
    s.policy = Some(PolicyCounts::default());
    let kernel = KernelView {
        counters: gate_common::Reason::ALL
            .iter()
            .map(|r| (r.name(), 1))
            .collect(),
        entries: 2,
        digest: "sha256:00".into(),
        generation: 1,
    };
    metrics::encode(&s, Some(&kernel))
}

/// Series name -> label name -> values seen.
type Series = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn parse_exposition(text: &str) -> Series {
    let mut out = Series::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').expect("name value").0;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let entry = out.entry(name.to_string()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("label=value");
            entry
                .entry(k.to_string())
                .or_default()
                .insert(v.trim_matches('"').to_string());
        }
    }
    out
}

/// Every PromQL expression in the dashboard (panel targets and variables).
fn queries(dash: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if let ("expr" | "definition", serde_json::Value::String(s)) = (k.as_str(), v) {
                        out.push(s.clone());
                    }
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dash, &mut out);
    out
}

fn ident_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len())
}

/// One metric reference in an expression: its name and label matchers
/// (label, operator, value).
struct Reference {
    name: String,
    matchers: Vec<(String, String, String)>,
}

fn references(expr: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("wotgate_") {
        let s = &rest[i..];
        let end = ident_end(s);
        let name = s[..end].to_string();
        let mut matchers = Vec::new();
        let after = &s[end..];
        if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').expect("closing brace");
            for m in body[..close].split(", ").map(str::trim) {
                let k = &m[..ident_end(m)];
                let rest = &m[k.len()..];
                let op_len = rest.find('"').expect("quoted value");
                let (op, v) = rest.split_at(op_len);
                matchers.push((
                    k.to_string(),
                    op.to_string(),
                    v.trim_matches('"').to_string(),
                ));
            }
        }
        out.push(Reference { name, matchers });
        rest = &s[end..];
    }
    out
}

/// Label names in `by (...)` clauses.
fn grouped_labels(expr: &str) -> Vec<String> {
    expr.match_indices("by (")
        .flat_map(|(i, _)| {
            let body = &expr[i + 4..];
            body[..body.find(')').unwrap()]
                .split(',')
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/grafana/wotgate.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let series = parse_exposition(&exported());
    let exprs = queries(&dash);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for expr in &exprs {
        let refs = references(expr);
        if refs.is_empty() {
            problems.push(format!("{expr}: queries no wotgate metric"));
        }
        let mut labels_here = BTreeSet::new();
        for r in refs {
            let Some(labels) = series.get(&r.name) else {
                problems.push(format!("{expr}: {} is not exported", r.name));
                continue;
            };
            used.insert(r.name.clone());
            labels_here.extend(labels.keys().cloned());
            for (k, op, v) in &r.matchers {
                if TARGET_LABELS.contains(&k.as_str()) {
                    continue;
                }
                let Some(values) = labels.get(k) else {
                    problems.push(format!("{expr}: {} has no label {k}", r.name));
                    continue;
                };
                // A regex of plain alternatives: each must be a value the
                // daemon exports (a typo would match nothing, silently).
                let alternatives: Vec<&str> = match op.as_str() {
                    "=" | "!=" => vec![v.as_str()],
                    "=~" | "!~"
                        if v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_|-".contains(c)) =>
                    {
                        v.split('|').collect()
                    }
                    _ => vec![],
                };
                for a in alternatives {
                    if !values.contains(a) {
                        problems.push(format!(
                            "{expr}: {}{{{k}}} never takes the value {a:?} (exported: {values:?})",
                            r.name
                        ));
                    }
                }
            }
        }
        for l in grouped_labels(expr) {
            if !TARGET_LABELS.contains(&l.as_str()) && !labels_here.contains(&l) {
                problems.push(format!(
                    "{expr}: groups by {l}, which none of its metrics has"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What the issue asks the dashboard to show.
    for needed in [
        "wotgate_gate_packets_total",
        "wotgate_kernel_entries",
        "wotgate_trusted_keys",
        "wotgate_refresh_total",
        "wotgate_plan_loaded_timestamp_seconds",
        "wotgate_source_fetch_errors_total",
        "wotgate_policy_verdicts_total",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn the_parser_catches_a_misspelt_metric_and_reason() {
    // The check above can fail: a wrong name, label and value are found.
    let series = parse_exposition(&exported());
    let r = references(
        r#"sum by (reason) (rate(wotgate_gate_packet_total{reason="untrusted_drop"}[5m]))"#,
    );
    assert!(!series.contains_key(&r[0].name));
    let r = references(
        r#"rate(wotgate_gate_packets_total{reason=~"untrusted_drop|untrusted_drops"}[5m])"#,
    );
    let values = &series[&r[0].name]["reason"];
    assert!(values.contains("untrusted_drop") && !values.contains("untrusted_drops"));
    assert_eq!(
        grouped_labels("sum by (source, kind) (x)"),
        ["source", "kind"]
    );
}
