//! The controller daemon (`wotgate run`): keeps the pinned gate's set equal
//! to what the web of trust and the signed statements say, now and as they change.
//!
//! A layer above [`crate::apply`], and the only one with tokio. The pins are
//! the truth: a running gate is adopted as it is (no detach, no gap); after a
//! reboot the last good plan from the state directory is enforced at once.
//! Every refresh builds the plan completely ([`refresh::build`]) and loads
//! what changed against the set the gate enforces (the gate handle keeps a
//! copy of it, re-read only when another writer changed the pins) through
//! the load guard; a failing refresh keeps the current set.

pub mod digest;
pub mod instance;
pub mod metrics;
pub mod refresh;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sequoia_openpgp::policy::StandardPolicy;
use tracing::{error, info, warn};

use crate::apply::{ApplyError, LoadGuard};
use crate::gate::compile::Capacity;
use crate::gate::{Gate, GateError, Settings};
use crate::model::config::{Config, ConfigError, StartupPolicy};
use crate::model::prefixes::{PrefixSet, Verdict};
use crate::model::time::{format_time, to_timestamp};
use crate::wot::TrustEngine;

use digest::digest;
use instance::{InstanceError, InstanceLock};
use metrics::{LastRefresh, Metrics, Snapshot};
use refresh::BuildError;
use state::{DaemonStatus, LoadedRecord, RefreshRecord};

/// Why the daemon could not start (nothing was detached or cleared).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("{0}: gate.interfaces is empty: the daemon needs at least one interface to attach to")]
    NoInterfaces(String),
    #[error("state directory {dir}: {error}")]
    State { dir: PathBuf, error: std::io::Error },
    #[error("the gate: {0}")]
    Gate(#[from] GateError),
    #[error("the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What started a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Timer,
    /// A statement's `not_after` or a key's expiry passed.
    Expiry,
    /// SIGHUP (`wotgate reload`): the configuration is read again first.
    Sighup,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Timer => "timer",
            Trigger::Expiry => "expiry",
            Trigger::Sighup => "sighup",
        }
    }
}

fn now_secs() -> u64 {
    to_timestamp(SystemTime::now())
}

/// The running daemon: its configuration, the gate it keeps, its status.
pub struct Daemon {
    cfg: Config,
    config_path: PathBuf,
    gate: Gate,
    _lock: InstanceLock,
    status: DaemonStatus,
    /// `startup = "observe"` and no plan yet: the gate observes until the
    /// first good plan (one that trusts somebody) is loaded.
    waiting_for_first_plan: bool,
    /// When the plan next changes by itself (statement or key expiry).
    next_expiry: Option<SystemTime>,
    /// The next refresh: when, and why then.
    next: (SystemTime, Trigger),
    /// What the metrics endpoint reports (updated after every refresh).
    metrics: Arc<Metrics>,
    /// The policy server's trust state (`[policy] enabled`), published
    /// after every loaded plan.
    policy: Option<Arc<crate::policy::TrustCell>>,
    /// The trust computation kept between refreshes (parsed certificates,
    /// their judgements, the verification cache); a restart starts it from
    /// the verification cache in the state directory.
    engine: TrustEngine,
}

