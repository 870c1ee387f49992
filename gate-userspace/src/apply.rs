//! The one step from inputs to the kernel: judge statements, build the plan,
//! diff it against the loaded set, load it through the swap, record serials.
//!
//! The CLI's `plan --load` calls it today; the daemon will call it on every
//! refresh. [`prepare`] is pure (no kernel); [`Prepared::load`] touches the gate.

use std::path::Path;
use std::time::SystemTime;

use sequoia_openpgp::policy::Policy;

use crate::gate::{swap::LoadReport, Gate, GateError};
use crate::model::config::Config;
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict};
use crate::model::settings::{AcceptRules, TestingPolicy};
use crate::model::time::{format_time, Timestamp};
use crate::plan::{Plan, PlanDiff, PlanError};
use crate::source::{local, Named, ReadError};
use crate::statement::{state::StateError, Acceptor, Judgement, SerialState, TrustView, WotView};
use crate::wot::Keyring;

/// Why a plan could not be prepared or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("statements directory: {0}")]
    Statements(ReadError),
    #[error("rollback state: {0}")]
    State(StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the gate: {0}")]
    Gate(#[from] GateError),
    /// Some input could not be read completely; nothing was loaded.
    #[error("refusing to load: {} input problem(s), so the plan may be missing trusted peers: {}; nothing was loaded (fix the inputs, or force the load)", problems.len(), problems.join("; "))]
    Incomplete { problems: Vec<String> },
    /// The plan would take away too much of the trusted set; nothing was loaded.
    #[error(transparent)]
    Shrink(Box<ShrinkError>),
    /// The set IS in the kernel; only the rollback state is behind.
    #[error("the plan IS loaded ({} entries, generation {}) and the gate enforces it, but the accepted serials could not be recorded in the state directory, which still holds the previous serials (rollback protection lags until the next successful load): {source}", load.entries, load.generation)]
    RecordAfterLoad {
        load: Box<LoadReport>,
        source: StateError,
    },
}

/// How much a load may take away from the trusted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadGuard {
    /// Most of the loaded allow entries a load may take away, in percent
    /// (a load that leaves no allow entry at all is refused regardless).
    pub max_shrink_percent: u8,
    /// Load anyway: incomplete inputs and any shrink are accepted.
    pub force: bool,
}

/// A load refused because it would take away too much of the trusted set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing to load: the new set would take away {} of the {loaded_allows} trusted (allow) entries loaded now, {}; nothing was loaded. It would lose: {}{}. If that is intended, force the load", lost.len(), if *remaining_allows == 0 { "leaving nothing trusted (every SYN to a protected port would be dropped)".to_string() } else { format!("more than the {max_shrink_percent}% bound") }, lost.iter().take(10).map(|e| format!("{} {} {}", e.verdict, e.prefix, e.label).trim_end().to_string()).collect::<Vec<_>>().join(", "), if lost.len() > 10 { format!(" and {} more", lost.len() - 10) } else { String::new() })]
pub struct ShrinkError {
    pub loaded_allows: usize,
    pub remaining_allows: usize,
    pub max_shrink_percent: u8,
    /// Allow entries of the loaded set that the new set removes or turns to deny.
    pub lost: Vec<PrefixEntry>,
}

impl LoadGuard {
    /// Refuses `after` when it leaves nothing trusted while `before` trusted
    /// something, or takes away more than the bound of `before`'s allow entries.
    pub fn check(&self, before: &PrefixSet, after: &PrefixSet) -> Result<(), ShrinkError> {
        if self.force {
            return Ok(());
        }
        let allows = |s: &PrefixSet| s.iter().filter(|e| e.verdict == Verdict::Allow).count();
        let loaded_allows = allows(before);
        let remaining_allows = allows(after);
        let lost: Vec<PrefixEntry> = before
            .iter()
            .filter(|e| e.verdict == Verdict::Allow)
            .filter(|e| after.get(&e.prefix).map(|n| n.verdict) != Some(Verdict::Allow))
            .cloned()
            .collect();
        let bound = (loaded_allows * usize::from(self.max_shrink_percent) / 100).max(1);
        let emptied = loaded_allows > 0 && remaining_allows == 0;
        if emptied || lost.len() > bound {
            return Err(ShrinkError {
                loaded_allows,
                remaining_allows,
                max_shrink_percent: self.max_shrink_percent,
                lost,
            });
        }
        Ok(())
    }
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
}

