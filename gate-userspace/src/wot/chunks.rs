//! Keyrings split into one byte range per certificate, parsed through a
//! cache keyed by each range's SHA-256, so a recompute parses only what changed.
//!
//! Splitting reads only packet headers (binary OpenPGP; an armoured or
//! unusual source is parsed whole, uncached). A range byte-equal to the
//! range met next in the source's last load is not hashed again (its digest
//! is that range's); only the others are. A range is parsed alone and
//! must give exactly one certificate cleanly; when any range of a source
//! does not, the whole source is parsed the ordinary way, so problems and
//! merges are exactly those of [`Keyring::parse`].

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::edges::{cores, par_map};
use super::keyring::{Digest, Parsed};
use super::{Keyring, LoadProblem};
use crate::source::Named;

/// One range of a source: its bytes, digest, parse, and whether it was
/// parsed now (not found in the cache).
type Item<'a> = (&'a [u8], Digest, Parsed, bool);

/// OpenPGP packet tags that start a certificate (public and secret key).
pub(super) const PRIMARY_TAGS: [u8; 2] = [5, 6];

/// The certificates' parses by the digest of their bytes.
#[derive(Debug, Default)]
pub struct ParseCache {
    pub(super) map: HashMap<Digest, Parsed>,
    /// Certificates parsed (not found in the cache) by the last load.
    pub(crate) parsed: usize,
    /// Certificates found in the cache by the last load.
    pub(crate) reused: usize,
    /// Whether the last load patched the keyring before it in place.
    pub(crate) in_place: bool,
    /// The last load's keyring (its issuer resolutions are reused when the
    /// primary keys stay the same).
    pub(super) last: Option<Arc<Keyring>>,
    /// Per source of the last load (its origin, then its ranges' bytes and
    /// digests in order).
    pub(super) kept: Vec<(String, Vec<Kept>)>,
    /// Whether the last load's keyring holds one certificate per range of
    /// `kept`, in order (see `patch.rs`).
    pub(super) aligned: bool,
}

/// A range of a source as last loaded: its bytes and their SHA-256.
pub(super) type Kept = (Arc<[u8]>, Digest);

