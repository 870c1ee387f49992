//! The controller's TOML configuration: raw serde structs with documented
//! defaults, then a validated form; every error names the key and the value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::plan::TestingPolicy;
use crate::statement::AcceptRules;
use crate::wot::{IntroducerMode, Limits};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Where rollback state lives (default /var/lib/wotgate).
    state_directory: Option<PathBuf>,
    trust: Option<RawTrust>,
    statements: Option<RawStatements>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    /// Keyring files (OpenPGP certificates, armoured or binary). Required.
    keyrings: Option<Vec<PathBuf>>,
    /// Fingerprints of the fully trusted roots. Required.
    roots: Option<Vec<String>>,
    /// Longest chain of introducers below a root (default 2).
    depth: Option<usize>,
    /// "certifications" (default: every valid certification by a trusted key
    /// introduces) or "trust-signatures" (only trust signatures delegate).
    mode: Option<String>,
    /// Flooding cap: certifications by known keys considered per certificate
    /// (default 1000).
    max_certifications_per_cert: Option<usize>,
    /// Flooding cap: bytes of such certifications per certificate (default 1 MiB).
    max_certification_bytes_per_cert: Option<usize>,
    /// Fingerprints of refused keys: never trusted; their statements deny.
    refuse: Option<Vec<String>>,
    /// Fingerprints whose certifications are ignored (the keys stay valid).
    ignore_certifications_by: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatements {
    /// Directory of `*.asc` statements (default /etc/wotgate/statements).
    directory: Option<PathBuf>,
    /// No prefix broader than this (default 32).
    min_prefix_len: Option<u8>,
    /// Most prefixes in one statement (default 64).
    max_prefixes_per_statement: Option<usize>,
    /// Largest armoured statement in bytes (default 65536, at most 1 MiB).
    max_statement_size: Option<usize>,
    /// Accept 2001:db8::/32 and 3fff::/20 (default false; for tests).
    allow_documentation_prefixes: Option<bool>,
    /// "allow" (default) or "count": what testing-mode statements do.
    testing: Option<String>,
}

/// Trust settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustConfig {
    pub keyrings: Vec<PathBuf>,
    /// Upper-case hex fingerprints.
    pub roots: Vec<String>,
    pub depth: usize,
    pub mode: IntroducerMode,
    pub limits: Limits,
    pub refuse: Vec<String>,
    pub ignore_certifications_by: Vec<String>,
}

/// The validated configuration; relative paths are resolved against the
/// configuration file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub state_directory: PathBuf,
    pub trust: TrustConfig,
    pub statements_directory: PathBuf,
    pub rules: AcceptRules,
    pub testing: TestingPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {key} = {value}: {problem}")]
    Invalid {
        file: String,
        key: String,
        value: String,
        problem: String,
    },
}

