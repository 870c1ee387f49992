//! The policy server's counters for `/metrics`: plain atomics the
//! connections add to per reply (no lock), read whole at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::verdict::{Checks, Counted, Stage, Tally};

/// `wotgate_policy_requests_total{stage}`.
pub const STAGES: [&str; 3] = ["rcpt", "data", "other"];
/// `wotgate_policy_verdicts_total{result}`.
pub const RESULTS: [&str; 4] = ["pass", "fail", "defer", "dunno"];
/// `wotgate_policy_failures_total{check}`.
pub const CHECKS: [&str; 5] = Checks::NAMES;

/// What the counters said when read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounts {
    /// Requests answered, per [`STAGES`] entry.
    pub requests: [u64; 3],
    /// Per [`RESULTS`] entry.
    pub verdicts: [u64; 4],
    /// Failed checks, per [`CHECKS`] entry.
    pub failures: [u64; 5],
    /// Connections open now.
    pub connections: u64,
    /// Connections closed at once because `policy.max_connections` were open.
    pub refused: u64,
}

/// The live counters, shared by every connection.
#[derive(Debug, Default)]
pub struct Counters {
    requests: [AtomicU64; 3],
    verdicts: [AtomicU64; 4],
    failures: [AtomicU64; 5],
    connections: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    /// Counts one answered request.
    pub fn record(&self, t: &Tally) {
        let stage = match t.stage {
            Stage::Rcpt => 0,
            Stage::Data => 1,
            Stage::Other => 2,
        };
        self.requests[stage].fetch_add(1, Relaxed);
        let verdict = match t.verdict {
            Counted::Pass => 0,
            Counted::Fail => 1,
            Counted::Defer => 2,
            Counted::Dunno => 3,
        };
        self.verdicts[verdict].fetch_add(1, Relaxed);
        if let Some(i) = t.failed.and_then(|c| CHECKS.iter().position(|n| *n == c)) {
            self.failures[i].fetch_add(1, Relaxed);
        }
    }

    /// A connection opened; it counts until the guard is dropped.
    pub fn open(&self) -> OpenConnection<'_> {
        self.connections.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    /// A connection refused over `policy.max_connections`.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// The counts now (each counter read once; they may move meanwhile).
    pub fn read(&self) -> PolicyCounts {
        let all = |a: &[AtomicU64]| -> Vec<u64> { a.iter().map(|c| c.load(Relaxed)).collect() };
        let mut c = PolicyCounts {
            connections: self.connections.load(Relaxed),
            refused: self.refused.load(Relaxed),
            ..PolicyCounts::default()
        };
        c.requests.copy_from_slice(&all(&self.requests));
        c.verdicts.copy_from_slice(&all(&self.verdicts));
        c.failures.copy_from_slice(&all(&self.failures));
        c
    }
}

/// Counts an open connection while it lives.
pub struct OpenConnection<'a>(&'a Counters);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_verdicts_failures_and_connections() {
        let c = Counters::default();
        c.record(&Tally {
            stage: Stage::Rcpt,
            verdict: Counted::Pass,
            failed: None,
        });
        c.record(&Tally {
            stage: Stage::Data,
            verdict: Counted::Fail,
            failed: Some("tls-key"),
        });
        c.record(&Tally::default());
        let open = c.open();
        let _second = c.open();
        drop(open);
        c.refuse();
        assert_eq!(
            c.read(),
            PolicyCounts {
                requests: [1, 1, 1],
                verdicts: [1, 1, 0, 1],
                failures: [0, 0, 0, 1, 0],
                connections: 1,
                refused: 1,
            }
        );
    }
}
