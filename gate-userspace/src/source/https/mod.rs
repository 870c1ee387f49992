//! The HTTPS client for fetched sources: rustls (ring) over the system's trust
//! store plus an optional extra CA, with every limit of [`FetchLimits`] enforced.
//!
//! Redirects are followed here, not by reqwest, so that each hop is checked
//! (never to plain HTTP, at most `max_redirects`) and named in errors. Bodies
//! are read chunk by chunk and cut at the cap: a larger body is never read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::settings::FetchLimits;

mod builder;
mod error;
mod fetch;

pub use error::{ClientError, FetchError, FetchErrorKind};

/// The User-Agent every request carries.
pub const USER_AGENT: &str = concat!("wotgate/", env!("CARGO_PKG_VERSION"));

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URL asked for.
    pub url: String,
    /// The URL that answered (after redirects).
    pub final_url: String,
    pub bytes: Vec<u8>,
}

/// Body bytes that the fetches of one refresh may read together
/// (`CrawlBounds::max_total_bytes`). Bytes are taken as they arrive, so
/// concurrent fetches share it without reserving their whole cap.
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Budget {
        Budget {
            left: AtomicU64::new(total),
            total,
        }
    }

    pub fn unlimited() -> Budget {
        Budget::new(u64::MAX)
    }

    /// Takes `n` bytes; false (taking nothing) when fewer are left.
    pub fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    pub fn left(&self) -> u64 {
        self.left.load(Ordering::SeqCst)
    }

    pub fn is_spent(&self) -> bool {
        self.left() == 0
    }
}

/// How to build a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetcherBuilder {
    limits: FetchLimits,
    system_roots: bool,
    extra_ca_file: Option<PathBuf>,
    extra_ca_pem: Vec<u8>,
    pins: Vec<(String, SocketAddr)>,
    pinned_only: bool,
}

/// An HTTPS client for participants' sources. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: FetchLimits,
    /// Hosts pinned to a loopback port (tests); empty in production.
    ports: Arc<HashMap<String, u16>>,
    pinned_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_taken_never_overspent() {
        let b = Budget::new(250);
        assert!(b.take(100));
        assert!(b.take(100));
        assert!(!b.take(100));
        assert_eq!(b.left(), 50);
        assert!(b.take(50));
        assert!(b.is_spent());
    }

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(USER_AGENT, format!("wotgate/{}", env!("CARGO_PKG_VERSION")));
    }
}
