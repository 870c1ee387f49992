//! Rollback protection: the last accepted serial per domain, persisted as
//! `domain serial` lines in `<state dir>/serials`, replaced atomically.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use crate::source::{local, ReadError};

/// The last accepted serial of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SerialState {
    serials: BTreeMap<String, u64>,
}

/// Why the state could not be read or written; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file exists but cannot be read, or is larger than
    /// [`local::STATE_FILE`] allows.
    #[error("{0}")]
    Read(ReadError),
    /// A step of writing the new state failed; `step` says which and what
    /// it means for the state on disk.
    #[error("{}: {step}: {error}", file.display())]
    Write {
        file: PathBuf,
        step: SaveStep,
        error: std::io::Error,
    },
    #[error("{}:{line}: {problem}", file.display())]
    Line {
        file: PathBuf,
        line: usize,
        problem: String,
    },
}

/// The steps of [`SerialState::save`]; each says what a failure there leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaveStep {
    #[error("cannot create the state directory (the previous state is unchanged)")]
    CreateDir,
    #[error("cannot write the new state to this temporary file (the previous state is unchanged)")]
    WriteTemp,
    #[error("cannot replace the state file with the new one (the previous state is unchanged)")]
    Rename,
    #[error("the new state is in place, but the directory could not be flushed to disk (a crash may bring the previous state back)")]
    SyncDir,
}

const STATE_FILE: &str = "serials";
const TEMP_FILE: &str = ".serials.tmp";

impl SerialState {
    /// Loads `<dir>/serials` (at most [`local::STATE_FILE`] bytes); a
    /// missing file is an empty state.
    pub fn load(dir: &Path) -> Result<SerialState, StateError> {
        let file = dir.join(STATE_FILE);
        let text = match local::read_text(&file, local::STATE_FILE) {
            Ok(t) => t,
            Err(ReadError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SerialState::default())
            }
            Err(e) => return Err(StateError::Read(e)),
        };
        let mut serials = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |problem: &str| StateError::Line {
                file: file.clone(),
                line: i + 1,
                problem: problem.into(),
            };
            let (d, s) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `domain serial`"))?;
            let s: u64 = s.parse().map_err(|_| bad("serial is not a number"))?;
            serials.insert(d.to_string(), s);
        }
        Ok(SerialState { serials })
    }

    pub fn last(&self, domain: &str) -> Option<u64> {
        self.serials.get(domain).copied()
    }

    /// Records an accepted serial; the state never goes backwards.
    pub fn record(&mut self, domain: &str, serial: u64) {
        let e = self.serials.entry(domain.to_string()).or_insert(serial);
        *e = (*e).max(serial);
    }

    /// Writes `<dir>/serials` so that a crash or a full disk leaves either
    /// the previous state or the new one: the new state goes to a temporary
    /// file in `dir`, which is flushed to disk, renamed over `serials`, and
    /// then the directory is flushed. On an error the temporary file is
    /// removed and the error names the file and the step.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let fail = |file: &Path, step| {
            let file = file.to_path_buf();
            move |error| StateError::Write { file, step, error }
        };
        std::fs::create_dir_all(dir).map_err(fail(dir, SaveStep::CreateDir))?;
        let file = dir.join(STATE_FILE);
        let tmp = dir.join(TEMP_FILE);
        let written = self.write_temp(&tmp);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(fail(&tmp, SaveStep::WriteTemp))?;
        if let Err(e) = std::fs::rename(&tmp, &file) {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(&file, SaveStep::Rename)(e));
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail(dir, SaveStep::SyncDir))
    }

    /// Writes the state to a new file `tmp` (replacing a stale one, never
    /// following a link) and flushes it to disk.
    fn write_temp(&self, tmp: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
        let text: String = self
            .serials
            .iter()
            .map(|(d, s)| format!("{d} {s}\n"))
            .collect();
        f.write_all(text.as_bytes())?;
        f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_never_goes_back() {
        let dir = std::env::temp_dir().join(format!("wotgate-state-{}", std::process::id()));
        let mut s = SerialState::load(&dir).unwrap();
        assert_eq!(s.last("example.ch"), None);
        s.record("example.ch", 7);
        s.record("example.ch", 3);
        s.save(&dir).unwrap();
        let again = SerialState::load(&dir).unwrap();
        assert_eq!(again.last("example.ch"), Some(7));
        std::fs::write(dir.join(STATE_FILE), "example.ch seven\n").unwrap();
        assert!(SerialState::load(&dir)
            .unwrap_err()
            .to_string()
            .contains(":1: serial is not a number"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
