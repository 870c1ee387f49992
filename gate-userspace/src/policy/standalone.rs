//! `wotgate policy`: the policy server alone, for hosts without XDP. It
//! refreshes the trust state itself, as the daemon would, without a kernel.
//!
//! Same sources and rules as `wotgate run` (`daemon::refresh::build`), same
//! refusals: a plan built from incomplete inputs, or one the load guard
//! refuses, keeps the previous state. The rollback state is read, never
//! written (that is the daemon's, after a load).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sequoia_openpgp::policy::StandardPolicy;
use tracing::{error, info, warn};

use crate::apply::LoadGuard;
use crate::daemon::refresh;
use crate::model::config::{Config, ConfigError};
use crate::model::prefixes::PrefixSet;
use crate::model::time::format_time;

use super::server::ServeError;
use super::trust::{TrustCell, TrustSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Why a refresh kept the previous state.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Build(#[from] refresh::BuildError),
    #[error("{} input problem(s), so the state may be missing trusted peers: {}", .0.len(), .0.join("; "))]
    Incomplete(Vec<String>),
    #[error(transparent)]
    Guard(#[from] crate::apply::GuardError),
}

/// One refresh: the snapshot and its kernel-style set (for the guard next
/// time), and when the state next changes by itself.
pub fn build_snapshot(
    cfg: &Config,
    at: SystemTime,
    previous: &PrefixSet,
) -> Result<(TrustSnapshot, PrefixSet, Option<SystemTime>), RefreshError> {
    let policy = StandardPolicy::new();
    let built = refresh::build(cfg, &policy, at)?;
    let p = &built.prepared;
    if !p.problems.is_empty() {
        return Err(RefreshError::Incomplete(p.problems.clone()));
    }
    let guard = LoadGuard {
        max_shrink_percent: cfg.max_shrink_percent,
        force: false,
    };
    guard.check(previous, &p.set)?;
    let snap = super::snapshot_for(cfg, p, at);
    Ok((snap, p.set.clone(), built.next_expiry))
}

/// Runs until SIGTERM or SIGINT; SIGHUP refreshes (the trust inputs are read
/// again; `[policy]` itself changes with a restart).
pub fn run(config_path: &Path) -> Result<(), StandaloneError> {
    let cfg = Config::load(config_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(StandaloneError::Runtime)?;
    rt.block_on(run_async(config_path.to_path_buf(), cfg))
}

async fn run_async(config_path: PathBuf, mut cfg: Config) -> Result<(), StandaloneError> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k| signal(k).map_err(StandaloneError::Runtime);
    let mut hup = sig(SignalKind::hangup())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let (cell, running) = super::serve(&cfg.policy).await?;
    let mut set = PrefixSet::new();
    let mut reload = false;
    loop {
        if reload {
            match Config::load(&config_path) {
                Ok(new) => {
                    if new.policy != cfg.policy {
                        warn!(
                            "[policy] changes only with a restart; the trust inputs are read again"
                        );
                    }
                    cfg = Config {
                        policy: cfg.policy.clone(),
                        ..new
                    };
                }
                Err(e) => {
                    error!(error = %e, "the configuration has an error; keeping the running one")
                }
            }
        }
        let next_expiry = refresh_once(&cfg, &cell, &mut set).await;
        let now = SystemTime::now();
        let mut next = now + cfg.daemon.refresh_interval;
        if let Some(t) = next_expiry.filter(|t| *t > now && *t < next) {
            next = t;
        }
        info!(at = %format_time(next), "next refresh");
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        reload = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = hup.recv() => true,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
    }
    running.stop();
    info!("policy server stopped");
    Ok(())
}

/// Builds and publishes a new snapshot off the runtime; a failure is logged
/// and the previous state keeps serving (until policy.max_state_age).
async fn refresh_once(
    cfg: &Config,
    cell: &Arc<TrustCell>,
    set: &mut PrefixSet,
) -> Option<SystemTime> {
    let (c, prev) = (cfg.clone(), set.clone());
    let at = SystemTime::now();
    let done = tokio::task::spawn_blocking(move || build_snapshot(&c, at, &prev)).await;
    match done {
        Ok(Ok((snap, new_set, next))) => {
            info!(entries = snap.len(), "policy trust state refreshed");
            cell.publish(snap);
            *set = new_set;
            next
        }
        Ok(Err(e)) => {
            error!(error = %e, "refresh failed; the previous trust state keeps serving");
            None
        }
        Err(e) => {
            error!(error = %e, "refresh panicked; the previous trust state keeps serving");
            None
        }
    }
}
