//! The pinned gate as the endpoint reads it at scrape time, without the
//! writer lock, and what `/ready` and `wotgate_kernel_matches_plan` make of it.

use std::path::Path;

use crate::daemon::digest::digest;
use crate::gate::Gate;

use super::Snapshot;

/// What the pinned maps say now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelView {
    pub counters: Vec<(&'static str, u64)>,
    pub entries: usize,
    pub digest: String,
    pub generation: u64,
}

/// Reads the pinned gate without its writer lock. The active trie is read
/// between two reads of the selector and the generations; if a swap ran
/// meanwhile the read is tried again (a swap only writes the inactive trie,
/// but the next one clears the trie that was active before).
pub fn read_kernel(pin_dir: &Path) -> Result<KernelView, String> {
    let gate = Gate::open(pin_dir).map_err(|e| e.to_string())?;
    // The trie of the set the gate stands by: the active one, or while an
    // update is enforced ahead of its trie the other, which holds the
    // previous set intact (`Gate::set_trie`).
    let stamp = |g: &Gate| -> Result<(usize, [u64; 2]), String> {
        let (t, _, meta) = g.set_trie().map_err(|e| e.to_string())?;
        Ok((t, meta.generation))
    };
    let counters = gate
        .counters()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(r, v)| (r.name(), v))
        .collect();
    let mut last = String::new();
    for _ in 0..5 {
        let before = stamp(&gate)?;
        let set = gate.read_set(before.0);
        let after = stamp(&gate)?;
        if before != after {
            last = "the set changed while it was read".into();
            continue;
        }
        let set = set.map_err(|e| e.to_string())?;
        return Ok(KernelView {
            counters,
            entries: set.len(),
            digest: digest(&set),
            generation: before.1[before.0],
        });
    }
    Err(last)
}

/// Whether the kernel enforces exactly the plan (entries and digest).
pub fn kernel_matches_plan(s: &Snapshot, k: Option<&KernelView>) -> bool {
    match (&s.plan, k) {
        (Some(p), Some(k)) => p.entries == k.entries && p.digest == k.digest,
        _ => false,
    }
}

/// `Ok(text)` when ready, `Err(reason)` when not.
pub fn readiness(s: &Snapshot, k: Result<&KernelView, &str>, now: u64) -> Result<String, String> {
    let Some(plan) = &s.plan else {
        return Err("no plan is enforced yet".into());
    };
    if s.observing {
        return Err("the gate observes until the first plan that trusts somebody".into());
    }
    let k = k.map_err(|e| format!("the pinned gate cannot be read: {e}"))?;
    if !kernel_matches_plan(s, Some(k)) {
        return Err(format!(
            "the kernel's set ({} entries, {}) differs from the plan ({} entries, {})",
            k.entries, k.digest, plan.entries, plan.digest
        ));
    }
    let age = now.saturating_sub(plan.at);
    let max = s.max_plan_age.as_secs();
    if age > max {
        let last = s.last_refresh.as_ref().map_or("none".to_string(), |r| {
            format!(
                "{}{}",
                r.result,
                r.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
            )
        });
        return Err(format!(
            "the enforced plan is {age} s old, older than daemon.max_plan_age ({max} s); last refresh: {last}"
        ));
    }
    Ok(format!(
        "ready: {} entries, {}, {age} s old\n",
        plan.entries, plan.digest
    ))
}
