//! `wotgate check ADDR`: which entry matches an address and what the loaded
//! program does with a SYN from it.

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use wotgate::gate::{replay::action_str, Gate};

/// Which entry matches an address and what a SYN from it would get.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate check 2001:db8:1::25
  wotgate check 2001:db8:1::25 --json")]
pub struct Check {
    /// IPv6 source address to look up and probe with a SYN to each protected port.
    addr: Ipv6Addr,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Check {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let r = Gate::open(pin_dir)?.check(self.addr)?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(ExitCode::SUCCESS);
        }
        match &r.entry {
            Some(e) => outln!(
                "{}: matches {} {} {}",
                r.address,
                e.verdict,
                e.prefix,
                e.label
            ),
            None => outln!("{}: no entry matches (untrusted)", r.address),
        }
        for p in &r.ports {
            outln!(
                "  SYN to [{}]:{} -> {} ({})",
                p.destination,
                p.port,
                action_str(p.outcome.action),
                p.outcome.reason.name()
            );
        }
        outln!("verdict: {}", r.verdict);
        Ok(ExitCode::SUCCESS)
    }
}
