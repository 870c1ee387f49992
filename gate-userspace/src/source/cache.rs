//! The last good copy of every fetched source, under `STATE_DIR/cache/`, so a
//! participant whose server fails keeps counting with what it published last.
//!
//! One file per participant and kind, `cache/DOMAIN/KIND` (kind: `statement`,
//! `wkd`, `certified`): a header line `wotgate-cache 1 UNIX_SECONDS URL` and
//! the body as fetched. Written atomically (temporary file, fsync, rename,
//! fsync of the directory); read with a bound.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::wellknown::{Domain, SourceKind};
use super::Named;

const MAGIC: &str = "wotgate-cache 1 ";
/// Longest header line (magic, seconds, URL).
const MAX_HEADER: u64 = 8192;

/// A cached copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The URL it was fetched from (after redirects).
    pub url: String,
    /// When it was fetched (wall clock of the fetching host).
    pub fetched: SystemTime,
    pub bytes: Vec<u8>,
}

/// A cache file that could not be read or written; `path` names it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: cannot {step}: {error}")]
    Io {
        path: PathBuf,
        step: &'static str,
        error: std::io::Error,
    },
    #[error("{path}: not a cache file of this version or damaged ({problem}); ignored")]
    Corrupt { path: PathBuf, problem: String },
}

