//! `wotgate status`: the daemon, the gate and the plan at a glance, read from
//! the lock file, the pins and the state directory (works with the daemon down).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use wotgate::daemon::{
    digest::digest,
    instance::{self, Holder},
    state::{self, DaemonStatus},
};
use wotgate::gate::{attach::Attachment, Gate, GateError};
use wotgate::model::{
    config::Config,
    prefixes::{PrefixSet, Verdict},
    time::format_rfc3339,
};

use crate::exit;

/// Show whether the daemon runs, what the gate enforces, and whether that
/// equals the last good plan (exit 0 only when the daemon runs and it does).
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate status --config /etc/wotgate/wotgate.toml
  wotgate status --config /etc/wotgate/wotgate.toml --json | jq .kernel_equals_plan")]
pub struct Status {
    /// The daemon's configuration file (names its pin and state directories).
    #[arg(long)]
    config: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GateView {
    pin_dir: String,
    mode: &'static str,
    ports: Vec<u16>,
    generation: u64,
    entries: usize,
    allow: usize,
    deny: usize,
    /// Computed from the set read back from the maps.
    digest: String,
    attachments: Vec<Attachment>,
}

#[derive(Serialize)]
struct PlanView {
    digest: String,
    entries: usize,
}

#[derive(Serialize)]
struct Report {
    pin_dir: String,
    daemon: Holder,
    /// `None` when nothing is pinned or the pins cannot be read.
    gate: Option<GateView>,
    /// Why the pins could not be read (e.g. a gate being created right now).
    gate_problem: Option<String>,
    /// The last good plan in the state directory.
    plan: Option<PlanView>,
    plan_problem: Option<String>,
    /// Whether the kernel's set has the digest of the last good plan.
    kernel_equals_plan: Option<bool>,
    status: Option<DaemonStatus>,
}

fn gate_view(pin: &std::path::Path) -> Result<Option<GateView>> {
    let gate = match Gate::open(pin) {
        Ok(g) => g,
        Err(GateError::NotPinned(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = gate.status()?;
    let mut set = PrefixSet::new();
    for e in st.entries {
        let _ = set.insert(e);
    }
    let allow = set.iter().filter(|e| e.verdict == Verdict::Allow).count();
    Ok(Some(GateView {
        pin_dir: pin.display().to_string(),
        mode: st.mode,
        ports: st.settings.ports,
        generation: st.generation,
        entries: set.len(),
        allow,
        deny: set.len() - allow,
        digest: digest(&set),
        attachments: st.attachments,
    }))
}

fn when(t: u64) -> String {
    format_rfc3339(t)
}

impl Status {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        let pin = &cfg.gate.pin_directory;
        let daemon = instance::holder(pin);
        let (gate, gate_problem) = match gate_view(pin) {
            Ok(g) => (g, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let (plan, plan_problem) = match state::load_plan(&cfg.state_directory) {
            Ok(p) => (
                p.map(|(set, digest)| PlanView {
                    digest,
                    entries: set.len(),
                }),
                None,
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let kernel_equals_plan = match (&gate, &plan) {
            (Some(g), Some(p)) => Some(g.digest == p.digest),
            _ => None,
        };
        let r = Report {
            pin_dir: pin.display().to_string(),
            daemon,
            gate,
            gate_problem,
            plan,
            plan_problem,
            kernel_equals_plan,
            status: DaemonStatus::load(&cfg.state_directory),
        };
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            self.print(&r)?;
        }
        let good = r.daemon.running && r.kernel_equals_plan == Some(true);
        Ok(ExitCode::from(if good { exit::OK } else { exit::NEGATIVE }))
    }

    fn print(&self, r: &Report) -> Result<()> {
        let s = r.status.as_ref();
        match (&r.daemon, s) {
            (
                Holder {
                    running: true, pid, ..
                },
                _,
            ) => outln!(
                "daemon: running (pid {}{})",
                pid.map_or("?".into(), |p| p.to_string()),
                s.map_or(String::new(), |s| format!(", since {}", when(s.started_at)))
            ),
            (Holder { pid: Some(pid), .. }, _) => outln!(
                "daemon: NOT running (last pid {pid}{})",
                s.and_then(|s| s.stopped_at)
                    .map_or(", did not stop cleanly".into(), |t| format!(
                        ", stopped {}",
                        when(t)
                    ))
            ),
            _ => outln!("daemon: NOT running (none has run for this pin directory)"),
        }
        match &r.gate {
            None => match &r.gate_problem {
                Some(e) => outln!("gate: cannot read the pins at {}: {e}", r.pin_dir),
                None => outln!("gate: nothing pinned at {}", r.pin_dir),
            },
            Some(g) => {
                outln!(
                    "gate: pinned at {}, {}, ports {:?}, generation {}, {} entries ({} allow, {} deny)",
                    g.pin_dir, g.mode, g.ports, g.generation, g.entries, g.allow, g.deny
                );
                if g.attachments.is_empty() {
                    outln!("  attached: nowhere");
                }
                for a in &g.attachments {
                    outln!(
                        "  attached: {} ({}{})",
                        a.iface,
                        a.mode,
                        if a.live { "" } else { ", interface gone" }
                    );
                }
                outln!("  kernel digest: {}", g.digest);
            }
        }
        match (&r.plan, &r.plan_problem) {
            (Some(p), _) => outln!("plan: last good plan {} ({} entries)", p.digest, p.entries),
            (None, Some(e)) => outln!("plan: unusable: {e}"),
            (None, None) => outln!("plan: none saved yet"),
        }
        match r.kernel_equals_plan {
            Some(true) => outln!("kernel equals plan: yes"),
            Some(false) => outln!("kernel equals plan: NO"),
            None => outln!("kernel equals plan: unknown"),
        }
        let Some(s) = s else {
            return Ok(());
        };
        if s.observing_until_first_plan {
            outln!("start-up: observing until the first good plan");
        }
        if let Some(l) = &s.loaded {
            outln!(
                "loaded: generation {} at {} ({})",
                l.generation,
                when(l.at),
                l.from
            );
        }
        if let Some(f) = &s.last_refresh {
            outln!(
                "last refresh: {} ({}): {}{} in {} ms, {} statements accepted, {} rejected{}",
                when(f.at),
                f.trigger,
                f.outcome,
                if f.unchanged { " (unchanged)" } else { "" },
                f.duration_ms,
                f.accepted_statements,
                f.rejected_statements,
                if f.forced { ", forced" } else { "" }
            );
            if let Some(e) = &f.error {
                outln!("  error: {e}");
            }
            for p in &f.problems {
                outln!("  input problem: {p}");
            }
        }
        outln!(
            "refreshes: {} loaded, {} refused, {} failed; configuration reload failures: {}",
            s.refreshes_loaded,
            s.refreshes_refused,
            s.refreshes_failed,
            s.config_reload_failures
        );
        if let (true, Some(t)) = (r.daemon.running, s.next_refresh_at) {
            outln!(
                "next refresh: {} ({})",
                when(t),
                s.next_refresh_reason.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    }
}
