//! Argument groups shared by several commands, so every command speaks one
//! vocabulary: `--at`, the trust flags (or `--config`), the statement rules.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Result};
use clap::Args;
use wotgate::model::{
    config::Config,
    settings::{
        AcceptRules, StatementOptions, TestingPolicy, TrustOptions, TrustSettings, Vocabulary,
    },
    time::parse_reference_time,
};

/// Help text for every `--at`.
pub const AT_HELP: &str =
    "Reference time for every validity judgement: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC), @UNIX-SECONDS, or `now`";

/// Parses `--at` and other times given on the command line.
pub fn parse_at(s: &str) -> Result<SystemTime, String> {
    parse_reference_time(s).map_err(|e| e.to_string())
}

/// Where trust comes from: a configuration file, or these flags (the same
/// validation either way).
#[derive(Args, Clone, Debug)]
pub struct TrustArgs {
    /// The controller's configuration file; replaces every trust flag below.
    #[arg(long, conflicts_with_all = ["keyrings", "roots", "refuse", "ignore_certifications_by", "depth", "introducer_mode", "max_certifications", "max_certification_bytes"])]
    pub config: Option<PathBuf>,
    /// A keyring file or directory, binary or ASCII-armoured (repeat the flag for more).
    #[arg(long = "keyring", value_name = "PATH")]
    pub keyrings: Vec<PathBuf>,
    /// Fingerprint of a trust root (repeat the flag for more).
    #[arg(long = "root", value_name = "FPR")]
    pub roots: Vec<String>,
    /// A key never trusted itself; its certifications still count (repeatable).
    #[arg(long, value_name = "FPR")]
    pub refuse: Vec<String>,
    /// A key whose certifications do not count; it may still be trusted (repeatable).
    #[arg(long, value_name = "FPR")]
    pub ignore_certifications_by: Vec<String>,
    /// Longest chain of certifications from a root (at most 16) [default: 2].
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Who introduces: `certifications` (any valid certification by a
    /// trusted key) or `trust-signatures` (only trust signatures delegate)
    /// [default: certifications].
    #[arg(long, value_name = "MODE")]
    pub introducer_mode: Option<String>,
    /// Flooding limit: certifications by known keys considered per certificate [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_certifications: Option<usize>,
    /// Flooding limit: bytes of such certifications per certificate [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_certification_bytes: Option<usize>,
    #[arg(long, default_value = "now", value_parser = parse_at, help = AT_HELP)]
    pub at: SystemTime,
}

/// Validated trust inputs.
pub struct Trust {
    pub keyrings: Vec<PathBuf>,
    pub settings: TrustSettings,
    /// The configuration, when `--config` was given.
    pub config: Option<Config>,
}

impl TrustArgs {
    pub fn resolve(&self) -> Result<Trust> {
        if let Some(c) = &self.config {
            let config = Config::load(c)?;
            return Ok(Trust {
                keyrings: config.keyrings.clone(),
                settings: config.trust_at(self.at),
                config: Some(config),
            });
        }
        if self.keyrings.is_empty() {
            bail!("give --config FILE, or at least one --keyring and one --root");
        }
        let settings = TrustOptions {
            roots: self.roots.clone(),
            depth: self.depth,
            mode: self.introducer_mode.clone(),
            refuse: self.refuse.clone(),
            ignore_certifications_by: self.ignore_certifications_by.clone(),
            max_certifications_per_cert: self.max_certifications,
            max_certification_bytes_per_cert: self.max_certification_bytes,
        }
        .validate(Vocabulary::CommandLine, self.at)?;
        Ok(Trust {
            keyrings: self.keyrings.clone(),
            settings,
            config: None,
        })
    }
}

/// `--recipient`: judge with the web of trust that mail to an address uses.
#[derive(Args, Clone, Debug)]
pub struct RecipientArg {
    /// Use the web of trust of mail to this address: its per-recipient web
    /// (`[trust] recipients_directory`), else its domain's, else the
    /// system's. Needs --config.
    #[arg(long, value_name = "ADDR")]
    pub recipient: Option<String>,
}

/// The statement rules, when not taken from `--config`.
#[derive(Args, Clone, Debug)]
pub struct RuleArgs {
    /// Accept documentation prefixes (2001:db8::/32, 3fff::/20); for tests.
    #[arg(long)]
    pub allow_documentation_prefixes: bool,
    /// No prefix broader than this [default: 32].
    #[arg(long, value_name = "LEN")]
    pub min_prefix_len: Option<u8>,
    /// Most prefixes in one statement [default: 64].
    #[arg(long, value_name = "N")]
    pub max_prefixes: Option<usize>,
    /// Largest armoured statement in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_statement_size: Option<usize>,
    /// Directory with the last accepted serials (rollback check); default: none.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl RuleArgs {
    /// The rules and state directory: from the configuration when there is one.
    pub fn resolve(&self, config: Option<&Config>) -> Result<(AcceptRules, Option<PathBuf>)> {
        if let Some(c) = config {
            if self.allow_documentation_prefixes
                || self.min_prefix_len.is_some()
                || self.max_prefixes.is_some()
                || self.max_statement_size.is_some()
                || self.state_dir.is_some()
            {
                bail!("--config sets the statement rules and the state directory; drop the rule flags");
            }
            return Ok((c.rules.clone(), Some(c.state_directory.clone())));
        }
        let (rules, _): (AcceptRules, TestingPolicy) = StatementOptions {
            min_prefix_len: self.min_prefix_len,
            max_prefixes: self.max_prefixes,
            max_size: self.max_statement_size,
            allow_documentation_prefixes: Some(self.allow_documentation_prefixes),
            testing: None,
        }
        .validate(Vocabulary::CommandLine)?;
        Ok((rules, self.state_dir.clone()))
    }
}

/// Defaults shown in help texts, kept equal to the library's.
#[cfg(test)]
mod tests {
    use super::*;
    use wotgate::model::settings::{Limits, DEFAULT_DEPTH};

    #[test]
    fn help_defaults_match_the_library() {
        let d = Limits::default();
        assert_eq!(DEFAULT_DEPTH, 2);
        assert_eq!(d.max_certifications_per_cert, 1000);
        assert_eq!(d.max_certification_bytes_per_cert, 1_048_576);
        assert_eq!(AcceptRules::default().min_prefix_len, 32);
        assert_eq!(AcceptRules::default().max_prefixes, 64);
        assert_eq!(AcceptRules::default().max_size, 65_536);
    }
}
