//! Local sources: keyring files and directories, a directory of statements,
//! any file read with a size bound. Each read is named by its path.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Named, ReadError};

/// File extensions read from keyring directories.
pub const KEYRING_EXTENSIONS: [&str; 5] = ["pgp", "gpg", "asc", "key", "pub"];

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError {
        origin: path.display().to_string(),
        source,
    }
}

/// Reads at most `max + 1` bytes of a file: one byte past `max` is kept so a
/// rule can name an oversized input without reading all of it.
pub fn read_bounded(path: &Path, max: usize) -> Result<Named, ReadError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
        .map_err(read_error(path))?;
    Ok(Named {
        origin: path.display().to_string(),
        bytes,
    })
}

/// Reads every keyring file named, and every file with a
/// [`KEYRING_EXTENSIONS`] extension inside every directory named
/// (recursively, in name order). What cannot be read is returned beside what could.
pub fn read_keyrings(paths: &[PathBuf]) -> (Vec<Named>, Vec<ReadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect_files(p, &mut files, &mut errors);
    }
    let mut read = Vec::new();
    for f in files {
        match std::fs::read(&f) {
            Ok(bytes) => read.push(Named {
                origin: f.display().to_string(),
                bytes,
            }),
            Err(e) => errors.push(read_error(&f)(e)),
        }
    }
    (read, errors)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<ReadError>) {
    if !path.is_dir() {
        out.push(path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            errors.push(read_error(path)(e));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for c in children {
        if c.is_dir() {
            collect_files(&c, out, errors);
        } else if c
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| KEYRING_EXTENSIONS.contains(&e))
        {
            out.push(c);
        }
    }
}

/// Reads the `*.asc` files of `dir` in name order, each bounded to
/// `max_size + 1` bytes so an oversized file is rejected, not loaded. Named
/// by file name (not path), as plans and verdicts show them.
pub fn read_statements(dir: &Path, max_size: usize) -> Result<Vec<Named>, ReadError> {
    let derr = read_error(dir);
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir)
        .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>())
    {
        Ok(n) => n,
        Err(e) => return Err(derr(e)),
    };
    names.retain(|p| p.extension().is_some_and(|e| e == "asc") && p.is_file());
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let mut named = read_bounded(&p, max_size)?;
            named.origin = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(named)
        })
        .collect()
}
