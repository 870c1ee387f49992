//! Results of cryptographic certification checks, kept across refreshes and
//! restarts (a file in the state directory), keyed by a digest of every input.
//!
//! The key is SHA-256 over a version tag, the issuer's and the target's
//! fingerprints (which bind their key material), the User ID and the whole
//! signature packet: a changed signature, key or User ID is a new key, so a
//! stale result is never reused. Only the cryptography is cached; every
//! policy decision (hash algorithm, times, revocations, validity) is made
//! again on each computation, so a cache written under another policy or at
//! another time answers nothing it should not.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use std::sync::{Arc, Mutex, MutexGuard};

use sequoia_openpgp::Fingerprint;
use sha2::{Digest, Sha256};

use crate::source::local::{read_limited, Limit};

/// A digest of one verification's inputs.
pub(super) type Key = [u8; 32];

const MAGIC: &[u8; 8] = b"WGVC1\n\0\0";
const TAG: &[u8] = b"wotgate certification verification v1";
/// The cache file in the state directory.
pub const CACHE_FILE: &str = "verify-cache.bin";
/// About 4 million results.
const CACHE_LIMIT: Limit = Limit {
    what: "the verification cache",
    bytes: 140 << 20,
};

/// Verification results by input digest. A clone shares the results with
/// the original (a report that verifies lazily fills its caller's cache).
#[derive(Debug, Default, Clone)]
pub struct VerifyCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, bool>,
    /// Results added since the last load or save.
    added: usize,
    /// Verify on the calling thread only.
    sequential: bool,
}

/// The key of the verification of signature packet `sig` (its body as
/// sequoia serializes it) by `issuer` over User ID `uid` of `target`.
pub(super) fn key_of(issuer: &Fingerprint, target: &Fingerprint, uid: &[u8], sig: &[u8]) -> Key {
    let mut h = Sha256::new();
    h.update(TAG);
    for f in [issuer, target] {
        let b = f.as_bytes();
        h.update((b.len() as u32).to_be_bytes());
        h.update(b);
    }
    h.update((uid.len() as u32).to_be_bytes());
    h.update(uid);
    h.update((sig.len() as u32).to_be_bytes());
    h.update(sig);
    h.finalize().into()
}

impl VerifyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache whose computations verify on the calling thread only
    /// (the parallel verification must give the same results: tests compare).
    pub fn sequential() -> Self {
        let c = Self::default();
        c.lock().sequential = true;
        c
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it leaves a map that is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_sequential(&self) -> bool {
        self.lock().sequential
    }

    pub(super) fn contains(&self, k: &Key) -> bool {
        self.lock().map.contains_key(k)
    }

    pub(super) fn get(&self, k: &Key) -> Option<bool> {
        self.lock().map.get(k).copied()
    }

    pub(super) fn insert(&mut self, k: Key, ok: bool) {
        let mut i = self.lock();
        if i.map.insert(k, ok).is_none() {
            i.added += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().map.is_empty()
    }

    /// Results added since it was loaded or saved (nothing to save when 0).
    pub fn added(&self) -> usize {
        self.lock().added
    }

    /// The cache saved in `dir`; an empty one when there is none. A file
    /// that is truncated, corrupt or of another version is ignored (the
    /// reason is returned beside): the cache only saves work.
    pub fn load(dir: &Path) -> (VerifyCache, Option<String>) {
        let path = dir.join(CACHE_FILE);
        if !path.exists() {
            return (VerifyCache::new(), None);
        }
        match read_limited(&path, CACHE_LIMIT) {
            Err(e) => (VerifyCache::new(), Some(e.to_string())),
            Ok(n) => match Self::decode(&n.bytes) {
                Ok(c) => (c, None),
                Err(why) => (
                    VerifyCache::new(),
                    Some(format!("{}: {why}; starting empty", path.display())),
                ),
            },
        }
    }

    fn decode(b: &[u8]) -> Result<VerifyCache, &'static str> {
        if b.len() < MAGIC.len() + 8 + 32 || &b[..MAGIC.len()] != MAGIC {
            return Err("not a verification cache of this version");
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err("checksum mismatch (truncated or corrupt)");
        }
        let count = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
        let records = &body[16..];
        if records.len() != count.saturating_mul(33) {
            return Err("length does not match the count");
        }
        let mut map = HashMap::with_capacity(count);
        for r in records.chunks_exact(33) {
            let k: Key = r[..32].try_into().expect("32 bytes");
            map.insert(k, r[32] == 1);
        }
        Ok(VerifyCache {
            inner: Arc::new(Mutex::new(Inner {
                map,
                added: 0,
                sequential: false,
            })),
        })
    }

    /// Writes the cache to `dir` (a temporary file renamed over the old).
    pub fn save(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut inner = self.lock();
        let mut body = Vec::with_capacity(16 + inner.map.len() * 33 + 32);
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&(inner.map.len() as u64).to_le_bytes());
        for (k, ok) in &inner.map {
            body.extend_from_slice(k);
            body.push(u8::from(*ok));
        }
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{CACHE_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(CACHE_FILE))?;
        inner.added = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_refuses_corruption() {
        let dir = std::env::temp_dir().join(format!("wotgate-vc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = VerifyCache::new();
        c.insert([1; 32], true);
        c.insert([2; 32], false);
        assert_eq!(c.added(), 2);
        c.save(&dir).unwrap();
        assert_eq!(c.added(), 0);
        let (back, why) = VerifyCache::load(&dir);
        assert!(why.is_none());
        assert_eq!(back.get(&[1; 32]), Some(true));
        assert_eq!(back.get(&[2; 32]), Some(false));
        assert_eq!(back.get(&[3; 32]), None);
        // One flipped bit: ignored, and said why.
        let path = dir.join(CACHE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (back, why) = VerifyCache::load(&dir);
        assert!(back.is_empty());
        assert!(why.unwrap().contains("checksum mismatch"));
        // Truncated.
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(VerifyCache::load(&dir).0.is_empty());
        // None at all: empty, no complaint.
        std::fs::remove_file(&path).unwrap();
        let (back, why) = VerifyCache::load(&dir);
        assert!(back.is_empty() && why.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