impl Daemon {
    /// Takes the instance lock, adopts or creates the gate, enforces the
    /// last good plan when the gate is new, attaches to the interfaces.
    pub fn start(config_path: &Path) -> Result<Daemon, StartError> {
        let cfg = Config::load(config_path)?;
        if cfg.gate.interfaces.is_empty() {
            return Err(StartError::NoInterfaces(config_path.display().to_string()));
        }
        let lock = InstanceLock::acquire(&cfg.gate.pin_directory)?;
        let state_dir = cfg.state_directory.clone();
        std::fs::create_dir_all(&state_dir).map_err(|error| StartError::State {
            dir: state_dir.clone(),
            error,
        })?;
        let pin = cfg.gate.pin_directory.clone();
        let mut status = DaemonStatus {
            pid: std::process::id(),
            config: config_path.display().to_string(),
            started_at: now_secs(),
            ..Default::default()
        };
        let (gate, had_plan) = match Gate::open(&pin) {
            Ok(mut gate) => {
                // A writer killed in the middle of an update left the other
                // trie half written: bring it back to the active set now
                // (the datapath never read it), not at the first load.
                match gate.repair() {
                    Ok(true) => {
                        warn!(pin_dir = %pin.display(), "an interrupted update of the trusted set was repaired: both tries hold the active set again")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(error = %e, "repairing an interrupted update of the trusted set; the next load tries again")
                    }
                }
                // A new wotgate adopting an older gate: its program is
                // replaced in place (atomic, maps kept), or kept running
                // when this build cannot use the pinned maps.
                match gate.upgrade(true) {
                    Ok(u) if u.unchanged => {}
                    Ok(u) => {
                        info!(old_program = ?u.old_program, new_program = ?u.new_program, links = ?u.links, "the gate's program was replaced by this build's in place (maps kept, no detach)")
                    }
                    Err(e) => {
                        error!(error = %e, "the gate's program could not be upgraded; the old one keeps running")
                    }
                }
                let set = gate.active_set()?;
                let st = gate.status()?;
                info!(pin_dir = %pin.display(), generation = st.generation, entries = set.len(), digest = %digest(&set), mode = st.mode,
                    "adopting the pinned gate as it is (no detach, no gap)");
                status.start = "adopted".into();
                status.loaded = DaemonStatus::load(&state_dir).and_then(|s| s.loaded);
                (gate, !set.is_empty())
            }
            Err(GateError::NotPinned(_)) => {
                let last = state::load_plan(&state_dir);
                // The compiled lookup's arrays are sized when the gate is
                // created: for twice the last good plan, at least the default.
                let capacity = match &last {
                    Ok(Some((set, _))) => {
                        Capacity::for_set(set, 1.0).at_least(&Capacity::default())
                    }
                    _ => Capacity::default(),
                };
                let mut gate = Gate::create_with(&pin, &capacity)?;
                status.start = "created".into();
                let had = match last {
                    Ok(Some((set, d))) => {
                        let r = gate.load_set(&set)?;
                        info!(pin_dir = %pin.display(), generation = r.generation, entries = r.entries, digest = %d,
                            "no gate was pinned (after a reboot?): enforcing the last good plan from the state directory at once");
                        status.loaded = Some(LoadedRecord {
                            at: now_secs(),
                            generation: r.generation,
                            entries: r.entries,
                            digest: d,
                            from: "last-good-plan".into(),
                        });
                        true
                    }
                    found => {
                        if let Err(e) = found {
                            warn!(error = %e, "ignoring the last good plan");
                        }
                        load_static_only(&mut gate, &cfg, &mut status);
                        false
                    }
                };
                (gate, had)
            }
            Err(e) => return Err(e.into()),
        };
        let waiting = !had_plan && cfg.daemon.startup == StartupPolicy::Observe;
        if !had_plan {
            info!(startup = ?cfg.daemon.startup, "no usable plan yet: following the start-up policy");
        }
        status.observing_until_first_plan = waiting;
        let metrics = Metrics::new(
            pin.clone(),
            Snapshot::new(cfg.daemon.max_plan_age, status.started_at),
        );
        let engine = TrustEngine::new(Arc::new(StandardPolicy::new()), refresh::load_cache(&cfg));
        let mut d = Daemon {
            metrics,
            next: (SystemTime::now(), Trigger::Start),
            cfg,
            config_path: config_path.to_path_buf(),
            gate,
            _lock: lock,
            status,
            waiting_for_first_plan: waiting,
            next_expiry: None,
            policy: None,
            engine,
        };
        d.apply_settings()?;
        for iface in d.cfg.gate.interfaces.clone() {
            match d.gate.attach(&iface, d.cfg.gate.xdp_mode) {
                Ok(a) => {
                    info!(iface = %a.iface, xdp_mode = %a.mode, link_id = ?a.link_id, "attached")
                }
                Err(e @ GateError::AlreadyAttached { .. }) => {
                    warn!(iface = %iface, error = %e, "left as it is")
                }
                Err(e) => return Err(e.into()),
            }
        }
        d.save_status();
        d.update_metrics(|_| {});
        Ok(d)
    }

