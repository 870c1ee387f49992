//! Rollback protection: the last accepted serial per domain, persisted as
//! `domain serial` lines in `<state dir>/serials`, replaced atomically.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

/// The last accepted serial of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SerialState {
    serials: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {problem}")]
    Line {
        file: PathBuf,
        line: usize,
        problem: String,
    },
}

const STATE_FILE: &str = "serials";

impl SerialState {
    /// Loads `<dir>/serials`; a missing file is an empty state.
    pub fn load(dir: &Path) -> Result<SerialState, StateError> {
        let file = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SerialState::default()),
            Err(source) => return Err(StateError::Io { file, source }),
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

    /// Writes `<dir>/serials` through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let file = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let io = |source| StateError::Io {
            file: file.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        for (d, s) in &self.serials {
            writeln!(f, "{d} {s}").map_err(io)?;
        }
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &file).map_err(io)
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
