//! The daemon's HTTP endpoint on `[metrics] listen` (loopback by default):
//! `/metrics` (Prometheus text format 0.0.4), `/ready` (200 while a plan is
//! enforced and younger than `[daemon] max_plan_age`, else 503 and the
//! reason) and `/healthz` (200 while the process runs).
//!
//! The daemon records what it knows after each refresh and configuration
//! reload in a [`Metrics`] (a mutex held only to copy a few numbers). The
//! kernel's side — per-reason packet counters, the active set's size and
//! digest — is read from the pinned maps at scrape time, on a blocking
//! thread, without the gate's writer lock: a scrape never waits for a
//! refresh, and a refresh never waits for a scrape. A gate that vanished
//! reads as zeros and `wotgate_kernel_matches_plan 0`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{debug, error, info};

use crate::gate::Gate;
use crate::model::time::to_timestamp;
use crate::policy::{self, counters::PolicyCounts};
use crate::source::crawl::{Outcome, SourceReport};

use super::digest::digest;
use super::state::LoadedRecord;

/// The refresh outcomes, as `wotgate_refresh_total{result}` names them.
pub const RESULTS: [&str; 3] = ["ok", "failed", "refused"];

/// The state directory's files, as `wotgate_state_write_errors_total{file}`
/// names them: the last good plan, the status file, the accepted serials.
pub const STATE_FILES: [&str; 3] = ["plan", "status", "serials"];

/// What one fetched source has done since the daemon started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceStats {
    pub errors: u64,
    /// Unix time of the last refresh that fetched it (or learnt that it is
    /// not published).
    pub last_success: Option<u64>,
}

/// The last refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct LastRefresh {
    pub at: u64,
    pub duration: Duration,
    /// One of [`RESULTS`].
    pub result: &'static str,
    pub error: Option<String>,
}

/// What the daemon knows, as of its last refresh and reload.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The plan the daemon believes the kernel enforces.
    pub plan: Option<LoadedRecord>,
    /// Still observing until the first plan that trusts somebody.
    pub observing: bool,
    /// Refreshes since start, per [`RESULTS`] entry.
    pub refreshes: [u64; 3],
    pub last_refresh: Option<LastRefresh>,
    pub safety_valve_refusals: u64,
    /// Refreshes counted `ok` whose plan the kernel enforced already.
    pub refreshes_unchanged: u64,
    /// From the last refresh that judged statements.
    pub trusted_keys: Option<usize>,
    pub statements_accepted: usize,
    pub statements_rejected_by_rule: BTreeMap<&'static str, usize>,
    pub sources: BTreeMap<String, SourceStats>,
    pub config_last_reload_successful: bool,
    pub config_last_reload_success_at: u64,
    /// Reloads whose configuration had an error, since start.
    pub config_reload_failures: u64,
    /// Failed writes to the state directory since start, per [`STATE_FILES`] entry.
    pub state_write_errors: [u64; 3],
    pub max_plan_age: Duration,
    /// The policy server's counters, read at scrape time (`None`: it does
    /// not run, and its metrics are left out).
    pub policy: Option<PolicyCounts>,
}

impl Snapshot {
    pub fn new(max_plan_age: Duration, config_loaded_at: u64) -> Snapshot {
        Snapshot {
            plan: None,
            observing: false,
            refreshes: [0; 3],
            last_refresh: None,
            safety_valve_refusals: 0,
            refreshes_unchanged: 0,
            trusted_keys: None,
            statements_accepted: 0,
            statements_rejected_by_rule: BTreeMap::new(),
            sources: BTreeMap::new(),
            config_last_reload_successful: true,
            config_last_reload_success_at: config_loaded_at,
            config_reload_failures: 0,
            state_write_errors: [0; 3],
            max_plan_age,
            policy: None,
        }
    }

    /// Counts a failed write of `file`, one of [`STATE_FILES`].
    pub fn record_state_write_error(&mut self, file: &str) {
        if let Some(i) = STATE_FILES.iter().position(|x| *x == file) {
            self.state_write_errors[i] += 1;
        }
    }

    /// Counts a refresh; `result` is one of [`RESULTS`].
    pub fn record_refresh(&mut self, r: LastRefresh) {
        if let Some(i) = RESULTS.iter().position(|x| *x == r.result) {
            self.refreshes[i] += 1;
        }
        self.last_refresh = Some(r);
    }

    /// The crawl's per-source outcomes of a refresh at `at`.
    pub fn record_sources(&mut self, reports: &[SourceReport], at: u64) {
        for r in reports {
            let s = self
                .sources
                .entry(format!("{}/{}", r.domain, r.kind))
                .or_default();
            match r.outcome {
                Outcome::Fetched | Outcome::Absent => s.last_success = Some(at),
                Outcome::Stale { .. } | Outcome::Failed { .. } => s.errors += 1,
                Outcome::Skipped => {}
            }
        }
    }
}

/// What the pinned maps say now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelView {
    pub counters: Vec<(&'static str, u64)>,
    pub entries: usize,
    pub digest: String,
    pub generation: u64,
}

