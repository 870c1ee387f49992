//! `wotgate config check`: validates a configuration file (and the static
//! override file it names) without touching the gate or the state directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use wotgate::model::{
    config::{Config, PolicyMode},
    prefixes::PrefixSet,
};

/// Check a configuration file: every error names the key and the value.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate config check /etc/wotgate/wotgate.toml
  wotgate config check examples/wotgate.toml && systemctl reload wotgate")]
pub struct Check {
    /// The configuration file to check.
    file: PathBuf,
}

impl Check {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = Config::load(&self.file)?;
        let g = &cfg.gate;
        if let Some(p) = &g.static_prefixes {
            let set = PrefixSet::load(p)?;
            outln!("static overrides: {} ({} entries)", p.display(), set.len());
        }
        outln!("{}: valid", self.file.display());
        outln!(
            "gate: {} at {}, {} mode, ports {:?}, interfaces {}",
            if g.observe { "observe" } else { "enforce" },
            g.pin_directory.display(),
            g.xdp_mode,
            g.ports,
            if g.interfaces.is_empty() {
                "none".to_string()
            } else {
                g.interfaces.join(", ")
            }
        );
        outln!(
            "daemon: refresh every {}s, startup {:?}, readiness needs a plan younger than {}s; state in {}",
            cfg.daemon.refresh_interval.as_secs(),
            cfg.daemon.startup,
            cfg.daemon.max_plan_age.as_secs(),
            cfg.state_directory.display()
        );
        let p = &cfg.policy;
        outln!(
            "policy: {} in wotgate run, {} mode, socket {}, tcp {}",
            if p.enabled { "served" } else { "not served" },
            match p.mode {
                PolicyMode::Enforce => "enforce",
                PolicyMode::Observe => "observe",
            },
            p.socket
                .as_ref()
                .map_or("none".to_string(), |s| s.display().to_string()),
            p.tcp_listen.map_or("none".to_string(), |a| a.to_string())
        );
        if let Some(d) = &cfg.recipients_directory {
            outln!(
                "recipients: {} per-recipient web(s) in {}",
                cfg.recipients.len(),
                d.display()
            );
        }
        if g.interfaces.is_empty() {
            errln!("wotgate: note: gate.interfaces is empty: `wotgate run` needs at least one interface (plan and statement verify do not)");
        }
        Ok(ExitCode::SUCCESS)
    }
}
