//! One refresh, without the kernel: gather the local sources and crawl the
//! participants' published ones, judge them (`apply::prepare_gathered`), merge
//! the static overrides, and find when the result next changes by itself.

use std::path::Path;
use std::time::SystemTime;

use sequoia_openpgp::policy::Policy;

use crate::apply::{prepare_gathered_cached, prepare_gathered_engine, ApplyError, Prepared};
use crate::model::config::Config;
use crate::model::prefixes::{PrefixError, PrefixSet, Verdict};
use crate::model::time::to_system_time;
use crate::source::crawl::Crawler;
use crate::source::Gathered;
use crate::wot::{IntroducerMode, TrustEngine, TrustSettings, VerifyCache};

/// Why a plan could not be built; the current set stays.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("static overrides ([gate] static_prefixes): {0}")]
    Static(PrefixError),
    #[error("fetched sources: {0}")]
    Client(#[from] crate::source::https::ClientError),
}

/// A plan ready to load, and when it next changes without any input changing.
#[derive(Debug)]
pub struct Built {
    pub prepared: Prepared,
    /// The earliest statement `not_after` or key expiry after `at`.
    pub next_expiry: Option<SystemTime>,
    /// Fetched sources that failed or were cut by a bound, one line each:
    /// logged and counted, not a reason to refuse the plan (a source with no
    /// copy simply contributes nothing; the load guard still refuses a plan
    /// that loses too much, e.g. when every source is down).
    pub fetch_notes: Vec<String>,
    /// Per-source outcomes of the crawl (empty without participants).
    pub sources: Vec<crate::source::crawl::SourceReport>,
    /// Keys the trust engine trusts (roots included), for the metrics.
    pub trusted_keys: usize,
}

/// Builds the complete plan for `at` from the configuration's local sources
/// and its static overrides.
/// (A one-off computation: the verification cache is read from the state
/// directory; see [`build_with`] for the daemon's engine.)
pub fn build(cfg: &Config, policy: &dyn Policy, at: SystemTime) -> Result<Built, BuildError> {
    let mut cache = load_cache(cfg);
    build_from(cfg, policy, at, &mut cache, None)
}

/// [`build`] through the daemon's [`TrustEngine`], kept between refreshes:
/// only keyring certificates that changed are parsed and judged again, and
/// the verification cache stays in memory (saved when it grew).
pub fn build_with(
    cfg: &Config,
    engine: &mut TrustEngine,
    at: SystemTime,
) -> Result<Built, BuildError> {
    let policy = engine.policy();
    let mut cache = engine.cache().clone();
    build_from(cfg, &*policy, at, &mut cache, Some(engine))
}

/// The verification cache saved in the state directory (empty, with a
/// warning, when unusable): certifications verified by an earlier process
/// are not verified again.
pub fn load_cache(cfg: &Config) -> VerifyCache {
    let (cache, why) = VerifyCache::load(&cfg.state_directory);
    if let Some(why) = why {
        tracing::warn!("verification cache ignored: {why}");
    }
    cache
}

/// Gathers, crawls, judges (through `engine` when given, which shares
/// `cache`), and finishes the plan.
fn build_from(
    cfg: &Config,
    policy: &dyn Policy,
    at: SystemTime,
    cache: &mut VerifyCache,
    mut engine: Option<&mut TrustEngine>,
) -> Result<Built, BuildError> {
    let local = Gathered::local(&cfg.keyrings, &cfg.statements_directory, cfg.rules.max_size)
        .map_err(ApplyError::Statements)?;
    // Certifications verified before are not verified again, neither by
    // the crawl's trust judgements nor by the plan's.
    let (gathered, fetch_notes, sources) =
        crawl(cfg, local, policy, at, cache, engine.as_deref_mut())?;
    let mut prepared: Prepared = match engine {
        Some(engine) => prepare_gathered_engine(cfg, gathered, at, engine)?,
        None => prepare_gathered_cached(cfg, gathered, policy, at, cache)?,
    };
    if cache.added() > 0 {
        if let Err(e) = cache.save(&cfg.state_directory) {
            tracing::warn!(error = %e, "could not save the verification cache (only costs time)");
        }
    }
    let trusted_keys = prepared.trusted_keys;
    if let Some(path) = &cfg.gate.static_prefixes {
        let overrides = load_static(path)?;
        prepared.set = merge_overrides(&prepared.set, &overrides);
    }
    let statement_expiry = prepared
        .judgements
        .iter()
        .filter_map(|j| j.result.as_ref().ok())
        // Valid in [not_before, not_after): judged expired from its
        // `not_after` second on (statement::accept), so refresh then.
        .map(|a| to_system_time(a.statement.not_after))
        .filter(|t| *t > at)
        .min();
    let next_expiry = [statement_expiry, prepared.key_expiry]
        .into_iter()
        .flatten()
        .min();
    Ok(Built {
        prepared,
        next_expiry,
        fetch_notes,
        sources,
        trusted_keys,
    })
}

