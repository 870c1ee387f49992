//! `wotgate prefixes load|show`: replace the trusted set from a prefix file
//! through the atomic swap, or print the active one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use wotgate::apply::LoadGuard;
use wotgate::gate::Gate;
use wotgate::model::{config::DEFAULT_MAX_SHRINK_PERCENT, prefixes::PrefixSet};

/// Manage the trusted set.
#[derive(clap::Subcommand)]
pub enum Prefixes {
    /// Replace the trusted set from a file of `allow|deny PREFIX [label]`
    /// lines. An invalid file changes nothing. Needs a pinned gate (before
    /// the first attach: `wotgate attach --prefixes FILE`).
    #[command(after_help = "Examples:
  wotgate prefixes load /etc/wotgate/trusted.prefixes
  wotgate prefixes load trusted.prefixes --json   # the swap report as JSON
  wotgate prefixes load --force empty.prefixes    # really trust nobody

File format, one entry per line (# comments):
  allow 2001:db8:1::/48 example.org
  deny  2001:db8:1:bad::/64 refused")]
    Load {
        /// Prefix file: `allow|deny PREFIX [label]` lines.
        file: PathBuf,
        /// Print the swap report (generation, trie, timings) as JSON.
        #[arg(long)]
        json: bool,
        /// Load even a set that trusts nobody, loses more than half of the
        /// loaded allow entries, or allows a prefix broader than /16.
        #[arg(long)]
        force: bool,
    },
    /// Print the active set in prefix-file format.
    #[command(after_help = "Examples:
  wotgate prefixes show
  wotgate prefixes show > backup.prefixes   # reload later with prefixes load
  wotgate prefixes show --json | jq length")]
    Show {
        /// Print the entries (prefix, verdict, label) as a JSON array.
        #[arg(long)]
        json: bool,
    },
}

impl Prefixes {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        match self {
            Prefixes::Load { file, json, force } => {
                let set = PrefixSet::load(&file)?;
                let mut gate = Gate::open(pin_dir)?;
                let guard = LoadGuard {
                    max_shrink_percent: DEFAULT_MAX_SHRINK_PERCENT,
                    force,
                };
                // The guard judges the set this load replaces: both under
                // one hold of the lock, released before anything is printed.
                let r = {
                    let mut gate = gate.lock()?;
                    guard
                        .check(gate.loaded_set()?, &set)
                        .with_context(|| format!("{}", file.display()))?;
                    gate.load_set(&set)
                        .with_context(|| format!("loading {}", file.display()))?
                };
                if json {
                    outln!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    outln!(
                        "loaded {} entries ({} labels) as generation {} in trie {}: {}",
                        r.entries,
                        r.labels,
                        r.generation,
                        r.trie,
                        r.summary()
                    );
                }
            }
            Prefixes::Show { json } => {
                // Read in one generation, without the lock; printed after.
                let set = Gate::open(pin_dir)?.active_set()?;
                if json {
                    let entries: Vec<_> = set.iter().collect();
                    outln!("{}", serde_json::to_string_pretty(&entries)?);
                } else {
                    out!("{}", set.to_file_text());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