/// Normalises a fingerprint (hex, spaces allowed) to upper-case hex.
pub fn normalise_fingerprint(s: &str) -> Result<String, String> {
    let hex: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if (hex.len() == 40 || hex.len() == 64) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err("not a v4 (40 hex digits) or v6 (64 hex digits) fingerprint".into())
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &file, base)
    }

    /// Parses configuration text; `file` names it in errors, `base` resolves
    /// relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            message: e.to_string(),
        })?;
        let invalid =
            |key: &str, value: &dyn std::fmt::Debug, problem: &str| ConfigError::Invalid {
                file: file.into(),
                key: key.into(),
                value: format!("{value:?}"),
                problem: problem.into(),
            };
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let t = raw.trust.unwrap_or_default();
        let fprs = |key: &str, v: Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
            v.unwrap_or_default()
                .iter()
                .map(|f| normalise_fingerprint(f).map_err(|p| invalid(key, f, &p)))
                .collect()
        };
        let keyrings: Vec<PathBuf> = t
            .keyrings
            .unwrap_or_default()
            .into_iter()
            .map(abs)
            .collect();
        if keyrings.is_empty() {
            return Err(invalid(
                "trust.keyrings",
                &keyrings,
                "at least one keyring is needed",
            ));
        }
        let roots = fprs("trust.roots", t.roots)?;
        if roots.is_empty() {
            return Err(invalid(
                "trust.roots",
                &roots,
                "at least one root is needed",
            ));
        }
        let depth = t.depth.unwrap_or(crate::wot::DEFAULT_DEPTH);
        if depth > 16 {
            return Err(invalid("trust.depth", &depth, "at most 16"));
        }
        let mode = match t.mode.as_deref() {
            None | Some("certifications") => IntroducerMode::Certifications,
            Some("trust-signatures") => IntroducerMode::TrustSignatures,
            Some(other) => {
                return Err(invalid(
                    "trust.mode",
                    &other,
                    "expected \"certifications\" or \"trust-signatures\"",
                ))
            }
        };
        let refuse = fprs("trust.refuse", t.refuse)?;
        if let Some(r) = roots.iter().find(|r| refuse.contains(r)) {
            return Err(invalid("trust.refuse", r, "a root cannot also be refused"));
        }
        let trust = TrustConfig {
            keyrings,
            roots,
            depth,
            mode,
            limits: Limits {
                max_certifications_per_cert: t
                    .max_certifications_per_cert
                    .unwrap_or(Limits::default().max_certifications_per_cert),
                max_certification_bytes_per_cert: t
                    .max_certification_bytes_per_cert
                    .unwrap_or(Limits::default().max_certification_bytes_per_cert),
            },
            refuse,
            ignore_certifications_by: fprs(
                "trust.ignore_certifications_by",
                t.ignore_certifications_by,
            )?,
        };
        let s = raw.statements.unwrap_or_default();
        let d = AcceptRules::default();
        let rules = AcceptRules {
            min_prefix_len: s.min_prefix_len.unwrap_or(d.min_prefix_len),
            max_prefixes: s.max_prefixes_per_statement.unwrap_or(d.max_prefixes),
            max_size: s.max_statement_size.unwrap_or(d.max_size),
            allow_documentation_prefixes: s.allow_documentation_prefixes.unwrap_or(false),
        };
        if rules.min_prefix_len > 128 {
            return Err(invalid(
                "statements.min_prefix_len",
                &rules.min_prefix_len,
                "a prefix length is 0..=128",
            ));
        }
        if rules.max_prefixes == 0 {
            return Err(invalid(
                "statements.max_prefixes_per_statement",
                &0,
                "must be at least 1",
            ));
        }
        if !(256..=crate::statement::body::MAX_BODY_BYTES).contains(&rules.max_size) {
            return Err(invalid(
                "statements.max_statement_size",
                &rules.max_size,
                "must be between 256 and 1048576 bytes",
            ));
        }
        let testing = match s.testing.as_deref() {
            None | Some("allow") => TestingPolicy::Allow,
            Some("count") => TestingPolicy::Count,
            Some(other) => {
                return Err(invalid(
                    "statements.testing",
                    &other,
                    "expected \"allow\" or \"count\"",
                ))
            }
        };
        Ok(Config {
            state_directory: abs(raw
                .state_directory
                .unwrap_or_else(|| "/var/lib/wotgate".into())),
            trust,
            statements_directory: abs(s
                .directory
                .unwrap_or_else(|| "/etc/wotgate/statements".into())),
            rules,
            testing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "c.toml", Path::new("/etc/wotgate"))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(&format!(
            "[trust]\nkeyrings = [\"ring.pgp\"]\nroots = [\"{}\"]\n",
            ROOT.to_lowercase()
        ))
        .unwrap();
        assert_eq!(
            c.trust.keyrings,
            vec![PathBuf::from("/etc/wotgate/ring.pgp")]
        );
        assert_eq!(c.trust.roots, vec![ROOT.to_string()]);
        assert_eq!(c.trust.depth, 2);
        assert_eq!(c.rules, AcceptRules::default());
        assert_eq!(c.testing, TestingPolicy::Allow);
        assert_eq!(c.state_directory, PathBuf::from("/var/lib/wotgate"));
    }

    #[test]
    fn errors_name_key_and_value() {
        let base = format!("[trust]\nkeyrings = [\"r\"]\nroots = [\"{ROOT}\"]\n");
        let e = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert_eq!(
            e("[statements]\ntesting = \"maybe\"\n"),
            "c.toml: statements.testing = \"maybe\": expected \"allow\" or \"count\""
        );
        assert!(e("mode = \"gpg\"\n").contains("trust.mode = \"gpg\""));
        assert!(e("refuse = [\"abc\"]\n").contains("trust.refuse = \"abc\""));
        assert!(e(&format!("refuse = [\"{ROOT}\"]\n")).contains("a root cannot also be refused"));
        assert!(
            e("[statements]\nmin_prefix_len = 200\n").contains("statements.min_prefix_len = 200")
        );
        assert!(e("[statements]\ncolour = 1\n").contains("unknown field `colour`"));
        assert!(parse("[trust]\nroots = []\n")
            .unwrap_err()
            .to_string()
            .contains("trust.keyrings"));
    }
}
