//! `wotgate prefixes load|show`: replace the trusted set from a prefix file
//! through the atomic swap, or print the active one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use wotgate::gate::Gate;
use wotgate::model::prefixes::PrefixSet;

/// Manage the trusted set.
#[derive(clap::Subcommand)]
pub enum Prefixes {
    /// Replace the trusted set from a file of `allow|deny PREFIX [label]`
    /// lines. An invalid file changes nothing.
    Load {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the active set in prefix-file format.
    Show,
}

impl Prefixes {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        match self {
            Prefixes::Load { file, json } => {
                let set = PrefixSet::load(&file)?;
                let mut gate = Gate::open(pin_dir)?;
                let r = gate
                    .load_set(&set)
                    .with_context(|| format!("loading {}", file.display()))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!(
                        "loaded {} entries ({} labels) as generation {} in trie {}: cleared {} old entries in {:.3}s, filled in {:.3}s, checked in {:.3}s",
                        r.entries, r.labels, r.generation, r.trie, r.cleared,
                        r.clear_time.as_secs_f64(), r.fill_time.as_secs_f64(), r.check_time.as_secs_f64()
                    );
                }
            }
            Prefixes::Show => print!("{}", Gate::open(pin_dir)?.active_set()?.to_file_text()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
