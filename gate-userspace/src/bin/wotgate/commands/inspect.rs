//! `wotgate inspect`: what is loaded, where it is attached, and the counters,
//! read from the pins alone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use wotgate::gate::Gate;

/// Show what is loaded and what the gate has done.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate inspect
  wotgate inspect --json
  wotgate --pin-dir /sys/fs/bpf/other inspect")]
pub struct Inspect {
    /// Print the status as JSON (settings, attachments, set, counters).
    #[arg(long)]
    json: bool,
}

impl Inspect {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let st = Gate::open(pin_dir)?.status()?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&st)?);
        } else {
            out!("{}", st.to_text());
        }
        Ok(ExitCode::SUCCESS)
    }
}
