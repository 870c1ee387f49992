//! Where inputs come from. Every source yields [`Named`] bytes (what, and from
//! where) for the parsers; reading local files is one source, fetching will be others.

pub mod local;

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