    /// The snapshot the metrics endpoint serves.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Copies the loaded plan and the mode into the metrics snapshot, with
    /// `more` in the same update, so a scrape never sees a refresh counted
    /// without its plan.
    fn update_metrics(&self, more: impl FnOnce(&mut metrics::Snapshot)) {
        let (plan, observing) = (self.status.loaded.clone(), self.waiting_for_first_plan);
        let max_age = self.cfg.daemon.max_plan_age;
        self.metrics.update(|s| {
            more(s);
            s.plan = plan;
            s.observing = observing;
            s.max_plan_age = max_age;
        });
    }

    /// The settings the gate should have now.
    fn wanted_settings(&self) -> Settings {
        Settings {
            ports: self.cfg.gate.ports.clone(),
            observe: self.cfg.gate.observe || self.waiting_for_first_plan,
            protect: self.cfg.gate.protect.clone(),
        }
    }

    /// Brings the gate's settings to the wanted ones, logging what changed.
    fn apply_settings(&mut self) -> Result<(), GateError> {
        let wanted = self.wanted_settings();
        let current = self.gate.settings()?;
        let changes = current.changes_to(&wanted);
        if !changes.is_empty() {
            self.gate.set_settings(&wanted)?;
            info!(changes = %changes.join("; "), "gate settings changed");
        }
        Ok(())
    }

    /// Reads the configuration again (SIGHUP). An invalid file is logged and
    /// counted and the running configuration stays; what only a restart can
    /// change (pin directory, interfaces, XDP mode, state directory) is kept.
    fn reload_config(&mut self) {
        match Config::load(&self.config_path) {
            Ok(mut new) => {
                let old = &self.cfg;
                if new.gate.pin_directory != old.gate.pin_directory
                    || new.gate.interfaces != old.gate.interfaces
                    || new.gate.xdp_mode != old.gate.xdp_mode
                    || new.state_directory != old.state_directory
                {
                    warn!("gate.pin_directory, gate.interfaces, gate.xdp_mode and state_directory change only with a restart; keeping the running ones");
                    new.gate.pin_directory = old.gate.pin_directory.clone();
                    new.gate.interfaces = old.gate.interfaces.clone();
                    new.gate.xdp_mode = old.gate.xdp_mode;
                    new.state_directory = old.state_directory.clone();
                }
                if new.metrics_listen != self.cfg.metrics_listen {
                    warn!("metrics.listen changes only with a restart");
                }
                if new.policy != self.cfg.policy {
                    warn!("[policy] changes only with a restart");
                }
                self.cfg = new;
                let at = now_secs();
                self.metrics.update(|s| {
                    s.config_last_reload_successful = true;
                    s.config_last_reload_success_at = at;
                });
                if let Err(e) = self.apply_settings() {
                    error!(error = %e, "could not change the gate settings");
                }
            }
            Err(e) => {
                self.status.config_reload_failures += 1;
                self.metrics.update(|s| {
                    s.config_last_reload_successful = false;
                    s.config_reload_failures += 1;
                });
                error!(error = %e, "the configuration has an error; keeping the running configuration");
            }
        }
    }

