//! The one step from inputs to the kernel: judge statements, build the plan,
//! diff it against the loaded set, load it through the swap, record serials.
//!
//! The CLI's `plan --load` calls it today; the daemon will call it on every
//! refresh. [`prepare`] is pure (no kernel); [`Prepared::load`] touches the gate.

use std::path::Path;
use std::time::SystemTime;

use sequoia_openpgp::policy::Policy;

mod delta;
mod guard;

pub use delta::Delta;

pub use guard::{GuardError, LoadGuard, MIN_ALLOW_LEN};

use crate::gate::{swap::LoadReport, Gate, GateError};
use crate::model::config::Config;
use crate::model::prefixes::{PrefixSet, Verdict};
use crate::model::settings::{AcceptRules, TestingPolicy};
use crate::model::time::{format_time, to_system_time, to_timestamp, Timestamp};
use crate::plan::{Plan, PlanDiff, PlanError};
use crate::source::{Gathered, Named, ReadError};
use crate::statement::{state::StateError, Acceptor, Judgement, SerialState, TrustView, WotView};
use crate::webs::Webs;
use crate::wot::{Keyring, SharedGraph, TrustEngine, VerifyCache};

/// Why a plan could not be prepared or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("statements directory: {0}")]
    Statements(ReadError),
    #[error("rollback state: {0}")]
    State(StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Gate(#[from] GateError),
    /// Some input could not be read completely; nothing was loaded.
    #[error("refusing to load: {} input problem(s), so the plan may be missing trusted peers: {}; nothing was loaded (fix the inputs, or force the load)", problems.len(), problems.join("; "))]
    Incomplete { problems: Vec<String> },
    /// The guard refused the new set; nothing was loaded.
    #[error(transparent)]
    Guard(Box<GuardError>),
    /// The set IS in the kernel; only the rollback state is behind.
    #[error("the plan IS loaded ({} entries, generation {}) and the gate enforces it, but the accepted serials could not be recorded in the state directory, which still holds the previous serials (rollback protection lags until the next successful load): {error}", load.entries, load.generation)]
    RecordAfterLoad {
        load: Box<LoadReport>,
        error: StateError,
    },
}

/// A judged plan, ready to load.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub judgements: Vec<Judgement>,
    /// The kernel set of the plan (folded, labelled).
    pub set: PrefixSet,
    /// Inputs that could not be read completely (unreadable or corrupt
    /// keyring files, roots missing from every keyring), one line each. The
    /// plan is still shown, but [`Prepared::load`] refuses it unless forced.
    pub problems: Vec<String>,
    /// The rollback state the statements were judged against.
    pub state: SerialState,
    /// Keys the trust engine trusts (roots included); 0 when `prepare` was
    /// given a trust view without an engine report.
    pub trusted_keys: usize,
    /// Every web's accepted statements when per-recipient webs are
    /// configured; `set` is then their union (`Webs::union_set`).
    pub webs: Option<Webs>,
    /// The earliest expiry after the judging time of any key or subkey in
    /// the keyring (it can end a signer's or an introducer's trust); `None`
    /// when `prepare` was given a trust view without a keyring.
    pub key_expiry: Option<SystemTime>,
}

/// What loading did.
#[derive(Debug)]
pub struct Applied {
    /// Changes against the set that was loaded before.
    pub diff: PlanDiff,
    /// The swap; when `unchanged`, the set already enforced (its trie and
    /// generation, nothing cleared or filled, zero times).
    pub load: LoadReport,
    /// The kernel enforced this very set already (same digest): nothing
    /// was swapped and the generation stays.
    pub unchanged: bool,
    /// Domains and serials now recorded for rollback protection.
    pub recorded: Vec<(String, u64)>,
}

/// Judges `statements` against `trust` and the rollback `state`, and builds
/// the plan and its kernel set.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    rules: &AcceptRules,
    testing: TestingPolicy,
    trust: &dyn TrustView,
    statements: &[Named],
    state: SerialState,
    policy: &dyn Policy,
    at: SystemTime,
    problems: Vec<String>,
) -> Result<Prepared, ApplyError> {
    let acceptor = Acceptor {
        rules,
        trust,
        policy,
        at,
        state: &state,
    };
    let judgements = acceptor.judge_all(
        statements
            .iter()
            .map(|n| (n.origin.as_str(), n.bytes.as_slice())),
    );
    let accepted: Vec<_> = judgements
        .iter()
        .filter_map(|j| j.result.as_ref().ok().cloned())
        .collect();
    let rejected: Vec<_> = judgements
        .iter()
        .filter_map(|j| j.result.as_ref().err().cloned())
        .collect();
    let plan = Plan::build(&format_time(at), &accepted, rejected, testing);
    let set = plan.to_prefix_set()?;
    Ok(Prepared {
        plan,
        judgements,
        set,
        problems,
        state,
        trusted_keys: 0,
        webs: None,
        key_expiry: None,
    })
}