impl ParseCache {
    /// How many certificate parses it holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One packet's tag and total length (header included); `None` for what
/// a certificate cannot hold (partial or indeterminate lengths) or a
/// truncated header.
pub(crate) fn packet(b: &[u8]) -> Option<(u8, usize)> {
    let h = *b.first()?;
    if h & 0x80 == 0 {
        return None;
    }
    let (tag, hdr, len): (u8, usize, usize) = if h & 0x40 != 0 {
        let o1 = *b.get(1)? as usize;
        match o1 {
            0..=191 => (h & 0x3f, 2, o1),
            192..=223 => (h & 0x3f, 3, ((o1 - 192) << 8) + *b.get(2)? as usize + 192),
            255 => {
                let l = u32::from_be_bytes(b.get(2..6)?.try_into().ok()?);
                (h & 0x3f, 6, l as usize)
            }
            _ => return None,
        }
    } else {
        let tag = (h >> 2) & 0x0f;
        match h & 3 {
            0 => (tag, 2, *b.get(1)? as usize),
            1 => (
                tag,
                3,
                u16::from_be_bytes(b.get(1..3)?.try_into().ok()?) as usize,
            ),
            2 => (
                tag,
                5,
                u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
            ),
            _ => return None,
        }
    };
    Some((tag, hdr.checked_add(len)?))
}

/// `bytes` cut as [`split`] cuts it, each range with its digest and its
/// bytes to keep. A range byte-equal to the range of `old` met next
/// (walking both in order) takes its digest, and its packets are not read
/// again (equal bytes, equal packets: the cut after it only needs the next
/// packet to start a key); any other range is hashed, and the walk goes on
/// after its copy in `old`, if any (so an insertion or a removal costs one
/// hash more, not the rest).
fn cut(bytes: &[u8], old: &[Kept], threads: usize) -> Option<Vec<Kept>> {
    if bytes.is_empty() {
        // An empty source: no certificate, no range.
        return Some(Vec::new());
    }
    if old.is_empty() {
        let chunks = split(bytes)?;
        return Some(par_map(&chunks, threads, |c| {
            (Arc::from(*c), Sha256::digest(c).into())
        }));
    }
    let starts_key = |at: usize| match bytes.get(at..) {
        Some([]) => Some(true),
        Some(rest) => packet(rest).map(|(tag, _)| PRIMARY_TAGS.contains(&tag)),
        None => None,
    };
    let mut at: Option<HashMap<Digest, usize>> = None;
    let (mut pos, mut j) = (0, 0);
    let mut out = Vec::with_capacity(old.len() + 1);
    while pos < bytes.len() {
        if let Some(k) = old.get(j) {
            let end = pos + k.0.len();
            if bytes[pos..].starts_with(&k.0) && starts_key(end) == Some(true) {
                out.push(k.clone());
                (pos, j) = (end, j + 1);
                continue;
            }
        }
        // Packet by packet up to the next key.
        let start = pos;
        let (tag, mut len) = packet(&bytes[pos..])?;
        if !PRIMARY_TAGS.contains(&tag) {
            return None;
        }
        loop {
            pos = pos.checked_add(len).filter(|&e| e <= bytes.len())?;
            if starts_key(pos)? {
                break;
            }
            len = packet(&bytes[pos..])?.1;
        }
        let c = &bytes[start..pos];
        let d: Digest = Sha256::digest(c).into();
        let at = at.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(old.len());
            for (i, k) in old.iter().enumerate() {
                m.entry(k.1).or_insert(i);
            }
            m
        });
        match at.get(&d) {
            Some(&i) => {
                out.push(old[i].clone());
                j = i + 1;
            }
            None => {
                out.push((Arc::from(c), d));
                j += 1;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Drops `x` on a thread of its own: freeing the last load's 10,000
/// certificates and their parts (3.6 ms on the 10k network) is no reason
/// for a recompute to wait. Inline when no thread can be made.
pub(super) fn drop_later<T: Send + 'static>(x: T) {
    // Should no thread be made, the closure, `x` with it, is dropped here.
    let spawned = std::thread::Builder::new()
        .name("wot-free".into())
        .spawn(move || drop(x));
    if let Err(e) = spawned {
        tracing::debug!("freed the last load inline: {e}");
    }
}

/// `bytes` cut before every primary key packet; `None` unless it is a
/// sequence of whole binary packets starting with a primary key.
pub(crate) fn split(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (tag, len) = packet(&bytes[pos..])?;
        if PRIMARY_TAGS.contains(&tag) {
            starts.push(pos);
        } else if starts.is_empty() {
            return None;
        }
        pos = pos.checked_add(len).filter(|&e| e <= bytes.len())?;
    }
    if starts.is_empty() {
        return None;
    }
    starts.push(bytes.len());
    Some(starts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect())
}

impl Keyring {
    /// [`Keyring::parse`], parsing only the certificates whose bytes are
    /// not in `cache`; the cache then holds exactly this load's
    /// certificates. Same keyring, same problems.
    pub fn parse_cached(
        sources: &[Named],
        cache: &mut ParseCache,
    ) -> (Arc<Keyring>, Vec<LoadProblem>) {
        let threads = cores();
        let cuts: Vec<Option<Vec<Kept>>> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // Compared with the last load's source of this origin, else
                // the one in the same place (a file renamed).
                let old = (cache.kept.iter().find(|k| k.0 == s.origin))
                    .or_else(|| cache.kept.get(i))
                    .map_or(&[][..], |k| &k.1[..]);
                cut(&s.bytes, old, threads)
            })
            .collect();
        match super::patch::in_place(sources, cuts, cache) {
            Ok(ring) => (ring, Vec::new()),
            Err(cuts) => parse_all(sources, cuts, cache, threads),
        }
    }
}

