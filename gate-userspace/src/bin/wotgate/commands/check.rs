//! `wotgate check ADDR`: which entry matches an address and what the loaded
//! program does with a SYN from it.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use wotgate::gate::{replay::action_str, Gate};

use crate::exit;

/// Which entry matches an address and what a SYN from it would get.
///
/// One lookup in the active set, then a SYN from the address to each
/// protected port through the loaded program. Exits 0 when the address is
/// trusted, 3 when it is not (no entry, a deny entry, or an IPv4 address:
/// the gate never trusts IPv4 sources).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate check 2001:db8:1::25
  wotgate check 2001:db8:1::25 --json
  wotgate check 2001:db8:1::25 && echo trusted")]
pub struct Check {
    /// Source address to look up and probe with a SYN to each protected port
    /// (IPv6; an IPv4 address is never trusted).
    addr: IpAddr,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Check {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let r = Gate::open(pin_dir)?.check(self.addr)?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(exit::code(r.trusted));
        }
        match (&r.entry, r.note) {
            (_, Some(note)) => outln!("{}: IPv4: {note}", r.address),
            (Some(e), None) => outln!(
                "{}: matches {} {} {}",
                r.address,
                e.verdict,
                e.prefix,
                e.label
            ),
            (None, None) => outln!("{}: no entry matches (untrusted)", r.address),
        }
        for p in &r.ports {
            let dst = match p.destination {
                IpAddr::V6(a) => format!("[{a}]"),
                IpAddr::V4(a) => a.to_string(),
            };
            outln!(
                "  SYN to {dst}:{} -> {} ({})",
                p.port,
                action_str(p.outcome.action),
                p.outcome.reason.name()
            );
        }
        outln!("verdict: {}", r.verdict);
        Ok(exit::code(r.trusted))
    }
}
