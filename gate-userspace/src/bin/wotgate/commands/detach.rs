//! `wotgate detach`: take the gate off an interface; `--purge` removes the
//! program and maps when no interface is left.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use wotgate::gate::{purge_if_unattached, Gate};

use super::purge::print_report;

/// Detach the gate from an interface (the pinned set stays).
///
/// With --purge, the gate (program, maps, trusted set) is removed as well
/// once no interface is left; `detach --purge` without --iface removes a
/// gate that is attached nowhere (as `wotgate purge` does).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate detach --iface eth0
  wotgate detach --iface eth0 --purge   # and remove the gate when no interface is left
  wotgate detach --purge                # remove a gate already detached everywhere")]
pub struct Detach {
    /// Interface to take the gate off (may be left out with --purge).
    #[arg(long, required_unless_present = "purge")]
    iface: Option<String>,
    /// Also remove the program, maps and trusted set when no interface is left.
    #[arg(long)]
    purge: bool,
}

impl Detach {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let Some(iface) = &self.iface else {
            print_report(&purge_if_unattached(pin_dir)?)?;
            return Ok(ExitCode::SUCCESS);
        };
        let mut gate = Gate::open(pin_dir)?;
        let (found, left, purged) = {
            let gate = gate.lock()?;
            let found = gate.detach(iface)?;
            let left: Vec<String> = gate
                .attachments()?
                .into_iter()
                .filter(|a| a.attached())
                .map(|a| a.iface)
                .collect();
            let purged = if self.purge && left.is_empty() {
                Some(gate.purge()?)
            } else {
                None
            };
            (found, left, purged)
        };
        match (found, self.purge) {
            (true, _) => outln!("detached from {iface}"),
            (false, true) => errln!("wotgate: the gate was not attached to {iface}"),
            (false, false) => bail!("the gate is not attached to {iface} (see wotgate inspect)"),
        }
        match purged {
            Some(report) => print_report(&report)?,
            None if self.purge => errln!(
                "wotgate: not purged: the gate is still attached to {}",
                left.join(", ")
            ),
            None => {}
        }
        Ok(ExitCode::SUCCESS)
    }
}