/// Everything `wotgate plan` does before printing, from the configuration's
/// local sources: keyrings, trust, statements, rollback state, plan.
pub fn prepare_from_config(
    cfg: &Config,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<Prepared, ApplyError> {
    let gathered = Gathered::local(&cfg.keyrings, &cfg.statements_directory, cfg.rules.max_size)
        .map_err(ApplyError::Statements)?;
    prepare_gathered(cfg, gathered, policy, at)
}

/// Judges what a refresh gathered (from any sources) with the
/// configuration's trust settings, rules and rollback state.
pub fn prepare_gathered(
    cfg: &Config,
    gathered: Gathered,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<Prepared, ApplyError> {
    prepare_gathered_cached(cfg, gathered, policy, at, &mut VerifyCache::new())
}

/// [`prepare_gathered`] with a cache of certification verifications that
/// outlives the call (the daemon keeps it in its state directory).
pub fn prepare_gathered_cached(
    cfg: &Config,
    gathered: Gathered,
    policy: &dyn Policy,
    at: SystemTime,
    cache: &mut VerifyCache,
) -> Result<Prepared, ApplyError> {
    let (keyring, parse_problems) = Keyring::parse(&gathered.keyrings);
    let (view, missing) = WotView::evaluate_cached(keyring, &cfg.trust_at(at), policy, cache);
    let parse_problems = parse_problems.iter().map(|p| p.to_string()).collect();
    judge_with_view(
        cfg,
        gathered,
        view,
        parse_problems,
        missing,
        policy,
        at,
        cache,
    )
}

/// [`prepare_gathered_cached`] through a [`TrustEngine`] kept between
/// refreshes (the daemon's): only what changed is parsed and judged again;
/// the engine's policy and verification cache are used throughout.
pub fn prepare_gathered_engine(
    cfg: &Config,
    gathered: Gathered,
    at: SystemTime,
    engine: &mut TrustEngine,
) -> Result<Prepared, ApplyError> {
    let ev = engine.evaluate(&gathered.keyrings, &cfg.trust_at(at));
    let parse_problems = ev.problems.iter().map(|p| p.to_string()).collect();
    let (view, missing) = WotView::from_report(ev.keyring, ev.report);
    let policy = engine.policy();
    let mut cache = engine.cache().clone();
    judge_with_view(
        cfg,
        gathered,
        view,
        parse_problems,
        missing,
        &*policy,
        at,
        &mut cache,
    )
}

/// The statements of `gathered` judged against a computed trust view; the
/// problems are the sources', the keyrings' and the missing roots', in
/// that order.
#[allow(clippy::too_many_arguments)]
fn judge_with_view(
    cfg: &Config,
    gathered: Gathered,
    view: WotView,
    parse_problems: Vec<String>,
    missing: Vec<String>,
    policy: &dyn Policy,
    at: SystemTime,
    cache: &mut VerifyCache,
) -> Result<Prepared, ApplyError> {
    let mut problems = gathered.problems;
    problems.extend(parse_problems);
    problems.extend(missing);
    let trusted_keys = view.report.trusted_count();
    let key_expiry = next_key_expiry(&view.keyring, policy, at);
    let state = SerialState::load(&cfg.state_directory).map_err(ApplyError::State)?;
    let prepared = prepare(
        &cfg.rules,
        cfg.testing,
        &view,
        &gathered.statements,
        state,
        policy,
        at,
        problems,
    )?;
    let recipients = recipient_webs(cfg, at);
    let webs = if recipients.is_empty() {
        None
    } else {
        let mut defs = vec![(crate::webs::SYSTEM_WEB.to_string(), cfg.trust_at(at))];
        defs.extend(recipients);
        let t = defs[0].1.clone();
        // The system web's lazy report already holds the graph (same
        // keyring, time, limits and policy): every web searches that one.
        let graph = SharedGraph::from_report(&view.report).unwrap_or_else(|| {
            SharedGraph::build(&view.keyring, policy, t.reference_time, &t.limits, cache)
        });
        let acceptor = Acceptor {
            rules: &cfg.rules,
            trust: &view,
            policy,
            at,
            state: &prepared.state,
        };
        let statements = gathered
            .statements
            .iter()
            .map(|n| (n.origin.as_str(), n.bytes.as_slice()));
        Some(Webs::judge(
            &acceptor,
            statements,
            &graph,
            &defs,
            cfg.testing,
        ))
    };
    let mut prepared = prepared;
    if let Some(w) = &webs {
        prepared.set = w.union_set()?;
    }
    Ok(Prepared {
        trusted_keys,
        webs,
        key_expiry,
        ..prepared
    })
}

/// The earliest expiry after `at` of any primary key or subkey valid at `at`
/// under `policy`, from the keyring already parsed for the judgement.
fn next_key_expiry(ring: &Keyring, policy: &dyn Policy, at: SystemTime) -> Option<SystemTime> {
    ring.certs()
        .filter_map(|c| c.with_policy(policy, at).ok())
        .flat_map(|vc| {
            vc.keys()
                .filter_map(|k| k.key_expiration_time())
                .collect::<Vec<_>>()
        })
        .filter(|t| *t > at)
        // Whole seconds, as every other time here.
        .map(|t| to_system_time(to_timestamp(t)))
        .min()
}

/// The per-recipient webs of the configuration, named, judged at `at`.
pub(crate) fn recipient_webs(
    cfg: &Config,
    at: SystemTime,
) -> Vec<(String, crate::model::settings::TrustSettings)> {
    cfg.recipients
        .iter()
        .map(|r| (r.recipient.name().to_string(), r.trust_at(at)))
        .collect()
}

impl Prepared {
    /// The serials of the accepted allow statements, to be recorded.
    pub fn accepted_serials(&self) -> Vec<(String, Timestamp)> {
        self.judgements
            .iter()
            .filter_map(|j| j.result.as_ref().ok())
            .filter(|a| a.role == Verdict::Allow)
            .map(|a| (a.statement.domain.clone(), a.statement.serial))
            .collect()
    }

    /// Loads the kernel set into `gate` through its atomic swap, then records
    /// the accepted serials in `state_dir` (rollback protection). Refuses,
    /// loading nothing, when an input was incomplete or the set would shrink
    /// past `guard`, unless the guard forces it. A set equal to the active
    /// one is not swapped again ([`Applied::unchanged`]): a swap of a large
    /// set costs seconds and would only bump the generation.
    pub fn load(
        &self,
        gate: &mut Gate,
        state_dir: &Path,
        guard: &LoadGuard,
    ) -> Result<Applied, ApplyError> {
        if !self.problems.is_empty() && !guard.force {
            return Err(ApplyError::Incomplete {
                problems: self.problems.clone(),
            });
        }
        // The guard judges the very set this load replaces: both under one
        // hold of the pin directory's lock.
        let (diff, load, unchanged) = {
            let mut gate = gate.lock()?;
            // Under the lock no load flips. The gate's copy of what it
            // enforces is used when the pinned metadata still names its
            // generation and digest (the same handle loaded it last);
            // otherwise the active set is read once (first load, after a
            // repair or another writer's load).
            let before = gate.loaded_set()?;
            // One pass over both sets; the guard, the diff and the gate's
            // writes all work from what differs.
            let delta = Delta::between(before, &self.set);
            guard
                .check_delta(before, &delta, &self.set)
                .map_err(|e| ApplyError::Guard(Box::new(e)))?;
            let diff = delta.plan_diff();
            if delta.is_empty() {
                let (trie, meta) = (gate.active_trie()?, gate.meta()?);
                let load = LoadReport::unchanged(trie, meta.generation[trie], &self.set);
                (diff, load, true)
            } else {
                // In proportion to the change; the gate itself rewrites
                // when the change is too large for entry-by-entry writes.
                (diff, gate.apply_changes(&delta.changes())?, false)
            }
        };
        let recorded = self.accepted_serials();
        let mut state = self.state.clone();
        for (domain, serial) in &recorded {
            state.record(domain, *serial);
        }
        if let Err(error) = state.save(state_dir) {
            return Err(ApplyError::RecordAfterLoad {
                load: Box::new(load),
                error,
            });
        }
        Ok(Applied {
            diff,
            load,
            unchanged,
            recorded,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use sequoia_openpgp::cert::CertBuilder;
    use sequoia_openpgp::policy::StandardPolicy;

    use super::*;

    #[test]
    fn the_next_key_expiry_is_the_earliest_one_still_ahead() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        let cert = |uid: &str, days: Option<u32>| {
            CertBuilder::general_purpose(Some(uid))
                .set_creation_time(t0)
                .set_validity_period(days.map(|d| day * d))
                .generate()
                .unwrap()
                .0
        };
        let ring = Keyring::from_certs([
            cert("<a@a.example>", Some(10)),
            cert("<b@b.example>", Some(3)),
            cert("<c@c.example>", None),
        ]);
        let p = StandardPolicy::new();
        assert_eq!(next_key_expiry(&ring, &p, t0 + day), Some(t0 + day * 3));
        // b has expired: a's expiry is next; then none is left.
        assert_eq!(
            next_key_expiry(&ring, &p, t0 + day * 5),
            Some(t0 + day * 10)
        );
        assert_eq!(next_key_expiry(&ring, &p, t0 + day * 11), None);
    }
}