/// Crawls the participants' published sources when `[sources] participants`
/// names any (without participants the daemon reads local sources only),
/// judging trust between rounds through `engine` when given.
/// Runs on the daemon's runtime when called from one of its blocking
/// threads, else on a runtime of its own.
#[allow(clippy::type_complexity)]
fn crawl(
    cfg: &Config,
    local: Gathered,
    policy: &dyn Policy,
    at: SystemTime,
    cache: &mut VerifyCache,
    engine: Option<&mut TrustEngine>,
) -> Result<
    (
        Gathered,
        Vec<String>,
        Vec<crate::source::crawl::SourceReport>,
    ),
    BuildError,
> {
    if cfg.sources.participants.is_empty() {
        return Ok((local, Vec::new(), Vec::new()));
    }
    let crawler = Crawler::new(&cfg.sources, &cfg.state_directory)?;
    let local_problems = local.problems.len();
    let trust = crawl_trust(cfg, at);
    let mut crawled = match engine {
        Some(engine) => block_on(crawler.gather_engine(local, &trust, engine))?,
        None => block_on(crawler.gather_cached(local, &trust, policy, cache))?,
    };
    let mut notes = crawled.gathered.problems.split_off(local_problems);
    notes.append(&mut crawled.notes);
    Ok((crawled.gathered, notes, crawled.sources))
}

/// Runs `fut` on the daemon's runtime when called from one of its blocking
/// threads, else on a runtime of its own.
fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, BuildError> {
    Ok(match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(fut),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                ApplyError::Statements(crate::source::ReadError::Io {
                    origin: "the fetch runtime".into(),
                    error: e,
                })
            })?
            .block_on(fut),
    })
}

/// The settings the crawl follows: the system's web, widened to reach what
/// any per-recipient web trusts (every root, the deepest depth, refusals
/// and ignored introducers only where every web has them).
fn crawl_trust(cfg: &Config, at: SystemTime) -> TrustSettings {
    let mut t = cfg.trust_at(at);
    for (_, w) in crate::apply::recipient_webs(cfg, at) {
        t.roots.extend(w.roots);
        t.depth = t.depth.max(w.depth);
        if w.mode == IntroducerMode::Certifications {
            t.mode = IntroducerMode::Certifications;
        }
        t.refuse.retain(|f| w.refuse.contains(f));
        t.ignore_certifications_by
            .retain(|f| w.ignore_certifications_by.contains(f));
    }
    t
}

fn load_static(path: &Path) -> Result<PrefixSet, BuildError> {
    PrefixSet::load(path).map_err(BuildError::Static)
}

/// The plan's set with the operator's overrides merged in. At the same
/// prefix deny wins (as in the gate); an override's deny also removes the
/// plan's allows inside it, so a statement's narrower allow cannot undo it;
/// otherwise the longest prefix decides, as in the kernel.
pub fn merge_overrides(plan: &PrefixSet, overrides: &PrefixSet) -> PrefixSet {
    let denied = |p: &ipnet::Ipv6Net| {
        overrides
            .iter()
            .any(|o| o.verdict == Verdict::Deny && o.prefix.contains(p))
    };
    let mut out = PrefixSet::new();
    for e in overrides.iter().filter(|e| e.verdict == Verdict::Deny) {
        let _ = out.insert(e.clone());
    }
    for e in plan.iter() {
        if e.verdict == Verdict::Allow && denied(&e.prefix) {
            continue;
        }
        if e.verdict == Verdict::Deny || out.get(&e.prefix).is_none() {
            // Same verdict twice keeps the first; a deny after an allow of
            // the same prefix cannot happen (allows come last).
            let _ = out.insert(e.clone());
        }
    }
    for e in overrides.iter().filter(|e| e.verdict == Verdict::Allow) {
        // Inserting an allow where a deny is refused: deny wins.
        let _ = out.insert(e.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(t: &str) -> PrefixSet {
        PrefixSet::parse(t, "t").unwrap()
    }

    #[test]
    fn overrides_merge_and_deny_wins() {
        let plan = set("allow 2001:db8:a::/48 alpha\nallow 2001:db8:b::/48 beta\ndeny 2001:db8:a:bad::/64 mallory\nallow 2001:db8:c:1::/64 gamma\n");
        let overrides = set("allow 2001:db8:f::/48 relay\ndeny 2001:db8:b::/48 op\nallow 2001:db8:a:bad::/64 op\ndeny 2001:db8:c::/48 op\n");
        let merged = merge_overrides(&plan, &overrides);
        assert_eq!(
            merged.to_file_text(),
            "allow 2001:db8:a::/48 alpha\n\
             deny 2001:db8:a:bad::/64 mallory\n\
             deny 2001:db8:b::/48 op\n\
             deny 2001:db8:c::/48 op\n\
             allow 2001:db8:f::/48 relay\n"
        );
        // No overrides: the plan as it is.
        assert_eq!(merge_overrides(&plan, &PrefixSet::new()), plan);
    }
}
