//! The process around the daemon: the tokio runtime, the signals (SIGHUP
//! reloads, SIGTERM and SIGINT stop), the refresh loop, systemd notifications.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::{metrics, Daemon, StartError, Trigger};

/// Tells systemd (when it started us with NOTIFY_SOCKET); a failure is logged.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "could not notify systemd");
    }
}

impl Daemon {
    /// One line for `systemctl status`: the last refresh and the loaded plan.
    fn notify_status(&self) {
        let r = self.status.last_refresh.as_ref();
        let l = self.status.loaded.as_ref();
        let text = format!(
            "last refresh {}; generation {}, {} entries, {}",
            r.map_or("none", |r| r.outcome.as_str()),
            l.map_or(0, |l| l.generation),
            l.map_or(0, |l| l.entries),
            l.map_or("no plan", |l| l.digest.as_str())
        );
        notify(&[sd_notify::NotifyState::Status(&text)]);
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Signal handlers are in place
/// before anything else, so an early SIGHUP never kills it.
pub fn run(config_path: &Path) -> Result<(), StartError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    rt.block_on(run_async(config_path.to_path_buf()))
}

async fn run_async(config_path: PathBuf) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k| signal(k).map_err(StartError::Runtime);
    let mut hup = sig(SignalKind::hangup())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let blocking = |f: Box<dyn FnOnce() -> Daemon + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StartError::Runtime(std::io::Error::other(e)))
    };
    let path = config_path.clone();
    let d = tokio::task::spawn_blocking(move || Daemon::start(&path))
        .await
        .map_err(|e| StartError::Runtime(std::io::Error::other(e)))??;
    // Up before the first refresh: /healthz answers and /ready says why not yet.
    if let Some(addr) = d.cfg.metrics_listen {
        if let Err(e) = metrics::serve(addr, d.metrics()).await {
            error!(listen = %addr, error = %e, "metrics endpoint: cannot listen; the gate runs without it");
        }
    }
    let mut d = d;
    // The policy server answers from the start (deferring until the first
    // plan is loaded); it shares the process and each loaded plan.
    let policy = match d.cfg.policy.enabled {
        true => match crate::policy::serve(&d.cfg.policy).await {
            Ok((cell, running)) => {
                d.policy = Some(cell);
                d.metrics.set_policy(running.counters());
                Some(running)
            }
            Err(e) => {
                error!(error = %e, "policy server: cannot listen; the gate runs without it (Postfix applies its default_action)");
                None
            }
        },
        false => None,
    };
    let mut d = blocking(Box::new(move || {
        let mut d = d;
        d.refresh(Trigger::Start);
        d
    }))
    .await?;
    // Readiness: the gate enforces a plan now (adopted, the last good one,
    // or the first refresh's); whether that refresh worked is in STATUS=.
    notify(&[sd_notify::NotifyState::Ready]);
    d.notify_status();
    info!(pid = std::process::id(), "ready");
    if let Some(period) = sd_notify::watchdog_enabled() {
        // Pings from their own task, so a long refresh is not taken for a hang.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tick.tick().await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
    loop {
        let wait = d
            .next
            .0
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let trigger = tokio::select! {
            _ = tokio::time::sleep(wait) => d.next.1,
            _ = hup.recv() => Trigger::Sighup,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        d = blocking(Box::new(move || {
            let mut d = d;
            d.refresh(trigger);
            d
        }))
        .await?;
        d.notify_status();
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(p) = policy {
        p.stop();
    }
    tokio::task::spawn_blocking(move || d.stop())
        .await
        .map_err(|e| StartError::Runtime(std::io::Error::other(e)))?;
    Ok(())
}
