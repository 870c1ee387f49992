//! Where inputs come from. Every source yields [`Named`] bytes (what, and from
//! where) for the parsers: local files ([`local`]), or participants' published
//! sources fetched over HTTPS ([`crawl`], docs/sources.md).

pub mod cache;
pub mod crawl;
pub mod https;
pub mod local;
pub mod settings;
pub mod wellknown;
pub mod wkd;

/// Bytes and a name for where they came from (a file path, later a URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub origin: String,
    pub bytes: Vec<u8>,
}

/// A source that could not be read; `origin` names it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{origin}: cannot read: {error}")]
    Io {
        origin: String,
        error: std::io::Error,
    },
    /// Larger than the limit for what it is; nothing of it was used.
    #[error("{origin}: larger than {limit} bytes, the limit for {what}")]
    TooLarge {
        origin: String,
        limit: u64,
        what: &'static str,
    },
    /// A symbolic link that points nowhere, or back into a directory being read.
    #[error("{origin}: {problem}; skipped")]
    Link {
        origin: String,
        problem: &'static str,
    },
}

impl ReadError {
    /// What is wrong, without the origin.
    pub fn detail(&self) -> String {
        match self {
            ReadError::Io { error, .. } => error.to_string(),
            ReadError::TooLarge { limit, what, .. } => {
                format!("larger than {limit} bytes, the limit for {what}")
            }
            ReadError::Link { problem, .. } => problem.to_string(),
        }
    }

    /// Where the problem is.
    pub fn origin(&self) -> &str {
        match self {
            ReadError::Io { origin, .. }
            | ReadError::TooLarge { origin, .. }
            | ReadError::Link { origin, .. } => origin,
        }
    }
}

/// Everything one refresh gathered, before any of it is judged: certificates
/// and statements as named bytes, and what could not be read.
#[derive(Debug, Default)]
pub struct Gathered {
    pub keyrings: Vec<Named>,
    pub statements: Vec<Named>,
    /// Sources that could not be read completely, one line each.
    pub problems: Vec<String>,
}

impl Gathered {
    /// Reads the local sources: keyring files and directories, and the
    /// `*.asc` statements of a directory (each bounded to `max_statement`).
    pub fn local(
        keyrings: &[std::path::PathBuf],
        statements_dir: &std::path::Path,
        max_statement: usize,
    ) -> Result<Gathered, ReadError> {
        let (keyrings, errors) = local::read_keyrings(keyrings);
        let (statements, unreadable) = local::read_statements(statements_dir, max_statement)?;
        let problems = errors
            .iter()
            .chain(unreadable.iter())
            .map(|e| e.to_string())
            .collect();
        Ok(Gathered {
            keyrings,
            statements,
            problems,
        })
    }
}
