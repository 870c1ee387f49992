//! Local sources: keyring files and directories, a directory of statements,
//! any file read with a size bound suited to what it is. Each read is named by its path.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Named, ReadError};

/// File extensions read from keyring directories (files named explicitly
/// are always read).
pub const KEYRING_EXTENSIONS: [&str; 5] = ["pgp", "gpg", "asc", "key", "pub"];

/// What a file holds, and the most bytes read of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub what: &'static str,
    pub bytes: u64,
}

/// A keyring file (debian-keyring, the largest real one seen, is ~30 MiB).
pub const KEYRING_FILE: Limit = Limit {
    what: "a keyring file",
    bytes: 256 << 20,
};
/// The configuration file.
pub const CONFIG_FILE: Limit = Limit {
    what: "a configuration file",
    bytes: 1 << 20,
};
/// One recipient's web of trust (`recipients.d/NAME.toml`): a few keys and
/// fingerprint lists.
pub const RECIPIENT_FILE: Limit = Limit {
    what: "a recipient's web file",
    bytes: 256 << 10,
};
/// A prefix file: at most 1,000,000 entries of at most ~130 bytes.
pub const PREFIX_FILE: Limit = Limit {
    what: "a prefix file",
    bytes: 160 << 20,
};
/// The rollback state (one `domain serial` line per domain).
pub const STATE_FILE: Limit = Limit {
    what: "the serials state file",
    bytes: 64 << 20,
};
/// A secret key for `statement sign`.
pub const SECRET_KEY_FILE: Limit = Limit {
    what: "a secret key file",
    bytes: 1 << 20,
};
/// A password file.
pub const PASSWORD_FILE: Limit = Limit {
    what: "a password file",
    bytes: 4096,
};

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |error| ReadError::Io {
        origin: path.display().to_string(),
        error,
    }
}

/// Reads at most `max + 1` bytes of a file: one byte past `max` is kept so a
/// rule can name an oversized input without reading all of it.
pub fn read_bounded(path: &Path, max: usize) -> Result<Named, ReadError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
        .map_err(io_error(path))?;
    Ok(Named {
        origin: path.display().to_string(),
        bytes,
    })
}

