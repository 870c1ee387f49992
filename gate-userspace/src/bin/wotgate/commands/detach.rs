//! `wotgate detach`: take the gate off an interface; `--purge` removes the
//! program and maps when no interface is left.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use wotgate::gate::Gate;

/// Detach the gate from an interface (the pinned set stays).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate detach --iface eth0
  wotgate detach --iface eth0 --purge   # and remove the gate when no interface is left")]
pub struct Detach {
    /// Interface to take the gate off.
    #[arg(long)]
    iface: String,
    /// Also remove the program, maps and trusted set when no interface is left.
    #[arg(long)]
    purge: bool,
}

impl Detach {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let gate = Gate::open(pin_dir)?;
        let found = gate.detach(&self.iface)?;
        let left = gate.attachments()?;
        drop(gate);
        if !found {
            bail!(
                "the gate is not attached to {} (see wotgate inspect)",
                self.iface
            );
        }
        outln!("detached from {}", self.iface);
        if self.purge && left.is_empty() {
            wotgate::gate::purge(pin_dir)?;
            outln!("removed {}", pin_dir.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
