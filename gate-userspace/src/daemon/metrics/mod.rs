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

mod encode;
mod kernel;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::prometheus_text;
use tracing::{debug, error, info};

use crate::model::time::to_timestamp;
use crate::policy::{self, counters::PolicyCounts};
use crate::source::crawl::{Outcome, SourceReport};

use super::state::LoadedRecord;

pub use encode::encode;
pub use kernel::{kernel_matches_plan, read_kernel, readiness, KernelView};

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
mod tests;