/// The cache directory of one state directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// The cache in `STATE_DIR/cache`; bodies larger than `max_bytes` are
    /// neither written nor read.
    pub fn new(state_dir: &Path, max_bytes: u64) -> Cache {
        Cache {
            dir: state_dir.join("cache"),
            max_bytes,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `cache/DOMAIN/KIND` (the domain is checked, so it is one safe name).
    pub fn path(&self, domain: &Domain, kind: SourceKind) -> PathBuf {
        self.dir.join(domain.as_str()).join(kind.name())
    }

    /// Replaces the copy of `domain`'s `kind` atomically.
    pub fn store(
        &self,
        domain: &Domain,
        kind: SourceKind,
        url: &str,
        fetched: SystemTime,
        bytes: &[u8],
    ) -> Result<(), CacheError> {
        let file = self.path(domain, kind);
        let dir = self.dir.join(domain.as_str());
        let io = |path: &Path, step| {
            let path = path.to_path_buf();
            move |error| CacheError::Io { path, step, error }
        };
        if url.contains(['\n', '\r', ' ']) || url.len() as u64 > MAX_HEADER - 64 {
            return Err(CacheError::Corrupt {
                path: file,
                problem: format!("URL {url:?} cannot be recorded"),
            });
        }
        if bytes.len() as u64 > self.max_bytes {
            return Err(CacheError::Corrupt {
                path: file,
                problem: format!("larger than {} bytes", self.max_bytes),
            });
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir, "create the cache directory"))?;
        let secs = fetched
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let tmp = dir.join(format!(".{}.tmp", kind.name()));
        let written = (|| {
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(format!("{MAGIC}{secs} {url}\n").as_bytes())?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp, "write the new copy")(e));
        }
        if let Err(e) = std::fs::rename(&tmp, &file) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&file, "replace the cached copy")(e));
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir, "flush the cache directory"))
    }

    /// The copy of `domain`'s `kind`, if there is one.
    pub fn load(&self, domain: &Domain, kind: SourceKind) -> Result<Option<Entry>, CacheError> {
        let path = self.path(domain, kind);
        let mut raw = Vec::new();
        match File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CacheError::Io {
                    path,
                    step: "open",
                    error: e,
                })
            }
            Ok(f) => f
                .take(self.max_bytes + MAX_HEADER + 1)
                .read_to_end(&mut raw)
                .map_err(|error| CacheError::Io {
                    path: path.clone(),
                    step: "read",
                    error,
                })?,
        };
        let corrupt = |problem: &str| CacheError::Corrupt {
            path: path.clone(),
            problem: problem.to_string(),
        };
        let nl = raw
            .iter()
            .take(MAX_HEADER as usize)
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no header line"))?;
        let header = std::str::from_utf8(&raw[..nl]).map_err(|_| corrupt("header not text"))?;
        let rest = header
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("unknown header"))?;
        let (secs, url) = rest
            .split_once(' ')
            .ok_or_else(|| corrupt("header without URL"))?;
        let secs: u64 = secs.parse().map_err(|_| corrupt("bad fetch time"))?;
        let bytes = raw[nl + 1..].to_vec();
        if bytes.len() as u64 > self.max_bytes {
            return Err(corrupt(&format!("larger than {} bytes", self.max_bytes)));
        }
        Ok(Some(Entry {
            url: url.to_string(),
            fetched: UNIX_EPOCH + Duration::from_secs(secs),
            bytes,
        }))
    }

    /// Every participant's copy of `kind`, named by the URL it came from:
    /// what the daemon fetched last (`trust explain --config` adds the
    /// fetched keys to the local keyrings). No cache yet is no copies.
    pub fn all(&self, kind: SourceKind) -> (Vec<Named>, Vec<CacheError>) {
        let (mut found, mut problems) = (Vec::new(), Vec::new());
        let dirs = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (found, problems),
            Err(error) => {
                problems.push(CacheError::Io {
                    path: self.dir.clone(),
                    step: "list",
                    error,
                });
                return (found, problems);
            }
            Ok(d) => d,
        };
        let mut domains: Vec<Domain> = dirs
            .filter_map(|d| d.ok())
            .filter_map(|d| Domain::parse(d.file_name().to_str()?).ok())
            .collect();
        domains.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for d in domains {
            match self.load(&d, kind) {
                Ok(Some(e)) => found.push(Named {
                    origin: format!("{} (cached from {})", self.path(&d, kind).display(), e.url),
                    bytes: e.bytes,
                }),
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
        (found, problems)
    }

    /// Forgets the copy (the participant no longer publishes it).
    pub fn remove(&self, domain: &Domain, kind: SourceKind) -> Result<(), CacheError> {
        let path = self.path(domain, kind);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io {
                path,
                step: "remove",
                error: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wotgate-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn stores_loads_replaces_and_removes() {
        let state = temp("roundtrip");
        let c = Cache::new(&state, 1000);
        let d = Domain::parse("alpha.example").unwrap();
        assert_eq!(c.load(&d, SourceKind::Wkd).unwrap(), None);
        let t = UNIX_EPOCH + Duration::from_secs(1_795_600_800);
        c.store(
            &d,
            SourceKind::Wkd,
            "https://a/x?l=postmaster",
            t,
            b"one\nbytes",
        )
        .unwrap();
        let e = c.load(&d, SourceKind::Wkd).unwrap().unwrap();
        assert_eq!(
            e,
            Entry {
                url: "https://a/x?l=postmaster".into(),
                fetched: t,
                bytes: b"one\nbytes".to_vec()
            }
        );
        assert_eq!(
            c.path(&d, SourceKind::Wkd),
            state.join("cache/alpha.example/wkd")
        );
        c.store(&d, SourceKind::Wkd, "https://a/y", t, b"two")
            .unwrap();
        assert_eq!(c.load(&d, SourceKind::Wkd).unwrap().unwrap().bytes, b"two");
        assert_eq!(c.load(&d, SourceKind::Statement).unwrap(), None);
        let names: Vec<_> = std::fs::read_dir(state.join("cache/alpha.example"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("wkd")],
            "no temporary left"
        );
        c.remove(&d, SourceKind::Wkd).unwrap();
        c.remove(&d, SourceKind::Wkd).unwrap();
        assert_eq!(c.load(&d, SourceKind::Wkd).unwrap(), None);
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn all_lists_every_domain_and_reports_damaged_copies() {
        let state = temp("all");
        let c = Cache::new(&state, 1000);
        assert_eq!(c.all(SourceKind::Wkd).0, Vec::new());
        for (dom, body) in [("beta.example", b"B".as_slice()), ("alpha.example", b"A")] {
            let d = Domain::parse(dom).unwrap();
            c.store(&d, SourceKind::Wkd, "https://x/", UNIX_EPOCH, body)
                .unwrap();
        }
        let d = Domain::parse("gamma.example").unwrap();
        std::fs::create_dir_all(c.path(&d, SourceKind::Wkd).parent().unwrap()).unwrap();
        std::fs::write(c.path(&d, SourceKind::Wkd), b"junk").unwrap();
        let (found, problems) = c.all(SourceKind::Wkd);
        let bodies: Vec<&[u8]> = found.iter().map(|n| n.bytes.as_slice()).collect();
        assert_eq!(bodies, [b"A".as_slice(), b"B"]);
        assert!(
            found[0].origin.contains("alpha.example"),
            "{}",
            found[0].origin
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("gamma.example"),
            "{}",
            problems[0]
        );
        assert!(c.all(SourceKind::Certified).0.is_empty());
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn oversized_and_damaged_copies_are_refused() {
        let state = temp("bounds");
        let c = Cache::new(&state, 10);
        let d = Domain::parse("alpha.example").unwrap();
        assert!(c
            .store(
                &d,
                SourceKind::Statement,
                "https://a/",
                SystemTime::now(),
                &[0; 11]
            )
            .is_err());
        c.store(
            &d,
            SourceKind::Statement,
            "https://a/",
            SystemTime::now(),
            &[0; 10],
        )
        .unwrap();
        // Grown behind our back: read only up to the bound, then refused.
        let p = c.path(&d, SourceKind::Statement);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0; 100]).unwrap();
        let e = c.load(&d, SourceKind::Statement).unwrap_err();
        assert!(e.to_string().contains("larger than 10 bytes"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            c.load(&d, SourceKind::Statement),
            Err(CacheError::Corrupt { .. })
        ));
        assert!(c
            .store(
                &d,
                SourceKind::Statement,
                "https://a/\nx",
                SystemTime::now(),
                b""
            )
            .is_err());
        let _ = std::fs::remove_dir_all(&state);
    }
}