    /// One refresh: build, guard, load, persist. A failure is logged and
    /// counted and the current set stays.
    pub fn refresh(&mut self, trigger: Trigger) {
        let t0 = Instant::now();
        let at = SystemTime::now();
        if trigger == Trigger::Sighup {
            self.reload_config();
        }
        let forced = state::take_force(&self.cfg.state_directory);
        let mut rec = RefreshRecord {
            at: to_timestamp(at),
            trigger: trigger.as_str().into(),
            forced,
            ..Default::default()
        };
        let result = self.try_refresh(at, forced, &mut rec);
        let valve = matches!(result, Err(BuildError::Apply(ApplyError::Guard(_))));
        match result {
            Ok(()) => {
                rec.outcome = "loaded".into();
                self.status.refreshes_loaded += 1;
                self.status.last_success_at = Some(to_timestamp(at));
            }
            Err(e) => {
                let refused = matches!(
                    e,
                    BuildError::Apply(ApplyError::Guard(_) | ApplyError::Incomplete { .. })
                );
                if refused {
                    rec.outcome = "refused".into();
                    self.status.refreshes_refused += 1;
                    error!(trigger = trigger.as_str(), error = %e, "refresh refused by the load guard; the current set stays (wotgate reload --force loads it anyway)");
                } else {
                    rec.outcome = "failed".into();
                    self.status.refreshes_failed += 1;
                    error!(trigger = trigger.as_str(), error = %e, "refresh failed; the current set stays");
                }
                rec.error = Some(e.to_string());
            }
        }
        let duration = t0.elapsed();
        rec.duration_ms = duration.as_millis() as u64;
        let last = LastRefresh {
            at: rec.at,
            duration,
            result: match rec.outcome.as_str() {
                "loaded" => "ok",
                "refused" => "refused",
                _ => "failed",
            },
            error: rec.error.clone(),
        };
        let unchanged = rec.unchanged;
        self.status.last_refresh = Some(rec);
        self.schedule();
        self.save_status();
        // The refresh's count and its plan in one update, after the status
        // file (a scrape between two updates saw refresh_total{ok} 1 and
        // plan_entries 0).
        self.update_metrics(|s| {
            s.record_refresh(last);
            s.safety_valve_refusals += u64::from(valve);
            s.refreshes_unchanged += u64::from(unchanged);
        });
    }

