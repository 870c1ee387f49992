//! The crawl: from the roots and the configured participants, fetch what the
//! trusted participants publish, re-running the trust engine between rounds.
//!
//! Everything fetched is only a candidate; the engine and the statement
//! rules decide. Per round: evaluate the keyring gathered so far; for every
//! key the engine trusts (or would, but refuses), fetch the statement and the
//! WKD certificate of each domain of its authenticated User IDs, and, when the
//! key can still introduce (depth < N), its published certifications. Stop
//! when a round wants nothing new, or at the bounds (`CrawlBounds`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::serialize::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::cache::Cache;
use super::https::{Budget, ClientError, FetchError, FetchErrorKind, Fetched, Fetcher};
use super::settings::SourcesSettings;
use super::wellknown::{Domain, SourceKind};
use super::{wkd, Gathered, Named};
use crate::model::settings::TrustSettings;
use crate::model::time::format_time;
use crate::wot::{evaluate_lazy, KeyStatus, Keyring, TrustEngine, TrustReport, VerifyCache};

/// What became of one source in this refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fetched now and used (and cached).
    Fetched,
    /// The participant does not publish it (404 or 410); its cached copy is
    /// forgotten, so a withdrawn statement is not kept alive.
    Absent,
    /// The fetch failed; the copy fetched at `fetched` was used.
    Stale { error: String, fetched: SystemTime },
    /// The fetch failed and there was no usable copy.
    Failed { error: String },
    /// Not fetched: the participant bound was reached.
    Skipped,
}

/// One source of one participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceReport {
    pub domain: Domain,
    pub kind: SourceKind,
    /// The URL asked for (the WKD method that answered, for `wkd`).
    pub url: String,
    pub outcome: Outcome,
    /// Body bytes fetched now.
    pub bytes: u64,
}

/// Everything a crawl gathered, and what happened on the way.
#[derive(Debug, Default)]
pub struct Crawled {
    /// Local and fetched inputs; fetched ones are named by their URL.
    /// `problems` holds the sources that failed with no copy to fall back on.
    pub gathered: Gathered,
    /// Failures covered by a cached copy, sources not published, WKD
    /// certificates dropped, bounds reached: worth a log line, not a refusal.
    pub notes: Vec<String>,
    /// Every source tried, in the order they completed within a round.
    pub sources: Vec<SourceReport>,
    /// Rounds run (engine evaluations that led to fetching).
    pub rounds: usize,
    /// Body bytes fetched in this refresh.
    pub bytes: u64,
}

/// Fetches participants' sources over HTTPS with a cache to fall back on.
#[derive(Clone, Debug)]
pub struct Crawler {
    fetcher: Fetcher,
    cache: Cache,
    settings: SourcesSettings,
}

impl Crawler {
    /// A crawler with the production HTTPS client (system trust store plus
    /// `extra_ca_file`) and its cache in `STATE_DIR/cache`.
    pub fn new(
        settings: &SourcesSettings,
        state_dir: &std::path::Path,
    ) -> Result<Crawler, ClientError> {
        Ok(Crawler::with_fetcher(
            Fetcher::new(settings)?,
            settings,
            state_dir,
        ))
    }