/// [`Keyring::parse_cached`] building the keyring anew from every range
/// (`cuts`: each source's, `None` for one that is parsed whole).
fn parse_all(
    sources: &[Named],
    cuts: Vec<Option<Vec<Kept>>>,
    cache: &mut ParseCache,
    threads: usize,
) -> (Arc<Keyring>, Vec<LoadProblem>) {
    let mut ring = Keyring::with_capacity(cache.map.len());
    let mut problems = Vec::new();
    let mut next: HashMap<Digest, Parsed> = HashMap::with_capacity(cache.map.len());
    let mut kept = Vec::with_capacity(sources.len());
    let (mut parsed, mut reused) = (0, 0);
    let mut aligned = true;
    let mut ranges = 0;
    for (s, now) in sources.iter().zip(cuts) {
        let Some(now) = now else {
            ring.add_bytes(&s.origin, &s.bytes, &mut problems);
            aligned = false;
            continue;
        };
        kept.push((s.origin.clone(), now));
        let now = &kept.last().expect("just pushed").1;
        let chunks: Vec<&[u8]> = now.iter().map(|k| &k.0[..]).collect();
        let digests: Vec<Digest> = now.iter().map(|k| k.1).collect();
        let known = |d: &Digest| next.get(d).or_else(|| cache.map.get(d)).cloned();
        let missing: Vec<usize> = (0..chunks.len())
            .filter(|&i| !next.contains_key(&digests[i]) && !cache.map.contains_key(&digests[i]))
            .collect();
        let fresh = par_map(&missing, threads, |&i| Parsed::one(chunks[i]));
        let mut fresh = missing.into_iter().zip(fresh).peekable();
        let items: Option<Vec<Item>> = chunks
            .iter()
            .zip(digests)
            .enumerate()
            .map(|(i, (c, d))| match fresh.next_if(|(j, _)| *j == i) {
                Some((_, p)) => Some((*c, d, p?, true)),
                None => Some((*c, d, known(&d)?, false)),
            })
            .collect();
        // A range that does not parse alone: the source is parsed whole.
        let Some(items) = items else {
            ring.add_bytes(&s.origin, &s.bytes, &mut problems);
            aligned = false;
            continue;
        };
        ranges += items.len();
        for (c, d, p, new) in items {
            if new {
                parsed += 1;
            } else {
                reused += 1;
            }
            next.insert(d, p.clone());
            ring.insert_parsed(&s.origin, c, d, p, &mut problems);
        }
    }
    ring.reindex_after(cache.last.as_deref());
    let ring = Arc::new(ring);
    let old = (
        std::mem::replace(&mut cache.map, next),
        std::mem::replace(&mut cache.kept, kept),
        cache.last.replace(ring.clone()),
    );
    drop_later(old);
    // One certificate per range, in order (no copies merged, no source
    // parsed whole): the next load may patch this keyring in place.
    cache.aligned = aligned && ring.len() == ranges && problems.is_empty();
    cache.in_place = false;
    cache.parsed = parsed;
    cache.reused = reused;
    (ring, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_formats() {
        // New format, one-octet length 3: tag 6.
        assert_eq!(packet(&[0xc6, 3, 0, 0, 0]), Some((6, 5)));
        // New format, two-octet length: 192 + 1 = 193 bytes.
        assert_eq!(packet(&[0xc6, 192, 1]), Some((6, 3 + 193)));
        // New format, five-octet length.
        assert_eq!(packet(&[0xcd, 255, 0, 0, 1, 0]), Some((13, 6 + 256)));
        // New format, partial length: refused.
        assert_eq!(packet(&[0xcb, 224]), None);
        // Old format, tag 6, two-octet length 256.
        assert_eq!(packet(&[0x99, 1, 0]), Some((6, 3 + 256)));
        // Old format, indeterminate: refused; not a packet: refused.
        assert_eq!(packet(&[0x9b]), None);
        assert_eq!(packet(&[0x00, 1]), None);
    }

    #[test]
    fn split_needs_whole_packets_and_a_leading_key() {
        let key = [0xc6, 1, 0];
        let uid = [0xcd, 1, b'a'];
        let two: Vec<u8> = [&key[..], &uid, &key, &uid].concat();
        let parts = split(&two).unwrap();
        assert_eq!(parts, vec![&two[..6], &two[6..]]);
        assert!(split(&two[..5]).is_none(), "truncated");
        assert!(split(&uid).is_none(), "no leading key");
        assert!(split(&[]).is_none());
    }

    #[test]
    fn cut_with_kept_ranges_is_split() {
        let key = |i: u8| [0xc6, 1, i];
        let uid = |i: u8| [0xcd, 2, b'u', i];
        let cert = |i: u8, n: usize| -> Vec<u8> {
            let mut v = key(i).to_vec();
            (0..n).for_each(|k| v.extend(uid(k as u8)));
            v
        };
        let (a, b, c, b2) = (cert(1, 1), cert(2, 2), cert(3, 0), cert(2, 3));
        let before = [&a[..], &b, &c].concat();
        let old = cut(&before, &[], 1).unwrap();
        // An empty source is cut into no range (it holds no certificate).
        assert_eq!(cut(&[], &old, 1), Some(Vec::new()));
        assert_eq!(cut(&[], &[], 1), Some(Vec::new()));
        let changes = [
            before.clone(),
            [&a[..], &b2, &c].concat(),
            [&a[..], &c].concat(),
            [&b[..], &a, &c].concat(),
            [&a[..], &b, &b, &c].concat(),
            [&a[..], &b, &c, &uid(9)].concat(),
            // a kept range followed by more packets of the same key
            [&a[..], &uid(7), &b, &c].concat(),
            [&a[..], &b, &c[..2]].concat(),
            [&uid(1)[..], &a].concat(),
        ];
        for (i, now) in changes.iter().enumerate() {
            let got = cut(now, &old, 1);
            let want = split(now);
            assert_eq!(got.is_some(), want.is_some(), "change {i}");
            let (Some(got), Some(want)) = (got, want) else {
                continue;
            };
            let got_bytes: Vec<&[u8]> = got.iter().map(|k| &k.0[..]).collect();
            assert_eq!(got_bytes, want, "change {i}");
            for k in &got {
                assert_eq!(k.1, <[u8; 32]>::from(Sha256::digest(&k.0)), "change {i}");
            }
        }
    }
}
