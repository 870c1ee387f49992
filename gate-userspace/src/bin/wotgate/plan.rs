//! `wotgate plan`: keyrings, roots and a directory of statements into the
//! trusted prefix plan, printed with provenance, diffed, written or loaded.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use sequoia_openpgp::policy::StandardPolicy;
use wotgate::{
    config::Config,
    gate::{prefixes::PrefixSet, Gate},
    plan::{inputs::plan_from_config, PlanDiff},
    statement::{time::parse_cli_time, SerialState},
};

/// Build the trusted prefix plan from the configuration's keyrings, roots
/// and statements directory; print it with every provenance.
#[derive(Args)]
pub struct PlanCmd {
    /// The controller's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Reference time for every validity judgement (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, @UNIX, or `now`).
    #[arg(long, default_value = "now")]
    at: String,
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
}

impl PlanCmd {
    pub fn run(self, pin_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        let at = parse_cli_time(&self.at)
            .map_err(anyhow::Error::msg)
            .context("--at")?;
        let policy = StandardPolicy::new();
        let (plan, judgements, warnings) = plan_from_config(&cfg, &policy, at)?;
        for w in &warnings {
            eprintln!("wotgate: warning: {w}");
        }
        let set = plan.to_prefix_set()?;
        if let Some(old) = &self.diff {
            let old = PrefixSet::load(old)?;
            print!("{}", plan.diff(&old)?.to_text());
        } else if self.diff_loaded {
            let loaded = Gate::open(pin_dir)?.active_set()?;
            print!("{}", plan.diff(&loaded)?.to_text());
        } else if self.json {
            print!("{}", plan.to_json());
        } else {
            print!("{}", plan.to_text());
        }
        if let Some(f) = &self.prefix_file {
            std::fs::write(f, set.to_file_text())
                .with_context(|| format!("writing {}", f.display()))?;
        }
        if self.load {
            load_into_gate(pin_dir, &set)?;
            let mut state = SerialState::load(&cfg.state_directory)?;
            for a in judgements.iter().filter_map(|j| j.result.as_ref().ok()) {
                if a.role == wotgate::statement::Role::Allow {
                    state.record(&a.statement.domain, a.statement.serial);
                }
            }
            state.save(&cfg.state_directory)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints (to standard error) what loading changes, then swaps the set in.
fn load_into_gate(pin_dir: &std::path::Path, set: &PrefixSet) -> anyhow::Result<()> {
    let mut gate = Gate::open(pin_dir).with_context(|| {
        format!(
            "opening the gate pinned in {} (is it attached?)",
            pin_dir.display()
        )
    })?;
    let loaded = gate.active_set().context("reading the loaded set")?;
    eprint!("{}", PlanDiff::between(&loaded, set).to_text());
    let r = gate.load_set(set).context("loading the plan")?;
    eprintln!(
        "wotgate: loaded {} entries ({} labels) as generation {} in trie {}",
        r.entries, r.labels, r.generation, r.trie
    );
    Ok(())
}
