//! `wotgate upgrade`: replace the pinned XDP program with this build's in
//! place (atomic link updates, maps and trusted set kept, no detach).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use wotgate::gate::{Gate, Upgraded};

/// Replace the running gate program with this wotgate's, keeping its maps.
///
/// Every interface's pinned link is switched to the new program with one
/// atomic link update: each packet meets the old program or the new one,
/// never none, and the trusted set, settings and counters stay (the new
/// program is loaded over the pinned maps). A build whose maps differ from
/// the pinned ones is refused and the old program keeps running; such a
/// build needs `wotgate detach --purge` and `wotgate attach`. `wotgate
/// attach` and the daemon's start upgrade on their own when the pinned
/// program is not this build's. See docs/datapath.md, "Upgrades".
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate upgrade                # after installing a new wotgate
  wotgate upgrade --if-changed   # only when the pinned program is not this build's")]
pub struct Upgrade {
    /// Leave the pinned program alone when it is this build's already
    /// (same kernel tag) and every link runs it.
    #[arg(long)]
    if_changed: bool,
}

impl Upgrade {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let gate = Gate::open(pin_dir)?;
        let u = gate.upgrade(self.if_changed)?;
        outln!("{}", describe(&u));
        Ok(ExitCode::SUCCESS)
    }
}

/// One line saying what an upgrade did.
pub fn describe(u: &Upgraded) -> String {
    let id = |i: Option<u64>| i.map_or("?".into(), |i| i.to_string());
    if u.unchanged {
        return format!(
            "the pinned program (id {}) is this build's already: nothing replaced",
            id(u.old_program)
        );
    }
    let on = if u.links.is_empty() {
        "no interface attached".to_string()
    } else {
        u.links.join(", ")
    };
    format!(
        "upgraded the gate program in place: id {} -> {} ({on}); maps, trusted set and settings kept",
        id(u.old_program),
        id(u.new_program)
    )
}
