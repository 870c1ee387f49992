//! `wotgate plan`: the configuration's keyrings, roots and statements into the
//! trusted prefix plan, printed with provenance, diffed, written, or loaded (`apply`).

use std::{path::PathBuf, process::ExitCode, time::SystemTime};

use anyhow::Context;
use clap::Args;
use sequoia_openpgp::policy::StandardPolicy;
use wotgate::{
    apply::{prepare_from_config, LoadGuard},
    gate::Gate,
    model::{config::Config, prefixes::PrefixSet},
};

use crate::args::{parse_at, AT_HELP};

/// Build the trusted prefix plan from the configuration's keyrings, roots
/// and statements directory; print it with every provenance.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate plan --config /etc/wotgate/wotgate.toml
  wotgate plan --config /etc/wotgate/wotgate.toml --diff-loaded
  wotgate plan --config /etc/wotgate/wotgate.toml --load")]
pub struct PlanCmd {
    /// The controller's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "now", value_parser = parse_at, help = AT_HELP)]
    at: SystemTime,
    /// Write the kernel set in the gate's prefix-file format to this file.
    #[arg(long)]
    prefix_file: Option<PathBuf>,
    /// Show what would change against this prefix file instead of the plan.
    #[arg(long, conflicts_with = "diff_loaded")]
    diff: Option<PathBuf>,
    /// Show what would change against the set loaded in the gate now.
    #[arg(long)]
    diff_loaded: bool,
    /// Load the plan into the gate through its atomic swap (the changes
    /// against the loaded set go to standard error), then record the
    /// accepted serials (rollback protection).
    #[arg(long)]
    load: bool,
    /// With --load: load even when an input could not be read completely or
    /// the set would lose more trusted entries than `[load]
    /// max_shrink_percent` allows (or all of them).
    #[arg(long, requires = "load")]
    force: bool,
}

impl PlanCmd {
    pub fn run(self, pin_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        let at = self.at;
        let policy = StandardPolicy::new();
        let spinner = crate::progress::Spinner::start(
            "building the plan (keyrings, web of trust, statements)",
        );
        let prepared = prepare_from_config(&cfg, &policy, at);
        drop(spinner);
        let prepared = prepared?;
        for w in &prepared.problems {
            errln!("wotgate: warning: {w}");
        }
        let plan = &prepared.plan;
        let set = &prepared.set;
        if let Some(old) = &self.diff {
            let old = PrefixSet::load(old)?;
            out!("{}", plan.diff(&old)?.to_text());
        } else if self.diff_loaded {
            let loaded = Gate::open(pin_dir)?.active_set()?;
            out!("{}", plan.diff(&loaded)?.to_text());
        } else if self.json {
            out!("{}", plan.to_json());
        } else {
            out!("{}", plan.to_text());
        }
        if let Some(f) = &self.prefix_file {
            std::fs::write(f, set.to_file_text())
                .with_context(|| format!("writing {}", f.display()))?;
        }
        if self.load {
            let mut gate = Gate::open(pin_dir).with_context(|| {
                format!(
                    "opening the gate pinned in {} (is it attached?)",
                    pin_dir.display()
                )
            })?;
            let guard = LoadGuard {
                max_shrink_percent: cfg.max_shrink_percent,
                force: self.force,
            };
            let r = prepared.load(&mut gate, &cfg.state_directory, &guard)?;
            err!("{}", r.diff.to_text());
            if r.unchanged {
                errln!(
                    "wotgate: unchanged: the gate enforces these {} entries already (generation {}); nothing swapped",
                    r.load.entries,
                    r.load.generation
                );
            } else {
                errln!(
                    "wotgate: loaded {} entries ({} labels) as generation {} in trie {}",
                    r.load.entries,
                    r.load.labels,
                    r.load.generation,
                    r.load.trie
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
