//! What the daemon keeps in the state directory besides the serials: the
//! last good plan (loaded at once after a reboot), its status file, the
//! `reload --force` flag. Every write is atomic (temporary file, rename).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::prefixes::PrefixSet;
use crate::source::local::{read_text, PREFIX_FILE};

use super::digest::digest;

/// The last set loaded successfully, in prefix-file format after a
/// `# wotgate plan sha256:...` header line.
pub const PLAN_FILE: &str = "plan.prefixes";
/// The daemon's status (JSON), for `wotgate status`.
pub const STATUS_FILE: &str = "daemon-status.json";
/// Present when the next refresh is forced past the load guard (`reload --force`).
pub const FORCE_FILE: &str = "reload.force";

const PLAN_HEADER: &str = "# wotgate plan ";

/// Writes `text` to `dir/name` so that a crash leaves the old or the new
/// file: a temporary file, flushed, renamed over it, the directory flushed.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// Persists `set` as the last good plan; returns its digest.
pub fn save_plan(dir: &Path, set: &PrefixSet) -> std::io::Result<String> {
    let d = digest(set);
    write_atomic(
        dir,
        PLAN_FILE,
        &format!("{PLAN_HEADER}{d}\n{}", set.to_file_text()),
    )?;
    Ok(d)
}

/// A persisted plan that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("{file}: {problem}")]
    Corrupt { file: PathBuf, problem: String },
    #[error(transparent)]
    Parse(crate::model::prefixes::PrefixError),
}

/// The last good plan and its recorded digest; `Ok(None)` when there is none.
/// A plan whose content does not match its recorded digest is refused.
pub fn load_plan(dir: &Path) -> Result<Option<(PrefixSet, String)>, SavedPlanError> {
    let path = dir.join(PLAN_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let corrupt = |problem: String| SavedPlanError::Corrupt {
        file: path.clone(),
        problem,
    };
    let text = read_text(&path, PREFIX_FILE).map_err(|e| corrupt(e.detail()))?;
    let recorded = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(PLAN_HEADER))
        .ok_or_else(|| corrupt("no `# wotgate plan sha256:...` header".into()))?
        .trim()
        .to_string();
    let set =
        PrefixSet::parse(&text, &path.display().to_string()).map_err(SavedPlanError::Parse)?;
    let actual = digest(&set);
    if actual != recorded {
        return Err(corrupt(format!(
            "content has digest {actual}, the header says {recorded}"
        )));
    }
    Ok(Some((set, recorded)))
}

/// Takes the `reload --force` flag: true when it was there.
pub fn take_force(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(FORCE_FILE)).is_ok()
}

/// Sets the `reload --force` flag for the daemon's next refresh.
pub fn set_force(dir: &Path) -> std::io::Result<()> {
    write_atomic(
        dir,
        FORCE_FILE,
        "force the next refresh past the load guard\n",
    )
}

/// One refresh as the status file records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshRecord {
    /// Unix seconds when it started.
    pub at: u64,
    pub duration_ms: u64,
    /// What started it: `start`, `timer`, `expiry`, `sighup`.
    pub trigger: String,
    /// `loaded`, `refused` (the load guard or incomplete inputs), `failed`.
    pub outcome: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// Loaded, but the kernel enforced that very plan already: nothing swapped.
    #[serde(default)]
    pub unchanged: bool,
    pub forced: bool,
    /// How the kernel was written, when something was loaded.
    #[serde(default)]
    pub load: Option<LoadSummary>,
    /// Inputs that could not be read completely.
    pub problems: Vec<String>,
    pub accepted_statements: usize,
    pub rejected_statements: usize,
}

/// How a refresh wrote the gate (from the swap's report).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadSummary {
    /// `diff` (entry by entry), `full` (rewritten), `full-ahead` (rewritten,
    /// enforced from the compiled copy before the trie was written) or
    /// `unchanged`.
    pub mode: String,
    /// Entries added or changed.
    pub written: usize,
    /// Entries removed.
    pub removed: usize,
    /// From the start of the update to the flip, in microseconds.
    pub enforce_us: u64,
    /// What the datapath looks sources up in: `compiled`, or `trie` when
    /// the set outgrew the compiled lookup's arrays (sized at creation).
    #[serde(default)]
    pub lookup: String,
}

/// The loaded plan as the daemon last loaded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadedRecord {
    pub at: u64,
    pub generation: u64,
    pub entries: usize,
    pub digest: String,
    /// `last-good-plan` (after a reboot), `refresh`, `static-overrides`.
    pub from: String,
}

/// The daemon's status file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub config: String,
    pub started_at: u64,
    /// Set on a clean stop.
    pub stopped_at: Option<u64>,
    /// `adopted` (the pinned gate), `created`.
    pub start: String,
    /// Waiting for the first good plan in observe mode (`startup = "observe"`).
    pub observing_until_first_plan: bool,
    pub refreshes_loaded: u64,
    pub refreshes_refused: u64,
    pub refreshes_failed: u64,
    pub config_reload_failures: u64,
    pub last_refresh: Option<RefreshRecord>,
    pub last_success_at: Option<u64>,
    pub loaded: Option<LoadedRecord>,
    /// Unix seconds of the next planned refresh, and why then.
    pub next_refresh_at: Option<u64>,
    pub next_refresh_reason: Option<String>,
}

impl DaemonStatus {
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(dir, STATUS_FILE, &(text + "\n"))
    }

    /// The status file, `None` when missing or unreadable.
    pub fn load(dir: &Path) -> Option<DaemonStatus> {
        let text = std::fs::read_to_string(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_plan_round_trips_and_a_tampered_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("wotgate-dstate-{}", std::process::id()));
        assert!(load_plan(&dir).unwrap().is_none());
        let set = PrefixSet::parse("allow 2001:db8:a::/48 alpha\n", "t").unwrap();
        let d = save_plan(&dir, &set).unwrap();
        assert_eq!(load_plan(&dir).unwrap(), Some((set, d)));
        let text = std::fs::read_to_string(dir.join(PLAN_FILE)).unwrap();
        std::fs::write(dir.join(PLAN_FILE), text.replace("alpha", "alphA")).unwrap();
        let e = load_plan(&dir).unwrap_err().to_string();
        assert!(e.contains("the header says sha256:"), "{e}");
        assert!(!take_force(&dir));
        set_force(&dir).unwrap();
        assert!(take_force(&dir) && !take_force(&dir));
        let s = DaemonStatus {
            pid: 7,
            ..Default::default()
        };
        s.save(&dir).unwrap();
        assert_eq!(DaemonStatus::load(&dir), Some(s));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
