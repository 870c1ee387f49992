//! Gathering a plan's inputs: keyrings into a trust view, the statements
//! directory (sizes bounded before parsing), the serial state.

use std::{io::Read, path::{Path, PathBuf}, time::SystemTime};

use sequoia_openpgp as openpgp;
use openpgp::{cert::CertParser, parse::Parse, policy::Policy, Cert, Fingerprint};

use super::Plan;
use crate::config::{Config, TrustConfig};
use crate::statement::{time::{format_rfc3339, to_timestamp}, Acceptor, Judgement, SerialState, StaticTrust};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("keyring {file}: {problem}")]
    Keyring { file: PathBuf, problem: String },
    #[error("statements directory {dir}: {source}")]
    Directory { dir: PathBuf, source: std::io::Error },
    #[error("statement {file}: {source}")]
    Statement { file: PathBuf, source: std::io::Error },
    #[error("fingerprint {0}: {1}")]
    Fingerprint(String, String),
    #[error(transparent)]
    State(#[from] crate::statement::state::StateError),
}

/// Reads every certificate of the keyring files (armoured or binary).
pub fn load_keyrings(paths: &[PathBuf]) -> Result<Vec<Cert>, InputError> {
    let mut certs = Vec::new();
    for p in paths {
        let err = |problem: String| InputError::Keyring { file: p.clone(), problem };
        for c in CertParser::from_file(p).map_err(|e| err(e.to_string()))? {
            certs.push(c.map_err(|e| err(e.to_string()))?);
        }
    }
    Ok(certs)
}

fn fprs(v: &[String]) -> Result<Vec<Fingerprint>, InputError> {
    v.iter()
        .map(|f| Fingerprint::from_hex(f).map_err(|e| InputError::Fingerprint(f.clone(), e.to_string())))
        .collect()
}

/// The trust view the controller uses.
///
/// INTEGRATION POINT: until the web-of-trust engine (`wotgate::wot`) is
/// merged this is the roots-only view: roots trusted at depth 0 for their
/// self-signed domains, refused keys refused, everyone else untrusted. The
/// adapter fills a `StaticTrust` from the engine's `TrustReport` instead.
pub fn trust_view(cfg: &TrustConfig, policy: &dyn Policy, at: SystemTime) -> Result<StaticTrust, InputError> {
    let certs = load_keyrings(&cfg.keyrings)?;
    Ok(StaticTrust::roots_only(certs, &fprs(&cfg.roots)?, &fprs(&cfg.refuse)?, policy, at))
}

/// Reads the `*.asc` files of `dir` in name order; each read stops at
/// `max_size + 1` bytes so an oversized file is rejected, not loaded.
pub fn read_statements(dir: &Path, max_size: usize) -> Result<Vec<(String, Vec<u8>)>, InputError> {
    let derr = |source| InputError::Directory { dir: dir.to_path_buf(), source };
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
                .map_err(|source| InputError::Statement { file: p.clone(), source })?;
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok((name, buf))
        })
        .collect()
}

/// Judges `statements` and builds the plan.
pub fn plan_statements(cfg: &Config, trust: &StaticTrust, statements: &[(String, Vec<u8>)], state: &SerialState, policy: &dyn Policy, at: SystemTime) -> (Plan, Vec<Judgement>) {
    let acceptor = Acceptor { rules: &cfg.rules, trust, policy, at, state };
    let judgements = acceptor.judge_all(statements.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let accepted: Vec<_> = judgements.iter().filter_map(|j| j.result.as_ref().ok().cloned()).collect();
    let rejected: Vec<_> = judgements.iter().filter_map(|j| j.result.as_ref().err().cloned()).collect();
    let plan = Plan::build(&format_rfc3339(to_timestamp(at)), &accepted, rejected, cfg.testing);
    (plan, judgements)
}

/// Everything `wotgate plan` does before printing: keyrings, statements,
/// state, judgement, plan.
pub fn plan_from_config(cfg: &Config, policy: &dyn Policy, at: SystemTime) -> Result<(Plan, Vec<Judgement>), InputError> {
    let trust = trust_view(&cfg.trust, policy, at)?;
    let statements = read_statements(&cfg.statements_directory, cfg.rules.max_size)?;
    let state = SerialState::load(&cfg.state_directory)?;
    Ok(plan_statements(cfg, &trust, &statements, &state, policy, at))
}