    /// A crawler over a given client (tests pin hosts to loopback).
    pub fn with_fetcher(
        fetcher: Fetcher,
        settings: &SourcesSettings,
        state_dir: &std::path::Path,
    ) -> Crawler {
        Crawler {
            cache: Cache::new(state_dir, settings.fetch.max_response_bytes),
            fetcher,
            settings: settings.clone(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Runs the crawl (see the module doc) on top of `local`, judging trust
    /// with `trust` and `policy` between rounds, within every bound.
    pub async fn gather(
        &self,
        local: Gathered,
        trust: &TrustSettings,
        policy: &dyn Policy,
    ) -> Crawled {
        self.gather_cached(local, trust, policy, &mut VerifyCache::new())
            .await
    }

    /// [`Crawler::gather`] with a cache of certification verifications
    /// that outlives the crawl (the daemon's persistent one), so the rounds'
    /// trust judgements verify nothing verified before.
    pub async fn gather_cached(
        &self,
        local: Gathered,
        trust: &TrustSettings,
        policy: &dyn Policy,
        verified: &mut VerifyCache,
    ) -> Crawled {
        let mut judge = |keyrings: &[Named]| {
            let (ring, _) = Keyring::parse(keyrings);
            evaluate_lazy(Arc::new(ring), trust, policy, verified)
        };
        self.gather_judged(local, trust, &mut judge).await
    }

    /// [`Crawler::gather`] judging trust through the daemon's engine: a
    /// round parses and judges only what the last one (or the last
    /// refresh) did not, and the plan after the crawl finds the engine
    /// filled with the keyrings it judges.
    pub async fn gather_engine(
        &self,
        local: Gathered,
        trust: &TrustSettings,
        engine: &mut TrustEngine,
    ) -> Crawled {
        let mut judge = |keyrings: &[Named]| engine.evaluate(keyrings, trust).report;
        self.gather_judged(local, trust, &mut judge).await
    }

    /// The crawl, with `judge` giving each round's verdicts on the
    /// keyrings gathered so far (under `trust`).
    async fn gather_judged(
        &self,
        local: Gathered,
        trust: &TrustSettings,
        judge: &mut (dyn FnMut(&[Named]) -> TrustReport + Send),
    ) -> Crawled {
        let bounds = &self.settings.crawl;
        let deadline = Instant::now() + bounds.max_time;
        let budget = Arc::new(Budget::new(bounds.max_total_bytes));
        let mut out = Crawled {
            gathered: local,
            ..Crawled::default()
        };
        let mut done: BTreeSet<(Domain, SourceKind)> = BTreeSet::new();
        let mut domains: BTreeSet<Domain> = BTreeSet::new();
        let mut over_bound: BTreeSet<Domain> = BTreeSet::new();
        let mut seeds = BTreeSet::new();
        for p in &self.settings.participants {
            match Domain::parse(p) {
                Ok(d) => {
                    seeds.insert((d.clone(), SourceKind::Statement));
                    seeds.insert((d, SourceKind::Wkd));
                }
                Err(e) => out
                    .gathered
                    .problems
                    .push(format!("participant {p:?}: {e}; not fetched")),
            }
        }
        loop {
            // Only the trusted and refused keys are read: the others are
            // not explained (nor their certifications verified).
            let report = judge(&out.gathered.keyrings);
            let mut wanted = seeds.clone();
            for key in report.trusted_or_refused(&trust.refuse) {
                let usable = key.status.is_trusted() || key.status == KeyStatus::Refused;
                if !usable {
                    continue;
                }
                for uid in &key.userids {
                    if !(uid.authenticated || uid.authenticated_if_not_refused) {
                        continue;
                    }
                    let Some(d) = uid.domain.as_deref().and_then(|d| Domain::parse(d).ok()) else {
                        continue;
                    };
                    wanted.insert((d.clone(), SourceKind::Statement));
                    wanted.insert((d.clone(), SourceKind::Wkd));
                    if key.introducer && bounds.enabled {
                        wanted.insert((d, SourceKind::Certified));
                    }
                }
            }
            let mut batch: Vec<(Domain, SourceKind)> = Vec::new();
            for (d, kind) in wanted {
                if done.contains(&(d.clone(), kind)) {
                    continue;
                }
                if !domains.contains(&d) {
                    if domains.len() >= bounds.max_participants {
                        done.insert((d.clone(), kind));
                        out.sources.push(SourceReport {
                            url: url_of(&d, kind),
                            domain: d.clone(),
                            kind,
                            outcome: Outcome::Skipped,
                            bytes: 0,
                        });
                        if over_bound.insert(d.clone()) {
                            out.gathered.problems.push(format!(
                                "{d}: not fetched: more than {} participants (crawl.max_participants)",
                                bounds.max_participants
                            ));
                        }
                        continue;
                    }
                    domains.insert(d.clone());
                }
                done.insert((d.clone(), kind));
                batch.push((d, kind));
            }
            if batch.is_empty() {
                break;
            }
            out.rounds += 1;
            let results = self.fetch_all(batch, deadline, &budget).await;
            for (d, kind, result) in results {
                self.take(&mut out, d, kind, result);
            }
        }
        out
    }

    /// Fetches a batch, at most `max_concurrent` at once, each within the
    /// refresh's deadline and byte budget.
    async fn fetch_all(
        &self,
        batch: Vec<(Domain, SourceKind)>,
        deadline: Instant,
        budget: &Arc<Budget>,
    ) -> Vec<(Domain, SourceKind, Result<Fetched, FetchError>)> {
        let gate = Arc::new(Semaphore::new(self.settings.fetch.max_concurrent.max(1)));
        let mut set = JoinSet::new();
        for (d, kind) in batch {
            let (fetcher, gate, budget) = (self.fetcher.clone(), gate.clone(), budget.clone());
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let r = fetch_one(&fetcher, &d, kind, deadline, &budget).await;
                (d, kind, r)
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(r) = joined {
                out.push(r);
            }
        }
        out
    }

    /// Uses a result: the fetched bytes, or the cached copy, or a problem.
    fn take(
        &self,
        out: &mut Crawled,
        d: Domain,
        kind: SourceKind,
        result: Result<Fetched, FetchError>,
    ) {
        let mut report = SourceReport {
            url: url_of(&d, kind),
            domain: d.clone(),
            kind,
            outcome: Outcome::Fetched,
            bytes: 0,
        };
        let error = match result {
            Ok(f) => {
                report.url = f.url.clone();
                report.bytes = f.bytes.len() as u64;
                out.bytes += f.bytes.len() as u64;
                match use_body(out, &d, kind, &f.url, &f.bytes) {
                    Ok(()) => {
                        if let Err(e) =
                            self.cache
                                .store(&d, kind, &f.url, SystemTime::now(), &f.bytes)
                        {
                            out.notes.push(e.to_string());
                        }
                        out.sources.push(report);
                        return;
                    }
                    Err(unusable) => unusable,
                }
            }
            Err(e) if e.kind.is_absent() => {
                report.url = e.url.clone();
                report.outcome = Outcome::Absent;
                if let Err(e) = self.cache.remove(&d, kind) {
                    out.notes.push(e.to_string());
                }
                out.notes.push(format!("{e}: not published"));
                out.sources.push(report);
                return;
            }
            Err(e) => {
                report.url = e.url.clone();
                e.to_string()
            }
        };
        let cached = match self.cache.load(&d, kind) {
            Ok(c) => c,
            Err(e) => {
                out.notes.push(e.to_string());
                None
            }
        };
        match cached {
            Some(c) if use_body(out, &d, kind, &c.url, &c.bytes).is_ok() => {
                out.notes.push(format!(
                    "{error}; using the copy fetched at {} from {}",
                    format_time(c.fetched),
                    c.url
                ));
                report.outcome = Outcome::Stale {
                    error,
                    fetched: c.fetched,
                };
            }
            _ => {
                out.gathered
                    .problems
                    .push(format!("{error} (no earlier copy to use)"));
                report.outcome = Outcome::Failed { error };
            }
        }
        out.sources.push(report);
    }
}

/// The URL a source is known by before it is fetched.
fn url_of(d: &Domain, kind: SourceKind) -> String {
    match kind {
        SourceKind::Statement => d.statement_url(),
        SourceKind::Certified => d.certified_url(),
        SourceKind::Wkd => wkd::urls(&d.wkd_address())
            .map(|u| u.advanced)
            .unwrap_or_else(|_| d.wkd_address()),
    }
}

/// Adds a body to what was gathered, or says why it cannot be used (then
/// nothing of it is added). Certificates are parsed and statements' shape
/// checked here so that a garbage answer is one participant's failure (its
/// last good copy is used), not an input of the plan.
fn use_body(
    out: &mut Crawled,
    d: &Domain,
    kind: SourceKind,
    url: &str,
    bytes: &[u8],
) -> Result<(), String> {
    let named = |bytes| Named {
        origin: url.to_string(),
        bytes,
    };
    match kind {
        SourceKind::Statement => {
            // Only the shape is checked here (armour, one signed literal):
            // an error page or garbage served with 200 is the server's
            // failure, so the last good copy is used; a well-formed
            // statement is judged by the rules like any other.
            crate::statement::signed::peek(bytes)
                .map_err(|e| format!("{url}: not a signed statement: {e}"))?;
            out.gathered.statements.push(named(bytes.to_vec()))
        }
        SourceKind::Wkd => {
            let f = wkd::filter(url, d, bytes)?;
            out.notes.extend(f.dropped.iter().cloned());
            out.gathered.keyrings.push(named(f.to_bytes()));
        }
        SourceKind::Certified => {
            let (certs, notes) = parse_certs(url, bytes)?;
            out.notes.extend(notes);
            out.gathered.keyrings.push(named(certs));
        }
    }
    Ok(())
}

/// The readable certificates of a published keyring, re-serialised, and a
/// note per unreadable part; an error when none is readable.
fn parse_certs(url: &str, bytes: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
    let parser =
        CertParser::from_bytes(bytes).map_err(|e| format!("{url}: not an OpenPGP keyring: {e}"))?;
    let (mut out, mut notes, mut n) = (Vec::new(), Vec::new(), 0usize);
    for item in parser {
        match item {
            Ok(c) => {
                n += 1;
                let _ = c.strip_secret_key_material().serialize(&mut out);
            }
            Err(e) => notes.push(format!(
                "{url}: unreadable data after {n} certificate(s): {e}"
            )),
        }
    }
    if n == 0 {
        return Err(format!("{url}: no readable certificate"));
    }
    Ok((out, notes))
}

/// One fetch within the deadline and the refresh's byte budget.
async fn fetch_one(
    fetcher: &Fetcher,
    d: &Domain,
    kind: SourceKind,
    deadline: Instant,
    budget: &Budget,
) -> Result<Fetched, FetchError> {
    let not = |why| FetchError {
        url: url_of(d, kind),
        kind: FetchErrorKind::NotAttempted(why),
    };
    if Instant::now() >= deadline {
        return Err(not("the refresh's time bound (crawl.max_time) was reached"));
    }
    if budget.is_spent() {
        return Err(not(
            "the refresh's byte budget (crawl.max_total_bytes) is spent",
        ));
    }
    let fetch = async {
        match kind {
            SourceKind::Statement => fetcher.get_within(&d.statement_url(), budget).await,
            SourceKind::Certified => fetcher.get_within(&d.certified_url(), budget).await,
            SourceKind::Wkd => wkd::fetch(fetcher, d, budget).await,
        }
    };
    match tokio::time::timeout_at(deadline, fetch).await {
        Ok(r) => r,
        Err(_) => Err(not("the refresh's time bound (crawl.max_time) was reached")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_keyring_keeps_what_parses() {
        let c = CertBuilder::new()
            .add_userid("<postmaster@beta.example>")
            .generate()
            .unwrap()
            .0;
        let mut bytes = Vec::new();
        c.serialize(&mut bytes).unwrap();
        let (kept, notes) = parse_certs("U", &bytes).unwrap();
        assert!(!kept.is_empty());
        assert!(notes.is_empty());
        let e = parse_certs("U", b"<html>").unwrap_err();
        assert!(e.starts_with("U: "), "{e}");
    }
}
