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
mod lifecycle;
pub mod metrics;
pub mod refresh;
mod runtime;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::{error, info, warn};

use crate::apply::{ApplyError, LoadGuard};
use crate::gate::{Gate, GateError, Settings};
use crate::model::config::{Config, ConfigError};
use crate::model::prefixes::{PrefixSet, Verdict};
use crate::model::time::{format_time, to_timestamp};
use crate::wot::TrustEngine;

use digest::digest;
use instance::{InstanceError, InstanceLock};
use metrics::{LastRefresh, Metrics};
use refresh::BuildError;
use state::{DaemonStatus, LoadedRecord, RefreshRecord};

pub use runtime::run;

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
}

fn trusts_somebody(set: &PrefixSet) -> bool {
    set.iter().any(|e| e.verdict == Verdict::Allow)
}
