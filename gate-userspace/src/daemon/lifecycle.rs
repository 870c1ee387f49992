//! Start and stop: take the instance lock, adopt the pinned gate or create
//! it with the last good plan, attach; on stop, detach or keep enforcing.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::policy::StandardPolicy;
use tracing::{error, info, warn};

use crate::gate::compile::Capacity;
use crate::gate::{Gate, GateError};
use crate::model::config::{Config, StartupPolicy};
use crate::model::prefixes::PrefixSet;
use crate::wot::TrustEngine;

use super::digest::digest;
use super::instance::InstanceLock;
use super::metrics::{Metrics, Snapshot};
use super::state::{self, DaemonStatus, LoadedRecord};
use super::{now_secs, refresh, Daemon, StartError, Trigger};

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
