//! `wotgate replay FILE`: run a pcap capture through the loaded program and
//! show each verdict.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use wotgate::gate::{
    replay::{action_str, read_pcap},
    Gate,
};

/// Run a capture through the loaded program and show each verdict.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  tcpdump -i eth0 -w mx.pcap 'tcp port 25'
  wotgate replay mx.pcap
  wotgate replay mx.pcap --json")]
pub struct Replay {
    /// Capture in pcap format (Ethernet, Linux cooked or raw IP).
    file: PathBuf,
    /// Print every packet's verdict and the totals as JSON.
    #[arg(long)]
    json: bool,
}

impl Replay {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let frames = read_pcap(&self.file)?;
        let gate = Gate::open(pin_dir)?;
        let mut runner = gate.runner()?;
        let mut totals: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut rows = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let o = runner.run(f).with_context(|| format!("packet {}", i + 1))?;
            *totals.entry(o.reason.name()).or_default() += 1;
            *totals.entry(action_str(o.action)).or_default() += 1;
            if self.json {
                rows.push(serde_json::json!({"packet": i + 1, "len": f.len(), "action": action_str(o.action), "reason": o.reason.name()}));
            } else {
                outln!(
                    "{:6} {:4} {:5} {}",
                    i + 1,
                    f.len(),
                    action_str(o.action),
                    o.reason.name()
                );
            }
        }
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"packets": rows, "totals": totals})
                )?
            );
        } else {
            outln!("total {} packets", frames.len());
            for (k, v) in &totals {
                outln!("  {k:20} {v}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
