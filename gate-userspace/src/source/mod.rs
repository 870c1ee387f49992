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
#[error("{origin}: cannot read: {source}")]
pub struct ReadError {
    pub origin: String,
    pub source: std::io::Error,
}
