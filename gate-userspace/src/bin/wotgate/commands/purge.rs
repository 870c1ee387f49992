//! `wotgate purge`: remove a gate (its links, program, maps and trusted
//! set) by its own pin names only, under the pin directory's lock.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use wotgate::gate::{purge, purge_if_unattached, PurgeReport};

/// Remove the gate: program, maps and trusted set (refused while attached).
///
/// Only the gate's own pins are removed, by name; the directory goes only
/// when nothing else is left in it. A directory that does not look like a
/// gate's (a bpffs root such as /sys/fs/bpf, or one holding other pins and
/// none of the gate's) is refused. Waits for a running load to finish.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate purge                                  # a gate detached everywhere
  wotgate purge --detach-all                     # detach from every interface, then remove
  wotgate --pin-dir /sys/fs/bpf/wotgate-test purge
  wotgate detach --iface eth0 --purge            # the same after the last detach")]
pub struct Purge {
    /// Detach from every interface first (gated SMTP is then open to all).
    #[arg(long)]
    detach_all: bool,
}

impl Purge {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let report = if self.detach_all {
            purge(pin_dir)?
        } else {
            purge_if_unattached(pin_dir)?
        };
        print_report(&report)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What a purge did, in the operator's words.
pub fn print_report(r: &PurgeReport) -> Result<()> {
    let dir = r.dir.display();
    if r.removed.is_empty() && !r.dir_removed && r.left.is_empty() {
        outln!("nothing pinned at {dir}");
        return Ok(());
    }
    for iface in &r.detached {
        outln!("detached from {iface}");
    }
    outln!("removed {} pins from {dir}", r.removed.len());
    if r.dir_removed {
        outln!("removed {dir}");
    } else if !r.left.is_empty() {
        errln!(
            "wotgate: left {dir} in place: it also holds {} (not the gate's)",
            r.left.join(", ")
        );
    }
    Ok(())
}
