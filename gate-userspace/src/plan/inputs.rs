//! Gathering a plan's inputs: keyrings into a trust view, the statements
//! directory (sizes bounded before parsing), the serial state.

use std::{
    collections::BTreeSet,
    io::Read,
    path::{Path, PathBuf},
    time::SystemTime,
};

use openpgp::{policy::Policy, Fingerprint};
use sequoia_openpgp as openpgp;

use super::Plan;
use crate::config::{Config, TrustConfig};
use crate::statement::{
    time::{format_rfc3339, to_timestamp},
    Acceptor, Judgement, SerialState, TrustView, WotView,
};
use crate::wot::{self, Keyring, TrustSettings};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("statements directory {dir}: {source}")]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("statement {file}: {source}")]
    Statement {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("fingerprint {0}: {1}")]
    Fingerprint(String, String),
    #[error(transparent)]
    State(#[from] crate::statement::state::StateError),
}

fn fprs(v: &[String]) -> Result<BTreeSet<Fingerprint>, InputError> {
    v.iter()
        .map(|f| {
            Fingerprint::from_hex(f).map_err(|e| InputError::Fingerprint(f.clone(), e.to_string()))
        })
        .collect()
}

/// Loads the keyrings and runs the web-of-trust engine with the configured
/// settings at `at`. Keyring problems (unreadable files, bad certificates)
/// are returned as warnings, as `wotgate trust list` does.
pub fn trust_view(
    cfg: &TrustConfig,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<(WotView, Vec<String>), InputError> {
    let mut settings = TrustSettings::new(fprs(&cfg.roots)?, at);
    settings.depth = cfg.depth;
    settings.mode = cfg.mode;
    settings.refuse = fprs(&cfg.refuse)?;
    settings.ignore_certifications_by = fprs(&cfg.ignore_certifications_by)?;
    settings.limits = cfg.limits;
    let (keyring, problems) = Keyring::load(&cfg.keyrings);
    let report = wot::evaluate(&keyring, &settings, policy);
    let mut warnings: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    warnings.extend(
        report
            .missing_roots
            .iter()
            .map(|r| format!("root {r} is not in any keyring")),
    );
    Ok((WotView { keyring, report }, warnings))
}

/// Reads the `*.asc` files of `dir` in name order; each read stops at
/// `max_size + 1` bytes so an oversized file is rejected, not loaded.
pub fn read_statements(dir: &Path, max_size: usize) -> Result<Vec<(String, Vec<u8>)>, InputError> {
    let derr = |source| InputError::Directory {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(derr)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(derr)?;
    names.retain(|p| p.extension().is_some_and(|e| e == "asc") && p.is_file());
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let mut buf = Vec::new();
            std::fs::File::open(&p)
                .and_then(|f| f.take(max_size as u64 + 1).read_to_end(&mut buf))
                .map_err(|source| InputError::Statement {
                    file: p.clone(),
                    source,
                })?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, buf))
        })
        .collect()
}

/// Judges `statements` and builds the plan.
pub fn plan_statements(
    cfg: &Config,
    trust: &dyn TrustView,
    statements: &[(String, Vec<u8>)],
    state: &SerialState,
    policy: &dyn Policy,
    at: SystemTime,
) -> (Plan, Vec<Judgement>) {
    let acceptor = Acceptor {
        rules: &cfg.rules,
        trust,
        policy,
        at,
        state,
    };
    let judgements = acceptor.judge_all(statements.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let accepted: Vec<_> = judgements
        .iter()
        .filter_map(|j| j.result.as_ref().ok().cloned())
        .collect();
    let rejected: Vec<_> = judgements
        .iter()
        .filter_map(|j| j.result.as_ref().err().cloned())
        .collect();
    let plan = Plan::build(
        &format_rfc3339(to_timestamp(at)),
        &accepted,
        rejected,
        cfg.testing,
    );
    (plan, judgements)
}

/// Everything `wotgate plan` does before printing: keyrings, statements,
/// state, judgement, plan.
pub fn plan_from_config(
    cfg: &Config,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<(Plan, Vec<Judgement>, Vec<String>), InputError> {
    let (trust, warnings) = trust_view(&cfg.trust, policy, at)?;
    let statements = read_statements(&cfg.statements_directory, cfg.rules.max_size)?;
    let state = SerialState::load(&cfg.state_directory)?;
    let (plan, judgements) = plan_statements(cfg, &trust, &statements, &state, policy, at);
    Ok((plan, judgements, warnings))
}
