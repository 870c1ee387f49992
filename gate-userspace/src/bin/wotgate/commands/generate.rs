//! `wotgate generate man|completions DIR` (hidden): man pages for every
//! command and shell completions, made from the clap definitions at package build time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Write man pages or shell completions made from this binary's command line.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate generate man target/deb/man
  wotgate generate completions target/deb/completions")]
pub struct Generate {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// One man page (section 1) per command: wotgate.1, wotgate-attach.1,
    /// wotgate-trust-list.1, ...
    #[command(after_help = "Examples:
  wotgate generate man /tmp/man && man -l /tmp/man/wotgate-attach.1")]
    Man {
        /// Directory to write the pages into (created when missing).
        dir: PathBuf,
    },
    /// Completions for bash (`wotgate.bash`), zsh (`_wotgate`) and fish (`wotgate.fish`).
    #[command(after_help = "Examples:
  wotgate generate completions /tmp/completions")]
    Completions {
        /// Directory to write the scripts into (created when missing).
        dir: PathBuf,
    },
}

impl Generate {
    pub fn run(self, cli: clap::Command) -> Result<ExitCode> {
        match self.what {
            What::Man { dir } => man(cli, &dir)?,
            What::Completions { dir } => completions(cli, &dir)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes `wotgate.1` and, for each visible subcommand, `wotgate-SUB.1`
/// (`wotgate-trust-list.1`: clap's display names), recursively.
fn man(cli: clap::Command, dir: &Path) -> Result<()> {
    create(dir)?;
    clap_mangen::generate_to(cli, dir)
        .with_context(|| format!("writing man pages to {}", dir.display()))?;
    outln!("wrote man pages to {}", dir.display());
    Ok(())
}

fn completions(cli: clap::Command, dir: &Path) -> Result<()> {
    use clap_complete::Shell;
    create(dir)?;
    let mut cmd = cli;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "wotgate", dir)
            .with_context(|| format!("writing {shell} completions to {}", dir.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