/// Reads the pinned gate without its writer lock. The active trie is read
/// between two reads of the selector and the generations; if a swap ran
/// meanwhile the read is tried again (a swap only writes the inactive trie,
/// but the next one clears the trie that was active before).
pub fn read_kernel(pin_dir: &Path) -> Result<KernelView, String> {
    let gate = Gate::open(pin_dir).map_err(|e| e.to_string())?;
    // The trie of the set the gate stands by: the active one, or while an
    // update is enforced ahead of its trie the other, which holds the
    // previous set intact (`Gate::set_trie`).
    let stamp = |g: &Gate| -> Result<(usize, [u64; 2]), String> {
        let (t, _, meta) = g.set_trie().map_err(|e| e.to_string())?;
        Ok((t, meta.generation))
    };
    let counters = gate
        .counters()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(r, v)| (r.name(), v))
        .collect();
    let mut last = String::new();
    for _ in 0..5 {
        let before = stamp(&gate)?;
        let set = gate.read_set(before.0);
        let after = stamp(&gate)?;
        if before != after {
            last = "the set changed while it was read".into();
            continue;
        }
        let set = set.map_err(|e| e.to_string())?;
        return Ok(KernelView {
            counters,
            entries: set.len(),
            digest: digest(&set),
            generation: before.1[before.0],
        });
    }
    Err(last)
}

/// Whether the kernel enforces exactly the plan (entries and digest).
pub fn kernel_matches_plan(s: &Snapshot, k: Option<&KernelView>) -> bool {
    match (&s.plan, k) {
        (Some(p), Some(k)) => p.entries == k.entries && p.digest == k.digest,
        _ => false,
    }
}

/// `Ok(text)` when ready, `Err(reason)` when not.
pub fn readiness(s: &Snapshot, k: Result<&KernelView, &str>, now: u64) -> Result<String, String> {
    let Some(plan) = &s.plan else {
        return Err("no plan is enforced yet".into());
    };
    if s.observing {
        return Err("the gate observes until the first plan that trusts somebody".into());
    }
    let k = k.map_err(|e| format!("the pinned gate cannot be read: {e}"))?;
    if !kernel_matches_plan(s, Some(k)) {
        return Err(format!(
            "the kernel's set ({} entries, {}) differs from the plan ({} entries, {})",
            k.entries, k.digest, plan.entries, plan.digest
        ));
    }
    let age = now.saturating_sub(plan.at);
    let max = s.max_plan_age.as_secs();
    if age > max {
        let last = s.last_refresh.as_ref().map_or("none".to_string(), |r| {
            format!(
                "{}{}",
                r.result,
                r.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
            )
        });
        return Err(format!(
            "the enforced plan is {age} s old, older than daemon.max_plan_age ({max} s); last refresh: {last}"
        ));
    }
    Ok(format!(
        "ready: {} entries, {}, {age} s old\n",
        plan.entries, plan.digest
    ))
}

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

/// Shared between the daemon (which records) and the endpoint (which reads).
pub struct Metrics {
    pin_dir: PathBuf,
    snapshot: Mutex<Snapshot>,
    /// The policy server's live counters, once it runs.
    policy: OnceLock<Arc<policy::counters::Counters>>,
}

impl Metrics {
    pub fn new(pin_dir: PathBuf, snapshot: Snapshot) -> Arc<Metrics> {
        Arc::new(Metrics {
            pin_dir,
            snapshot: Mutex::new(snapshot),
            policy: OnceLock::new(),
        })
    }

    /// Reports the policy server's counters from now on.
    pub fn set_policy(&self, counters: Arc<policy::counters::Counters>) {
        let _ = self.policy.set(counters);
    }

    /// Changes the snapshot (held only for the change).
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }

    /// What the daemon recorded, with the policy server's counters now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.policy = self.policy.get().map(|c| c.read());
        s
    }

    /// One answer to `path` (blocking: reads the maps).
    fn answer(&self, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        match path {
            "/healthz" => (StatusCode::OK, TEXT, "ok\n".into()),
            "/metrics" => {
                let k = read_kernel(&self.pin_dir)
                    .inspect_err(|e| debug!(error = %e, "metrics: the pinned gate cannot be read"))
                    .ok();
                let text = encode(&self.snapshot(), k.as_ref());
                (StatusCode::OK, prometheus_text::CONTENT_TYPE, text)
            }
            "/ready" => {
                let k = read_kernel(&self.pin_dir);
                match readiness(
                    &self.snapshot(),
                    k.as_ref().map_err(|e| e.as_str()),
                    to_timestamp(SystemTime::now()),
                ) {
                    Ok(text) => (StatusCode::OK, TEXT, text),
                    Err(reason) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        format!("not ready: {reason}\n"),
                    ),
                }
            }
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: /metrics, /ready and /healthz are served\n".into(),
            ),
        }
    }
}

async fn handle(
    m: Arc<Metrics>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let head = req.method() == Method::HEAD;
    let (code, ctype, body) = if req.method() == Method::GET || head {
        let path = req.uri().path().to_string();
        match tokio::task::spawn_blocking(move || m.answer(&path)).await {
            Ok(a) => a,
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("internal error: {e}\n"),
            ),
        }
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        )
    };
    let body = if head { String::new() } else { body };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    Ok(resp)
}

/// Binds `addr` and serves until the runtime ends. A bind failure is
/// returned (the daemon logs it and keeps the gate going).
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(listen = %addr, "metrics endpoint: /metrics, /ready, /healthz");
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    error!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let m = m.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(m.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    debug!(peer = %peer, error = %e, "metrics endpoint: connection");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
