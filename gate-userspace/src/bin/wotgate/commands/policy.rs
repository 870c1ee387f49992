//! `wotgate policy`: the Postfix policy server alone, for hosts without XDP
//! (library: `wotgate::policy`; inside `wotgate run` with `[policy] enabled`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// Serve Postfix's policy delegation protocol (check_policy_service) from
/// the web of trust and the signed statements, without the XDP gate.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate policy --config /etc/wotgate/wotgate.toml
  WOTGATE_LOG=debug wotgate policy --config wotgate.toml

It listens where [policy] says (default: the UNIX socket
/var/spool/postfix/private/wotgate, owner postfix, mode 0660; main.cf:
check_policy_service unix:private/wotgate), refreshes the trust state every
daemon.refresh_interval and at expiries, and on SIGHUP. Hosts with the gate
run `wotgate run` with [policy] enabled = true instead.")]
pub struct Policy {
    /// The controller's configuration file (the [policy] section and the trust inputs).
    #[arg(long)]
    config: PathBuf,
}

impl Policy {
    pub fn run(self) -> Result<ExitCode> {
        wotgate::policy::standalone::run(&self.config)
            .with_context(|| format!("policy server ({})", self.config.display()))?;
        Ok(ExitCode::SUCCESS)
    }
}
