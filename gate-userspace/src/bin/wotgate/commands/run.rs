//! `wotgate run`: the controller daemon (library: `wotgate::daemon`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Run the controller: keep the gate's set equal to the web of trust and
/// the signed statements (refresh on the interval, on SIGHUP, at expiries).
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate run --config /etc/wotgate/wotgate.toml
  WOTGATE_LOG=debug wotgate run --config wotgate.toml

Signals: SIGHUP refreshes (the configuration is read again first); SIGTERM
and SIGINT stop the daemon, and the gate keeps enforcing the loaded set
unless gate.detach_on_stop is set. One daemon per pin directory.")]
pub struct Run {
    /// The controller's configuration file.
    #[arg(long)]
    config: PathBuf,
}

impl Run {
    pub fn run(self) -> Result<ExitCode> {
        wotgate::daemon::run(&self.config)?;
        Ok(ExitCode::SUCCESS)
    }
}