/// Reads a whole file of at most `limit` bytes; a larger one is an error
/// that names the file and the limit (and is not read past it).
pub fn read_limited(path: &Path, limit: Limit) -> Result<Named, ReadError> {
    let named = read_bounded(path, limit.bytes as usize)?;
    if named.bytes.len() as u64 > limit.bytes {
        return Err(ReadError::TooLarge {
            origin: named.origin,
            limit: limit.bytes,
            what: limit.what,
        });
    }
    Ok(named)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text(path: &Path, limit: Limit) -> Result<String, ReadError> {
    let named = read_limited(path, limit)?;
    String::from_utf8(named.bytes).map_err(|_| ReadError::Io {
        origin: named.origin,
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// Reads every keyring file named, and every file with a
/// [`KEYRING_EXTENSIONS`] extension inside every directory named
/// (recursively, in name order), each file once however many links lead to
/// it. What cannot be read is returned beside what could.
pub fn read_keyrings(paths: &[PathBuf]) -> (Vec<Named>, Vec<ReadError>) {
    let (files, mut errors) = keyring_files(paths);
    let mut read = Vec::new();
    for f in files {
        match read_limited(&f, KEYRING_FILE) {
            Ok(named) => read.push(named),
            Err(e) => errors.push(e),
        }
    }
    (read, errors)
}

/// The files [`read_keyrings`] reads, in the same order, not read yet.
pub fn keyring_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ReadError>) {
    let mut walk = Walk::default();
    for p in paths {
        walk.visit(p, true);
    }
    (walk.files, walk.errors)
}

/// Opens one of [`keyring_files`] (a regular file) for a streaming parser,
/// bounded like [`read_keyrings`]: a file larger than [`KEYRING_FILE`] is an
/// error naming it, and the reader never yields more than that limit.
pub fn open_keyring(path: &Path) -> Result<std::io::Take<std::fs::File>, ReadError> {
    let f = std::fs::File::open(path).map_err(io_error(path))?;
    let len = f.metadata().map_err(io_error(path))?.len();
    if len > KEYRING_FILE.bytes {
        return Err(ReadError::TooLarge {
            origin: path.display().to_string(),
            limit: KEYRING_FILE.bytes,
            what: KEYRING_FILE.what,
        });
    }
    Ok(f.take(KEYRING_FILE.bytes))
}

/// A directory walk that visits each directory and file once (by canonical
/// path), so symbolic link loops end and duplicates are read once.
#[derive(Default)]
struct Walk {
    seen: HashSet<PathBuf>,
    files: Vec<PathBuf>,
    errors: Vec<ReadError>,
}

impl Walk {
    fn visit(&mut self, path: &Path, named: bool) {
        let canonical = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(_) if path.is_symlink() => {
                self.errors.push(ReadError::Link {
                    origin: path.display().to_string(),
                    problem: "a symbolic link that points nowhere",
                });
                return;
            }
            Err(e) => return self.errors.push(io_error(path)(e)),
        };
        if !self.seen.insert(canonical.clone()) {
            // Already read (or being read, for a directory link loop).
            return;
        }
        if !canonical.is_dir() {
            let wanted = named
                || path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| KEYRING_EXTENSIONS.contains(&e));
            if wanted {
                self.files.push(path.to_path_buf());
            }
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => return self.errors.push(io_error(path)(e)),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for c in children {
            self.visit(&c, false);
        }
    }
}

/// The files of `dir` whose names end in `.extension`, in name order,
/// skipping hidden (`.`-prefixed) names and directories. Stops listing after
/// `max + 1` of them, so a caller can name an oversized directory without
/// listing all of it; an unreadable directory is an error naming it.
pub fn list_files(dir: &Path, extension: &str, max: usize) -> Result<Vec<PathBuf>, ReadError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let wanted = path.file_name().is_some_and(|n| {
            !n.as_encoded_bytes().starts_with(b".")
                && path.extension().is_some_and(|e| e == extension)
        });
        if wanted && !path.is_dir() {
            files.push(path);
            if files.len() > max {
                break;
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the `*.asc` files of `dir` in name order, each bounded to
/// `max_size + 1` bytes so an oversized file is rejected, not loaded. Named
/// by file name (not path), as plans and verdicts show them. Files that
/// cannot be read (dangling links included) are returned as errors beside
/// the others; an unreadable directory is an error of its own.
pub fn read_statements(
    dir: &Path,
    max_size: usize,
) -> Result<(Vec<Named>, Vec<ReadError>), ReadError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>())
        .map_err(io_error(dir))?;
    names.retain(|p| p.extension().is_some_and(|e| e == "asc") && !p.is_dir());
    names.sort();
    let mut read = Vec::new();
    let mut errors = Vec::new();
    for p in names {
        if p.is_symlink() && !p.exists() {
            errors.push(ReadError::Link {
                origin: p.display().to_string(),
                problem: "a symbolic link that points nowhere (or in a loop)",
            });
            continue;
        }
        match read_bounded(&p, max_size) {
            Ok(mut named) => {
                named.origin = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                read.push(named);
            }
            Err(e) => errors.push(e),
        }
    }
    Ok((read, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wotgate-src-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn limits_name_the_file_and_stop_reading() {
        let e = read_limited(Path::new("/dev/zero"), PASSWORD_FILE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: larger than 4096 bytes, the limit for a password file"
        );
        let (read, errors) = read_keyrings(&[PathBuf::from("/dev/zero")]);
        assert!(read.is_empty());
        assert!(errors[0]
            .to_string()
            .contains("the limit for a keyring file"));
    }

    #[test]
    fn link_loops_end_and_files_are_read_once() {
        let d = temp("loops");
        std::fs::write(d.join("a.pgp"), b"x").unwrap();
        std::os::unix::fs::symlink(".", d.join("self")).unwrap();
        std::os::unix::fs::symlink(&d, d.join("again")).unwrap();
        std::os::unix::fs::symlink(d.join("a.pgp"), d.join("b.pgp")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.pgp")).unwrap();
        let (read, errors) = read_keyrings(std::slice::from_ref(&d));
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0]
            .to_string()
            .contains("dangling.pgp: a symbolic link that points nowhere"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn listing_skips_hidden_files_other_names_and_directories() {
        let d = temp("list");
        for f in ["b.toml", "a.toml", ".hidden.toml", "c.toml~", "notes.txt"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.join("dir.toml")).unwrap();
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(list_files(&d, "toml", 10).unwrap()),
            ["a.toml", "b.toml"]
        );
        assert_eq!(
            list_files(&d, "toml", 1).unwrap().len(),
            2,
            "stops past max"
        );
        let e = list_files(&d.join("gone"), "toml", 10).unwrap_err();
        assert!(e.to_string().contains("gone: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn statement_links_that_lead_nowhere_are_reported() {
        let d = temp("stlinks");
        std::fs::write(d.join("a.asc"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("b.asc")).unwrap();
        std::os::unix::fs::symlink(d.join("c.asc"), d.join("c.asc")).unwrap();
        let (read, errors) = read_statements(&d, 100).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].origin, "a.asc");
        assert_eq!(errors.len(), 2, "{errors:?}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