    fn try_refresh(
        &mut self,
        at: SystemTime,
        force: bool,
        rec: &mut RefreshRecord,
    ) -> Result<(), BuildError> {
        let built = refresh::build_with(&self.cfg, &mut self.engine, at)?;
        let p = &built.prepared;
        self.next_expiry = built.next_expiry;
        rec.problems = p.problems.clone();
        rec.accepted_statements = p.judgements.iter().filter(|j| j.result.is_ok()).count();
        rec.rejected_statements = p.judgements.len() - rec.accepted_statements;
        for w in &p.problems {
            warn!(problem = %w, "input problem");
        }
        let mut by_rule = std::collections::BTreeMap::new();
        for r in p.judgements.iter().filter_map(|j| j.result.as_ref().err()) {
            *by_rule.entry(r.rule.as_str()).or_insert(0) += 1;
        }
        let (accepted, trusted) = (rec.accepted_statements, built.trusted_keys);
        let at_secs = to_timestamp(at);
        self.metrics.update(|s| {
            s.trusted_keys = Some(trusted);
            s.statements_accepted = accepted;
            s.statements_rejected_by_rule = by_rule;
            s.record_sources(&built.sources, at_secs);
        });
        for n in &built.fetch_notes {
            warn!(source = %n, "fetched source");
        }
        for r in p.judgements.iter().filter_map(|j| j.result.as_ref().err()) {
            info!(file = %r.file, rule = r.rule.as_str(), detail = %r.detail, "statement rejected");
        }
        let guard = LoadGuard {
            max_shrink_percent: self.cfg.max_shrink_percent,
            force,
        };
        let state_dir = self.cfg.state_directory.clone();
        let (load, diff) = match p.load(&mut self.gate, &state_dir, &guard) {
            Ok(a) => {
                rec.unchanged = a.unchanged;
                (a.load, Some(a.diff))
            }
            Err(ApplyError::RecordAfterLoad { load, error }) => {
                self.metrics
                    .update(|s| s.record_state_write_error("serials"));
                warn!(error = %error, "the plan is loaded, but the serials could not be recorded");
                (*load, None)
            }
            Err(e) => return Err(e.into()),
        };
        rec.load = Some(state::LoadSummary {
            mode: load.mode.into(),
            written: load.written,
            removed: load.removed,
            enforce_us: load.enforce_time.as_micros() as u64,
            lookup: load.lookup.into(),
        });
        if load.lookup == "trie" {
            warn!(entries = load.entries, pin_dir = %self.cfg.gate.pin_directory.display(),
                "the set does not fit the compiled lookup sized when the gate was created: it is enforced, but looked up in the slower LPM trie; `wotgate detach --purge` and a restart size the gate for it");
        }
        let d = match state::save_plan(&state_dir, &p.set) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.update(|s| s.record_state_write_error("plan"));
                warn!(error = %e, file = %state_dir.join(state::PLAN_FILE).display(), "the plan is loaded, but could not be saved as the last good plan");
                digest(&p.set)
            }
        };
        info!(
            trigger = rec.trigger.as_str(),
            generation = load.generation,
            entries = load.entries,
            digest = %d,
            mode = load.mode,
            lookup = load.lookup,
            enforce_us = load.enforce_time.as_micros() as u64,
            added = diff.as_ref().map_or(0, |d| d.added.len()),
            removed = diff.as_ref().map_or(0, |d| d.removed.len()),
            changed = diff.as_ref().map_or(0, |d| d.changed.len()),
            accepted = rec.accepted_statements,
            rejected = rec.rejected_statements,
            forced = force,
            unchanged = rec.unchanged,
            webs = p.webs.as_ref().map_or(1, |w| w.names.len()),
            "{}",
            if rec.unchanged {
                "plan unchanged: the kernel enforces it already, nothing swapped"
            } else {
                "plan loaded"
            }
        );
        self.status.loaded = Some(LoadedRecord {
            at: to_timestamp(at),
            generation: load.generation,
            entries: load.entries,
            digest: d,
            from: "refresh".into(),
        });
        if let Some(cell) = &self.policy {
            cell.publish(crate::policy::snapshot_for(&self.cfg, p, at));
        }
        if self.waiting_for_first_plan {
            if trusts_somebody(&p.set) {
                self.waiting_for_first_plan = false;
                self.status.observing_until_first_plan = false;
                self.apply_settings().map_err(ApplyError::Gate)?;
                info!(
                    mode = self.wanted_settings().mode_str(),
                    "first good plan loaded: the configured mode is in force"
                );
            } else {
                warn!("the plan trusts nobody yet: still observing");
            }
        }
        Ok(())
    }

    /// Sets the next refresh: the interval, or an expiry if that is sooner.
    fn schedule(&mut self) {
        let now = SystemTime::now();
        let mut next = (now + self.cfg.daemon.refresh_interval, Trigger::Timer);
        if let Some(t) = self.next_expiry.filter(|t| *t > now && *t < next.0) {
            next = (t, Trigger::Expiry);
        }
        self.next = next;
        self.status.next_refresh_at = Some(to_timestamp(next.0));
        self.status.next_refresh_reason = Some(next.1.as_str().into());
        info!(at = %format_time(next.0), reason = next.1.as_str(), "next refresh");
    }

    fn save_status(&self) {
        if let Err(e) = self.status.save(&self.cfg.state_directory) {
            self.metrics
                .update(|s| s.record_state_write_error("status"));
            warn!(error = %e, file = %self.cfg.state_directory.join(state::STATUS_FILE).display(), "could not write the status file");
        }
    }

    /// Stops: the gate keeps enforcing (pins stay) unless `detach_on_stop`.
    pub fn stop(mut self) {
        if self.cfg.gate.detach_on_stop {
            for iface in &self.cfg.gate.interfaces {
                match self.gate.detach(iface) {
                    Ok(_) => info!(iface = %iface, "detached (gate.detach_on_stop)"),
                    Err(e) => error!(iface = %iface, error = %e, "could not detach"),
                }
            }
        } else {
            info!("stopping; the gate keeps enforcing the loaded set");
        }
        self.status.stopped_at = Some(now_secs());
        self.save_status();
    }
}

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

fn trusts_somebody(set: &PrefixSet) -> bool {
    set.iter().any(|e| e.verdict == Verdict::Allow)
}

/// A new gate with no last good plan: load the static overrides alone, if any.
fn load_static_only(gate: &mut Gate, cfg: &Config, status: &mut DaemonStatus) {
    let Some(path) = &cfg.gate.static_prefixes else {
        return;
    };
    match PrefixSet::load(path) {
        Ok(set) if !set.is_empty() => match gate.load_set(&set) {
            Ok(r) => {
                info!(entries = r.entries, "static overrides loaded");
                status.loaded = Some(LoadedRecord {
                    at: now_secs(),
                    generation: r.generation,
                    entries: r.entries,
                    digest: digest(&set),
                    from: "static-overrides".into(),
                });
            }
            Err(e) => error!(error = %e, "could not load the static overrides"),
        },
        Ok(_) => {}
        Err(e) => error!(error = %e, "could not read the static overrides"),
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
