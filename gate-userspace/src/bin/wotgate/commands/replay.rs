//! `wotgate replay FILE`: run a capture through the loaded program record by
//! record and show each verdict; records that cannot be run are skipped
//! and named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use wotgate::gate::{replay::action_str, Gate};

use crate::exit;

/// Run a capture through the loaded program and show each verdict.
///
/// The capture is read and the output written record by record, so any
/// size replays in little memory. A record that cannot be run (shorter
/// than a frame, cut short at the end of the file, refused by the kernel)
/// is skipped and named with its number and why; the rest are replayed,
/// and the exit code is then 4 (partial).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  tcpdump -i eth0 -w mx.pcap 'tcp port 25'
  wotgate replay mx.pcap
  wotgate replay mx.pcap --json
  wotgate replay wireshark.pcapng

Exit codes: 0 every record replayed, 1 error, 4 some records skipped.")]
pub struct Replay {
    /// Capture in pcap or pcapng format (Ethernet, Linux cooked or raw IP).
    file: PathBuf,
    /// Print every packet's verdict, the skipped records and the totals as JSON.
    #[arg(long)]
    json: bool,
}

/// Skipped records listed one by one (on stderr, and in the JSON); the
/// rest are counted.
const LISTED_SKIPS: u64 = 1000;

#[derive(serde::Serialize)]
struct SkipRow {
    record: u64,
    len: usize,
    why: String,
}

impl Replay {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let gate = Gate::open(pin_dir)?;
        let replay = gate.replay(&self.file)?;
        let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
        let (mut ran, mut skipped) = (0u64, 0u64);
        let mut listed = Vec::new();
        if self.json {
            out!("{{\n  \"packets\": [");
        }
        let counter = crate::progress::Spinner::counter("replaying packets");
        for r in replay {
            let r = r.with_context(|| format!("replaying {}", self.file.display()))?;
            counter.inc();
            match r.result {
                Ok(o) => {
                    *totals.entry(o.reason.name()).or_default() += 1;
                    *totals.entry(action_str(o.action)).or_default() += 1;
                    if self.json {
                        let row = serde_json::json!({"packet": r.record, "len": r.len, "action": action_str(o.action), "reason": o.reason.name()});
                        out!("{}\n    {row}", if ran == 0 { "" } else { "," });
                    } else {
                        outln!(
                            "{:6} {:4} {:5} {}",
                            r.record,
                            r.len,
                            action_str(o.action),
                            o.reason.name()
                        );
                    }
                    ran += 1;
                }
                Err(why) => {
                    skipped += 1;
                    if !self.json {
                        outln!("{:6} {:4} skip  {why}", r.record, r.len);
                    }
                    if skipped <= LISTED_SKIPS {
                        counter.suspend(|| {
                            errln!(
                                "wotgate: {}: record {} skipped: {why}",
                                self.file.display(),
                                r.record
                            )
                        });
                        listed.push(SkipRow {
                            record: r.record,
                            len: r.len,
                            why: why.to_string(),
                        });
                    }
                }
            }
        }
        totals.insert("skipped", skipped);
        if self.json {
            // Arrays close on their own line unless empty: `[]`.
            out!("{}],\n  \"skipped\": [", if ran == 0 { "" } else { "\n  " });
            for (i, s) in listed.iter().enumerate() {
                let row = serde_json::to_string(s)?;
                out!("{}\n    {row}", if i == 0 { "" } else { "," });
            }
            out!("{}],\n", if listed.is_empty() { "" } else { "\n  " });
            outln!("  \"totals\": {}\n}}", serde_json::to_string(&totals)?);
        } else {
            if skipped == 0 {
                outln!("total {ran} packets");
            } else {
                outln!("total {ran} packets ({skipped} records skipped)");
            }
            for (k, v) in &totals {
                if *k != "skipped" || *v > 0 {
                    outln!("  {k:20} {v}");
                }
            }
        }
        if skipped == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        if skipped > LISTED_SKIPS {
            errln!(
                "wotgate: and {} more records skipped",
                skipped - LISTED_SKIPS
            );
        }
        errln!(
            "wotgate: {}: {skipped} of {} records skipped, the rest replayed",
            self.file.display(),
            ran + skipped
        );
        Ok(ExitCode::from(exit::PARTIAL))
    }
}