/// What loading did.
#[derive(Debug)]
pub struct Applied {
    /// Changes against the set that was loaded before.
    pub diff: PlanDiff,
    pub load: LoadReport,
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
    })
}

/// Everything `wotgate plan` does before printing, from the configuration's
/// local sources: keyrings, trust, statements, rollback state, plan.
pub fn prepare_from_config(
    cfg: &Config,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<Prepared, ApplyError> {
    let (keyring, problems) = Keyring::load(&cfg.keyrings);
    let mut problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let (view, missing) = WotView::evaluate(keyring, &cfg.trust_at(at), policy);
    problems.extend(missing);
    let (statements, unreadable) =
        local::read_statements(&cfg.statements_directory, cfg.rules.max_size)
            .map_err(ApplyError::Statements)?;
    problems.extend(unreadable.iter().map(|e| e.to_string()));
    let state = SerialState::load(&cfg.state_directory).map_err(ApplyError::State)?;
    prepare(
        &cfg.rules,
        cfg.testing,
        &view,
        &statements,
        state,
        policy,
        at,
        problems,
    )
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
    /// past `guard`, unless the guard forces it.
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
        let before = gate.active_set()?;
        guard
            .check(&before, &self.set)
            .map_err(|e| ApplyError::Shrink(Box::new(e)))?;
        let diff = PlanDiff::between(&before, &self.set);
        let load = gate.load_set(&self.set)?;
        let recorded = self.accepted_serials();
        let mut state = self.state.clone();
        for (domain, serial) in &recorded {
            state.record(domain, *serial);
        }
        if let Err(source) = state.save(state_dir) {
            return Err(ApplyError::RecordAfterLoad {
                load: Box::new(load),
                source,
            });
        }
        Ok(Applied {
            diff,
            load,
            recorded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &str) -> PrefixSet {
        PrefixSet::parse(lines, "t").unwrap()
    }

    const GUARD: LoadGuard = LoadGuard {
        max_shrink_percent: 50,
        force: false,
    };

    #[test]
    fn guard_refuses_emptying_and_large_shrinks() {
        let four = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\nallow 2001:db8:3::/48 c\nallow 2001:db8:4::/48 d\n");
        let e = GUARD.check(&four, &PrefixSet::new()).unwrap_err();
        assert_eq!(
            (e.loaded_allows, e.remaining_allows, e.lost.len()),
            (4, 0, 4)
        );
        assert!(e.to_string().contains("leaving nothing trusted"), "{e}");
        assert!(e.to_string().contains("allow 2001:db8:1::/48 a"), "{e}");
        // Only denies left is nothing trusted too.
        let denies = set("deny 2001:db8:1::/48 a\n");
        assert!(GUARD.check(&four, &denies).is_err());
        // Two of four is at the bound: allowed; three is past it.
        let two = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        assert!(GUARD.check(&four, &two).is_ok());
        let one = set("allow 2001:db8:1::/48 a\n");
        let e = GUARD.check(&four, &one).unwrap_err();
        assert!(e.to_string().contains("more than the 50% bound"), "{e}");
        // Growing, or starting from nothing, is always fine; force overrides.
        assert!(GUARD.check(&PrefixSet::new(), &one).is_ok());
        assert!(GUARD.check(&one, &four).is_ok());
        let force = LoadGuard {
            force: true,
            ..GUARD
        };
        assert!(force.check(&four, &PrefixSet::new()).is_ok());
        // A single entry may be replaced by another.
        let other = set("allow 2001:db8:9::/48 z\n");
        assert!(GUARD.check(&one, &other).is_ok());
    }
}
