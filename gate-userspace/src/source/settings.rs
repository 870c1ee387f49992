//! What the fetched sources may cost: per-fetch limits (time, bytes,
//! redirects, concurrency) and the crawl's bounds (participants, bytes, time).

use std::path::PathBuf;
use std::time::Duration;

/// Limits on one HTTPS fetch and on fetching at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Whole request, connection to last byte (default 10 s).
    pub timeout: Duration,
    /// TCP and TLS connection set-up (default 5 s).
    pub connect_timeout: Duration,
    /// Largest response body read; a larger one is an error (default 1 MiB).
    pub max_response_bytes: u64,
    /// Fetches in flight at once (default 8).
    pub max_concurrent: usize,
    /// Redirects followed per fetch, never to plain HTTP (default 3).
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
            max_concurrent: 8,
            max_redirects: 3,
        }
    }
}

/// How far the crawl of published certifications goes (the trust depth
/// bounds it too: keys beyond it are never fetched from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrawlBounds {
    /// Follow trusted participants' published certifications (default on).
    pub enabled: bool,
    /// Most participant domains fetched from in one refresh (default 1000).
    pub max_participants: usize,
    /// Most bytes fetched in one refresh, all sources together (default 64 MiB).
    pub max_total_bytes: u64,
    /// Longest a refresh's fetching may take (default 60 s).
    pub max_time: Duration,
}

impl Default for CrawlBounds {
    fn default() -> Self {
        CrawlBounds {
            enabled: true,
            max_participants: 1000,
            max_total_bytes: 64 << 20,
            max_time: Duration::from_secs(60),
        }
    }
}

/// The fetched sources: which participants seed the crawl, and its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourcesSettings {
    /// Participant mail domains whose keys (WKD), statements and published
    /// certifications are fetched; the crawl starts from them and the roots.
    pub participants: Vec<String>,
    pub fetch: FetchLimits,
    pub crawl: CrawlBounds,
    /// PEM file of CA certificates trusted besides the system's store.
    pub extra_ca_file: Option<PathBuf>,
}
