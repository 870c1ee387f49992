//! The errors of building a client and of fetching, and how the causes
//! of a reqwest error are put in words.

use std::path::PathBuf;
use std::time::Duration;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: cannot read the extra CA file: {error}")]
    CaFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {problem}")]
    CaContent { path: PathBuf, problem: String },
    #[error("no trusted CA certificate: the system store is empty or unreadable and no extra CA file is configured")]
    NoRoots,
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// A fetch that failed; `url` is the URL asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {kind}")]
pub struct FetchError {
    pub url: String,
    pub kind: FetchErrorKind,
}

/// What went wrong, in variants a daemon can count ([`FetchErrorKind::label`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchErrorKind {
    #[error("not a valid https URL: {0}")]
    BadUrl(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("response body larger than {limit} bytes; cut there and not used")]
    TooLarge { limit: u64 },
    /// The refresh's byte budget (`max_total_bytes`) ran out during this fetch.
    #[error("the refresh's byte budget of {limit} bytes (crawl.max_total_bytes) ran out while reading; not used")]
    BudgetExhausted { limit: u64 },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("redirect to plain http refused ({0})")]
    RedirectToHttp(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    #[error("{0}")]
    Http(String),
    /// Not attempted: a bound of the refresh (time) was reached first.
    #[error("not fetched: {0}")]
    NotAttempted(&'static str),
}

impl FetchErrorKind {
    /// A short stable name, for metrics labels and counting.
    pub fn label(&self) -> &'static str {
        match self {
            FetchErrorKind::BadUrl(_) => "bad_url",
            FetchErrorKind::Timeout(_) => "timeout",
            FetchErrorKind::TooLarge { .. } => "too_large",
            FetchErrorKind::BudgetExhausted { .. } => "budget",
            FetchErrorKind::Tls(_) => "tls",
            FetchErrorKind::Connect(_) => "connect",
            FetchErrorKind::Status(_) => "status",
            FetchErrorKind::RedirectToHttp(_) => "redirect_to_http",
            FetchErrorKind::TooManyRedirects(_) => "too_many_redirects",
            FetchErrorKind::BadRedirect(_) => "bad_redirect",
            FetchErrorKind::Http(_) => "http",
            FetchErrorKind::NotAttempted(_) => "not_attempted",
        }
    }

    /// The server answered that there is nothing there (404 or 410).
    pub fn is_absent(&self) -> bool {
        matches!(self, FetchErrorKind::Status(404 | 410))
    }
}

/// The rustls error somewhere in the chain, as text. `io::Error::source`
/// skips the error it wraps, so wrapped errors are opened with `get_ref`.
pub(super) fn find_tls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return find_tls(inner);
        }
        cur = err.source();
    }
    None
}

/// An error's causes on one line, each said once, leaving out reqwest's
/// own "error sending request for url (...)" (which names the wire URL,
/// with a test's port; the caller names the URL).
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<reqwest::Error>().is_none() {
            push(err.to_string());
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_url_and_the_reason() {
        let e = FetchError {
            url: "https://alpha.example/.well-known/wotgate/statement.asc".into(),
            kind: FetchErrorKind::TooLarge { limit: 1024 },
        };
        assert_eq!(
            e.to_string(),
            "https://alpha.example/.well-known/wotgate/statement.asc: response body larger than 1024 bytes; cut there and not used"
        );
        assert_eq!(e.kind.label(), "too_large");
        assert!(FetchErrorKind::Status(404).is_absent());
        assert!(!FetchErrorKind::Status(500).is_absent());
    }
}
