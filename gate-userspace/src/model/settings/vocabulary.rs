//! Naming a setting in the words of whoever gave it (configuration file,
//! command line, recipient file), and the error that names it so.

use std::fmt;

/// One setting, named in the vocabulary of whoever gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Roots,
    Depth,
    Mode,
    Refuse,
    IgnoreCertificationsBy,
    MaxCertifications,
    MaxCertificationBytes,
    MinPrefixLen,
    MaxPrefixes,
    MaxStatementSize,
    Testing,
}

/// Where settings came from, which decides how errors name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    /// `trust.roots`, `statements.min_prefix_len`, ...
    ConfigFile,
    /// `--root`, `--min-prefix-len`, ...
    CommandLine,
    /// A recipient's own web (`recipients.d/NAME.toml`): the `[trust]` keys
    /// without the section, `roots`, `depth`, ...
    RecipientFile,
}

impl Vocabulary {
    /// The name of `key` as the operator wrote it.
    pub fn name(self, key: Key) -> &'static str {
        use Key::*;
        let (file, flag) = match key {
            Roots => ("trust.roots", "--root"),
            Depth => ("trust.depth", "--depth"),
            Mode => ("trust.mode", "--introducer-mode"),
            Refuse => ("trust.refuse", "--refuse"),
            IgnoreCertificationsBy => (
                "trust.ignore_certifications_by",
                "--ignore-certifications-by",
            ),
            MaxCertifications => ("trust.max_certifications_per_cert", "--max-certifications"),
            MaxCertificationBytes => (
                "trust.max_certification_bytes_per_cert",
                "--max-certification-bytes",
            ),
            MinPrefixLen => ("statements.min_prefix_len", "--min-prefix-len"),
            MaxPrefixes => ("statements.max_prefixes_per_statement", "--max-prefixes"),
            MaxStatementSize => ("statements.max_statement_size", "--max-statement-size"),
            Testing => ("statements.testing", "--testing"),
        };
        match self {
            Vocabulary::ConfigFile => file,
            Vocabulary::CommandLine => flag,
            Vocabulary::RecipientFile => file.strip_prefix("trust.").unwrap_or(file),
        }
    }
}

/// A setting with a value it cannot take; says which, in the giver's words:
/// `trust.depth = 17: ...` for a file, `--depth 17: ...` for a flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}{} {value}: {problem}", if key.starts_with('-') { "" } else { " =" })]
pub struct SettingsError {
    /// The key or flag, as the operator wrote it.
    pub key: &'static str,
    /// The offending value, quoted as Rust debug output.
    pub value: String,
    pub problem: String,
}

pub(super) fn invalid(
    v: Vocabulary,
    key: Key,
    value: &dyn fmt::Debug,
    problem: &str,
) -> SettingsError {
    SettingsError {
        key: v.name(key),
        value: format!("{value:?}"),
        problem: problem.into(),
    }
}
