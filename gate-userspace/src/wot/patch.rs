//! A recompute's keyring made from the last one in place, when every
//! certificate keeps its place and its primary key and only some changed.
//!
//! Building a keyring anew from 10,000 kept parses costs about 20 ms on
//! this machine (a handful of shared pointers and hash lookups per
//! certificate, most of them cache misses), for one changed certificate.
//! When the last keyring holds one certificate per range of the sources
//! (no copies merged, no source parsed whole), each source has as many
//! ranges as before, and every range that is not the very range kept from
//! the last load parses alone to a certificate with the primary key of the
//! one at its place, then no other certificate's issuers change: the last
//! keyring is taken (copied only when a report still holds it), the
//! changed certificates are put in and their certifications resolved.
//! Anything else takes the ordinary path ([`super::chunks`]).

use std::sync::Arc;

use super::chunks::{drop_later, Kept, ParseCache};
use super::keyring::{Digest, Parsed};
use super::Keyring;
use crate::source::Named;

/// Past this many changed certificates the ordinary path, which parses
/// them on every core, is as quick.
const MAX_CHANGED: usize = 64;

/// The keyring of `sources` (cut into `cuts`) patched from the last one;
/// `Err(cuts)` when it cannot be (see the module docs).
pub(super) fn in_place(
    sources: &[Named],
    cuts: Vec<Option<Vec<Kept>>>,
    cache: &mut ParseCache,
) -> Result<Arc<Keyring>, Vec<Option<Vec<Kept>>>> {
    let Some(changed) = changes(sources, &cuts, cache) else {
        return Err(cuts);
    };
    let last = cache.last.take().expect("checked by changes");
    let mut ring = Arc::unwrap_or_clone(last);
    let mut parsed = 0;
    let mut gone = Vec::with_capacity(changed.len());
    let mut put = Vec::with_capacity(changed.len());
    for (g, p, d, new) in changed {
        parsed += usize::from(new);
        gone.extend(ring.digest_at(g));
        cache.map.insert(d, p.clone());
        put.push((g, p, d));
    }
    // A digest names one certificate's bytes, and no two certificates
    // share a primary key here: the old digests are no one else's.
    let old: Vec<Parsed> = gone.iter().filter_map(|d| cache.map.remove(d)).collect();
    ring.replace_same_keys(put);
    let ring = Arc::new(ring);
    let kept: Vec<Vec<Kept>> = cuts.into_iter().map(|c| c.expect("checked")).collect();
    let old_kept: Vec<Vec<Kept>> = (cache.kept.iter_mut().zip(sources).zip(kept))
        .map(|((k, s), now)| {
            k.0.clone_from(&s.origin);
            std::mem::replace(&mut k.1, now)
        })
        .collect();
    drop_later((old, old_kept));
    cache.last = Some(ring.clone());
    cache.parsed = parsed;
    cache.reused = ring.len() - parsed;
    cache.in_place = true;
    Ok(ring)
}

/// The changed certificates (index, parse, digest, whether parsed now),
/// or `None` when the keyring cannot be patched in place.
fn changes(
    sources: &[Named],
    cuts: &[Option<Vec<Kept>>],
    cache: &ParseCache,
) -> Option<Vec<(usize, Parsed, Digest, bool)>> {
    let last = cache.last.as_ref()?;
    if !cache.aligned || cache.kept.len() != sources.len() {
        return None;
    }
    let mut at = Vec::new();
    let mut g = 0;
    for (i, ((s, now), (_, old))) in sources.iter().zip(cuts).zip(&cache.kept).enumerate() {
        let now = now.as_ref()?;
        // Each source was cut against the last load's in the same place
        // (of its origin, else there: a file renamed).
        let compared = (cache.kept.iter().position(|k| k.0 == s.origin)).unwrap_or(i);
        if compared != i || now.len() != old.len() {
            return None;
        }
        for (n, o) in now.iter().zip(old) {
            // The very range kept (its bytes compared equal): unchanged.
            if !Arc::ptr_eq(&n.0, &o.0) {
                at.push((g, n));
            }
            g += 1;
        }
    }
    if g != last.len() || at.len() > MAX_CHANGED {
        return None;
    }
    at.into_iter()
        .map(|(g, (bytes, d))| {
            let (p, new) = match cache.map.get(d) {
                Some(p) => (p.clone(), false),
                None => (Parsed::one(bytes)?, true),
            };
            let same_key = p.cert.fingerprint() == last.cert_at(g).fingerprint();
            same_key.then_some((g, p, *d, new))
        })
        .collect()
}
