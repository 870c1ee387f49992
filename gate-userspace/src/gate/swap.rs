//! Updates of the trusted set. Both tries hold the same set between
//! updates ("in sync"). An update writes the inactive trie, flips the
//! one-word selector the datapath reads, then writes the other trie the
//! same way, so it costs in proportion to the change: a diff is applied
//! entry by entry (every write's flags prove what the trie held), a large
//! change or a trie of unknown content is emptied and filled with batch
//! operations instead. A journal in the pinned metadata says which update
//! is under way; a writer killed at any step leaves the active trie a
//! complete set, and the next writer copies it to the other trie
//! ([`Gate::repair`]). Label ids are stable across updates (reference
//! counted here, the same ids in both tries), so an update writes only the
//! labels it adds and removes only those nothing uses any more.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv6Addr,
    os::fd::AsFd,
    sync::OnceLock,
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{lpm_trie::Key, IterableMap, MapError};
use gate_common::{maps, Entry, Journal, Label, Meta};
use ipnet::Ipv6Net;
use sha2::{Digest, Sha256};

use super::{
    compiled::{Live, Patch},
    read_err as rd, update_err as upd, Gate, GateError, Result,
};
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict};

/// What an update did and how long each step took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    pub generation: u64,
    /// The trie the datapath reads after the update.
    pub trie: usize,
    pub entries: usize,
    pub labels: usize,
    /// `diff` (entry by entry), `full` (emptied and filled with batch
    /// operations) or `unchanged` (nothing written, see apply).
    pub mode: &'static str,
    /// Entries of the old set that the new one no longer has.
    pub removed: usize,
    /// Entries added or changed.
    pub written: usize,
    /// Entries deleted from the inactive trie before the flip.
    pub cleared: usize,
    /// Before the flip: deleting from the inactive trie, writing it,
    /// checking it.
    #[serde(serialize_with = "secs")]
    pub clear_time: Duration,
    #[serde(serialize_with = "secs")]
    pub fill_time: Duration,
    #[serde(serialize_with = "secs")]
    pub check_time: Duration,
    /// From the start of the update to the flip: when the datapath
    /// enforces the new set.
    #[serde(serialize_with = "secs")]
    pub enforce_time: Duration,
    /// After the flip: bringing the other trie to the same set.
    #[serde(serialize_with = "secs")]
    pub sync_time: Duration,
    /// What the datapath looks sources up in: `compiled` (the compiled
    /// lookup) or `trie` (the LPM trie: the set did not fit the compiled
    /// lookup's capacity).
    pub lookup: &'static str,
    /// How the compiled copies were written: `groups` (only the /32 groups
    /// the change touched), `whole` (compiled afresh) or `none`.
    pub recompiled: &'static str,
    /// Compiling the set and writing the inactive copy (part of
    /// `enforce_time`).
    #[serde(serialize_with = "secs")]
    pub compile_time: Duration,
    /// After the flip: the wait until nothing reads the old copy, before
    /// it is written (part of `sync_time`).
    #[serde(serialize_with = "secs")]
    pub grace_time: Duration,
    /// An interrupted update was repaired first (or the pair after this
    /// one's own failure past the flip).
    pub repaired: bool,
}

impl LoadReport {
    /// The report of a load that found `set` enforced already.
    pub fn unchanged(trie: usize, generation: u64, set: &PrefixSet) -> LoadReport {
        let labels: std::collections::BTreeSet<&str> =
            set.iter().map(|e| e.label.as_str()).collect();
        LoadReport {
            generation,
            trie,
            entries: set.len(),
            labels: labels.len(),
            mode: "unchanged",
            removed: 0,
            written: 0,
            cleared: 0,
            clear_time: Duration::ZERO,
            fill_time: Duration::ZERO,
            check_time: Duration::ZERO,
            enforce_time: Duration::ZERO,
            sync_time: Duration::ZERO,
            lookup: "unchanged",
            recompiled: "none",
            compile_time: Duration::ZERO,
            grace_time: Duration::ZERO,
            repaired: false,
        }
    }

    /// One line for people: what was written and how long it took.
    pub fn summary(&self) -> String {
        format!(
            "{} update: {} removed, {} added or changed; enforced after {:.3}s (cleared {} in {:.3}s, wrote in {:.3}s, checked in {:.3}s, compiled the {} lookup in {:.3}s), other half in sync after {:.3}s more{}",
            self.mode,
            self.removed,
            self.written,
            self.enforce_time.as_secs_f64(),
            self.cleared,
            self.clear_time.as_secs_f64(),
            self.fill_time.as_secs_f64(),
            self.check_time.as_secs_f64(),
            self.lookup,
            self.compile_time.as_secs_f64(),
            self.sync_time.as_secs_f64(),
            if self.repaired {
                "; an interrupted update was repaired"
            } else {
                ""
            }
        )
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn key_of(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(net.prefix_len() as u32, net.network().octets())
}

fn net_of(k: &Key<[u8; 16]>) -> Option<Ipv6Net> {
    Ipv6Net::new(k.data().into(), k.prefix_len() as u8).ok()
}

fn label_of(text: &str) -> Label {
    let mut l = Label::default();
    let mut n = text.len().min(gate_common::LABEL_LEN - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    l.bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
    l
}

fn text_of(l: &Label) -> String {
    let end = l
        .bytes
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(l.bytes.len());
    String::from_utf8_lossy(&l.bytes[..end]).into_owned()
}

/// Checks one entry's label against the kernel's label size.
fn check_label(e: &PrefixEntry) -> Result<()> {
    let max = gate_common::LABEL_LEN - 1;
    if e.label.len() > max {
        return Err(GateError::LabelTooLong {
            prefix: e.prefix,
            len: e.label.len(),
            max,
        });
    }
    if e.label.contains('\0') {
        return Err(GateError::LabelNul { prefix: e.prefix });
    }
    Ok(())
}

/// Distinct labels of `set` numbered in order of first use, after checking
/// every limit of the gate's maps: nothing is written unless all fit.
fn plan_labels(set: &PrefixSet, max_entries: u32, max_labels: u32) -> Result<BTreeMap<&str, u32>> {
    if set.len() > max_entries as usize {
        return Err(GateError::TooManyEntries {
            got: set.len(),
            max: max_entries,
        });
    }
    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for e in set.iter() {
        // Neighbours mostly share their label: check and count it once.
        if last == Some(e.label.as_str()) {
            continue;
        }
        check_label(e)?;
        let next = ids.len() as u32;
        ids.entry(e.label.as_str()).or_insert(next);
        last = Some(e.label.as_str());
    }
    if ids.len() > max_labels as usize {
        return Err(GateError::LabelsFull {
            got: ids.len(),
            max: max_labels,
        });
    }
    Ok(ids)
}

/// The digest of one entry in `Meta::digest`: SHA-256 over its verdict,
/// prefix length, address and label, as four little-endian lanes.
fn entry_hash(e: &PrefixEntry) -> [u64; 4] {
    let mut h = Sha256::new();
    h.update([e.verdict.to_raw() as u8, e.prefix.prefix_len()]);
    h.update(e.prefix.network().octets());
    h.update(e.label.as_bytes());
    let d = h.finalize();
    let lane = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    [lane(0), lane(1), lane(2), lane(3)]
}

fn digest_add(d: &mut [u64; 4], e: &PrefixEntry) {
    for (a, b) in d.iter_mut().zip(entry_hash(e)) {
        *a = a.wrapping_add(b);
    }
}

fn digest_sub(d: &mut [u64; 4], e: &PrefixEntry) {
    for (a, b) in d.iter_mut().zip(entry_hash(e)) {
        *a = a.wrapping_sub(b);
    }
}

/// The digest `Meta::digest` records for `set` (order independent: an
/// update adds and subtracts the entries it changes).
pub fn set_digest(set: &PrefixSet) -> [u64; 4] {
    let mut d = [0u64; 4];
    for e in set.iter() {
        digest_add(&mut d, e);
    }
    d
}

/// The environment variable that makes a writer SIGKILL itself right after
/// step N of an update (1 to [`STEPS`]): for tests only, which run the
/// writer in a child process and check that the next writer repairs what
/// it left.
pub const KILL_AT_STEP_ENV: &str = "WOTGATE_TEST_KILL_AT_STEP";
/// Steps of an update, in order: 1 journal written; 2 the inactive trie's
/// new labels written (a full update: the trie emptied); 3 half its entries
/// written; 4 all of them, and unused labels removed; 5 its generation and
/// the journal's next phase recorded; 6 the selector flipped; 7 to 9 the
/// same as 2 to 4 on the other trie; 10 the journal closed.
pub const STEPS: u32 = 10;
/// The step of a settings update (`Gate::set_settings`) between writing
/// the inactive settings slot and flipping to it.
pub const SETTINGS_STEP: u32 = 11;

/// The kill point of a settings update (see [`SETTINGS_STEP`]).
pub(crate) fn step_settings() {
    step(SETTINGS_STEP);
}

fn step(k: u32) {
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    let at = *AT.get_or_init(|| {
        std::env::var(KILL_AT_STEP_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if at == Some(k) {
        // SAFETY: plain kill(2) on this process; SIGKILL is not caught.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// A change to the trusted set: for each prefix, its new entry, or `None`
/// to remove it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    by_prefix: BTreeMap<Ipv6Net, Option<PrefixEntry>>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes::default()
    }

    /// What turns `old` into `new`: one pass over both (they are sorted).
    pub fn between(old: &PrefixSet, new: &PrefixSet) -> Changes {
        Self::between_at_most(old, new, usize::MAX).expect("no limit")
    }

    /// As [`Changes::between`], but `None` as soon as more than `limit`
    /// entries differ (nothing more is copied then).
    pub fn between_at_most(old: &PrefixSet, new: &PrefixSet, limit: usize) -> Option<Changes> {
        let mut c = Changes::default();
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        loop {
            if c.by_prefix.len() > limit {
                return None;
            }
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(o), None) => {
                    c.by_prefix.insert(o.prefix, None);
                    a.next();
                }
                (None, Some(n)) => {
                    c.by_prefix.insert(n.prefix, Some((*n).clone()));
                    b.next();
                }
                (Some(o), Some(n)) => match o.prefix.cmp(&n.prefix) {
                    std::cmp::Ordering::Less => {
                        c.by_prefix.insert(o.prefix, None);
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        c.by_prefix.insert(n.prefix, Some((*n).clone()));
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if o != n {
                            c.by_prefix.insert(n.prefix, Some((*n).clone()));
                        }
                        a.next();
                        b.next();
                    }
                },
            }
        }
        Some(c)
    }

    /// Removes `prefix` (nothing when the set does not hold it).
    pub fn remove(&mut self, prefix: Ipv6Net) -> &mut Self {
        self.by_prefix.insert(prefix.trunc(), None);
        self
    }

    /// Adds `entry`, or replaces the entry for its prefix.
    pub fn upsert(&mut self, entry: PrefixEntry) -> &mut Self {
        let prefix = entry.prefix.trunc();
        self.by_prefix
            .insert(prefix, Some(PrefixEntry { prefix, ..entry }));
        self
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

/// Label ids as both tries hold them: text to (id, entries using it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Labels {
    by_text: HashMap<String, (u32, u64)>,
    /// Ids no label uses, to hand out again.
    free: Vec<u32>,
    /// The lowest id never handed out.
    next: u32,
}

impl Labels {
    /// Fresh ids in order of first use, for a set written from scratch.
    fn of_set(set: &PrefixSet) -> Labels {
        let mut l = Labels::default();
        let mut last: Option<&str> = None;
        let mut run = 0u64;
        let flush = |l: &mut Labels, text: Option<&str>, run: u64| {
            if let Some(t) = text {
                let next = l.next;
                let e = l.by_text.entry(t.to_string()).or_insert((next, 0));
                if e.0 == next {
                    l.next += 1;
                }
                e.1 += run;
            }
        };
        for e in set.iter() {
            if last == Some(e.label.as_str()) {
                run += 1;
                continue;
            }
            flush(&mut l, last, run);
            last = Some(e.label.as_str());
            run = 1;
        }
        flush(&mut l, last, run);
        l
    }

    /// The ids a trie's label table holds, with references counted in `set`.
    fn of_table(table: &BTreeMap<u32, String>, set: &PrefixSet) -> Labels {
        let mut l = Labels::default();
        for (id, text) in table {
            l.by_text.entry(text.clone()).or_insert((*id, 0));
            l.next = l.next.max(id + 1);
        }
        for e in set.iter() {
            match l.by_text.get_mut(&e.label) {
                Some(v) => v.1 += 1,
                None => {
                    // An entry whose label id is missing from the table
                    // (read back as ""): give the text an id of its own.
                    let id = l.next;
                    l.next += 1;
                    l.by_text.insert(e.label.clone(), (id, 1));
                }
            }
        }
        let used: std::collections::HashSet<u32> = l.by_text.values().map(|v| v.0).collect();
        l.free = (0..l.next).filter(|i| !used.contains(i)).collect();
        l.free.reverse();
        l
    }

    fn id(&self, text: &str) -> u32 {
        self.by_text.get(text).map_or(u32::MAX, |v| v.0)
    }

    fn len(&self) -> usize {
        self.by_text.len()
    }
}

/// What both tries hold, as this handle last wrote or read them. Trusted
/// only while the metadata names its generation and digest for both tries
/// and no update is under way.
#[derive(Clone, Debug)]
pub struct Mirror {
    generation: u64,
    digest: [u64; 4],
    set: PrefixSet,
    labels: Labels,
    /// The compiled set as both copies hold it (same layout in both), when
    /// this handle wrote them; `None` after a repair or a read.
    live: Option<Live>,
}

/// One update, planned before anything is written.
struct Plan {
    /// Prefixes to delete (each held by the old set).
    remove: Vec<Ipv6Net>,
    /// Entries for prefixes the old set does not hold.
    add: Vec<PrefixEntry>,
    /// Entries for prefixes the old set holds with another value.
    change: Vec<PrefixEntry>,
    /// Labels to write before the entries, and to delete after them.
    new_labels: Vec<(u32, String)>,
    dead_labels: Vec<u32>,
    labels: Labels,
    /// The new set's digest; for a rewrite of a given set, computed while
    /// the first trie is written (`None` until then).
    digest: Option<[u64; 4]>,
    entries: usize,
    /// Entries removed, and added or changed (also for a rewrite, whose
    /// lists above stay empty).
    removed: usize,
    written: usize,
    /// Written from scratch with batch operations.
    full: bool,
}

/// The set a rewrite writes: given by the caller, or built here.
enum Target<'s> {
    Given(&'s PrefixSet),
    Built(PrefixSet),
}

impl Target<'_> {
    fn set(&self) -> &PrefixSet {
        match self {
            Target::Given(s) => s,
            Target::Built(s) => s,
        }
    }
}

/// How many entries differ between two sets: (removed, added or changed).
/// One merge pass, nothing copied.
fn count_changes(old: &PrefixSet, new: &PrefixSet) -> (usize, usize) {
    let (mut removed, mut written) = (0, 0);
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => {
                removed += 1;
                a.next();
            }
            (None, Some(_)) => {
                written += 1;
                b.next();
            }
            (Some(o), Some(n)) => match o.prefix.cmp(&n.prefix) {
                std::cmp::Ordering::Less => {
                    removed += 1;
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    written += 1;
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if o != n {
                        written += 1;
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    (removed, written)
}

/// A change of more than half the work of a rewrite (deleting the old
/// entries and writing the new ones) is written as a rewrite: a batch
/// operation costs about half a single-entry syscall per entry, and the
/// rewrite's check is by construction (an emptied trie, distinct keys
/// written) instead of one flagged write per entry.
fn rewrite_is_cheaper(changed: usize, old: usize, new: usize) -> bool {
    changed > 0 && changed * 2 > old + new
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `BPF_MAP_UPDATE_ELEM` flags: only a new key; only an existing one.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// Bytes of an entry, as the kernel lays it out.
const VALUE_BYTES: usize = std::mem::size_of::<Entry>();

fn value_bytes(v: &Entry) -> [u8; VALUE_BYTES] {
    let mut b = [0u8; VALUE_BYTES];
    b[..4].copy_from_slice(&v.verdict.to_ne_bytes());
    b[4..].copy_from_slice(&v.source.to_ne_bytes());
    b
}

fn sys_err(trie: usize, what: &str, e: std::io::Error) -> GateError {
    GateError::Verify {
        trie,
        problem: format!("{what}: {e}"),
    }
}

/// Whether an aya map error is the kernel's `errno`.
fn is_errno(e: &MapError, errno: i32) -> bool {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(errno),
        MapError::KeyNotFound => errno == libc::ENOENT,
        _ => false,
    }
}

pub(crate) fn journal_text(j: &Journal) -> String {
    let state = match j.state {
        gate_common::JOURNAL_FILL => "writing the inactive trie",
        gate_common::JOURNAL_SYNC => "flipped, writing the other trie",
        gate_common::JOURNAL_IDLE => "idle",
        _ => "unknown state",
    };
    let kind = if j.kind == gate_common::JOURNAL_FULL {
        "full"
    } else {
        "diff"
    };
    format!(
        "{kind} update by pid {} from generation {} to {}, {state} (trie {}), {} removed, {} written",
        j.pid, j.from_generation, j.to_generation, j.target, j.removed, j.written
    )
}

/// Whether the metadata says anything but "both tries hold the same set".
fn out_of_sync(m: &Meta) -> bool {
    m.journal.state != gate_common::JOURNAL_IDLE
        || m.generation[0] != m.generation[1]
        || m.entries[0] != m.entries[1]
        || m.digest[0] != m.digest[1]
        || (m.layout != gate_common::META_LAYOUT && (m.generation[0] | m.generation[1]) != 0)
}

/// A view of the active set read in one generation: the selector and the
/// metadata were the same before and after the read.
#[derive(Clone, Debug)]
pub struct Settled<T> {
    pub trie: usize,
    pub meta: Meta,
    pub value: T,
}

/// Optimistic reads before a reader takes the lock to read.
const OPTIMISTIC_READS: u32 = 3;

impl Gate {
    /// Index (0 or 1) of the trie the datapath reads now.
    pub fn active_trie(&self) -> Result<usize> {
        Ok((self.active.get(&0, 0).map_err(rd(maps::ACTIVE))? & gate_common::ACTIVE_TRIE) as usize)
    }

    pub fn meta(&self) -> Result<Meta> {
        self.meta.get(&0, 0).map_err(rd(maps::META))
    }

    /// Capacity of the tries and of the label tables, as pinned.
    fn capacity(&self) -> (u32, u32) {
        let entries = self.trust[0]
            .map()
            .info()
            .map(|i| i.max_entries())
            .unwrap_or(gate_common::TRUST_MAX_ENTRIES);
        let labels = self.labels[0]
            .map()
            .info()
            .map(|i| i.max_entries())
            .unwrap_or(gate_common::LABELS_MAX_ENTRIES);
        (entries, labels)
    }

    /// Runs `read` on the active trie until the selector and the metadata
    /// are the same after it as before (a load flipped nothing meanwhile),
    /// so what it read is one generation. After a few unlucky tries it
    /// reads under the lock (no load can flip then); never while printing.
    pub fn settled<T>(
        &self,
        mut read: impl FnMut(&Self, usize, &Meta) -> Result<T>,
    ) -> Result<Settled<T>> {
        for _ in 0..OPTIMISTIC_READS {
            let trie = self.active_trie()?;
            let meta = self.meta()?;
            let value = read(self, trie, &meta);
            // Only a flip changes the active trie, and a flip changes the
            // selector or that trie's generation (a trie is refilled only
            // after it stopped being active).
            let after = self.meta()?;
            if self.active_trie()? == trie && after.generation[trie] == meta.generation[trie] {
                return Ok(Settled {
                    trie,
                    meta,
                    value: value?,
                });
            }
        }
        let _guard = self.hold()?;
        let trie = self.active_trie()?;
        let meta = self.meta()?;
        let value = read(self, trie, &meta)?;
        Ok(Settled { trie, meta, value })
    }

    /// Replaces the trusted set atomically: the datapath sees the old set
    /// or the new one, never a mix. Every limit is checked before the first
    /// write; on any error before the flip the datapath keeps the set it
    /// had. Costs in proportion to the change when this handle (or the
    /// metadata's digest) knows what the tries hold; otherwise it reads the
    /// active set once first.
    pub fn load_set(&mut self, set: &PrefixSet) -> Result<LoadReport> {
        let (max_entries, max_labels) = self.capacity();
        if set.len() > max_entries as usize {
            return Err(GateError::TooManyEntries {
                got: set.len(),
                max: max_entries,
            });
        }
        let _guard = self.hold()?;
        let repaired = self.ensure_mirror()?;
        let mirror = self.mirror.as_ref().expect("ensured");
        // One pass that stops copying once the change is worth a rewrite.
        let limit = (mirror.set.len() + set.len()) / 2;
        let small = Changes::between_at_most(&mirror.set, set, limit);
        // A diff checks the labels it writes (the others are in the kernel
        // already); a rewrite checks them all. Both before any write.
        let mut r = if let Some(changes) = small {
            let mut plan = self.plan(&changes)?;
            let target = plan.full.then_some(Target::Given(set));
            if plan.full {
                plan_labels(set, max_entries, max_labels)?;
                plan.labels = Labels::of_set(set);
            }
            self.update(plan, target)?
        } else {
            plan_labels(set, max_entries, max_labels)?;
            let mirror = self.mirror.as_ref().expect("ensured");
            let (removed, written) = count_changes(&mirror.set, set);
            // Nothing copied for a change this large: the set is written
            // as it is given.
            let plan = Plan {
                remove: Vec::new(),
                add: Vec::new(),
                change: Vec::new(),
                new_labels: Vec::new(),
                dead_labels: Vec::new(),
                labels: Labels::of_set(set),
                digest: None,
                entries: set.len(),
                removed,
                written,
                full: true,
            };
            self.update(plan, Some(Target::Given(set)))?
        };
        r.repaired |= repaired;
        Ok(r)
    }

    /// Applies `changes` to the set the gate enforces, atomically, as
    /// [`Gate::load_set`] does with a whole set; the cost is in proportion
    /// to the change (after one read of the active set when this handle
    /// has not read or written it yet).
    pub fn apply_changes(&mut self, changes: &Changes) -> Result<LoadReport> {
        for e in changes.by_prefix.values().flatten() {
            check_label(e)?;
        }
        let _guard = self.hold()?;
        let repaired = self.ensure_mirror()?;
        let mut plan = self.plan(changes)?;
        let target = if plan.full {
            let set = self.applied(changes);
            plan.labels = Labels::of_set(&set);
            Some(Target::Built(set))
        } else {
            None
        };
        let mut r = self.update(plan, target)?;
        r.repaired |= repaired;
        Ok(r)
    }

    /// The set both tries hold, under the lock: this handle's copy when
    /// the metadata still names its generation and digest, else read from
    /// the active trie once (repairing an interrupted update first). It is
    /// what the datapath enforces.
    pub fn loaded_set(&mut self) -> Result<&PrefixSet> {
        let _guard = self.hold()?;
        self.ensure_mirror()?;
        Ok(&self.mirror.as_ref().expect("ensured").set)
    }

    /// Repairs the pair after an interrupted update (a journal that is not
    /// idle, or tries the metadata does not show in sync): the active trie
    /// is a complete set, so the other one is emptied and filled with it.
    /// Returns whether anything was repaired.
    pub fn repair(&mut self) -> Result<bool> {
        let _guard = self.hold()?;
        let meta = self.meta()?;
        if out_of_sync(&meta) {
            self.repair_locked()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Makes `self.mirror` what both tries hold; the caller holds the lock.
    /// Returns whether it had to repair the pair.
    fn ensure_mirror(&mut self) -> Result<bool> {
        let meta = self.meta()?;
        if out_of_sync(&meta) {
            self.repair_locked()?;
            return Ok(true);
        }
        let a = self.active_trie()?;
        if let Some(m) = &self.mirror {
            if m.generation == meta.generation[a] && m.digest == meta.digest[a] {
                return Ok(false);
            }
        }
        self.mirror = None;
        let (set, table) = self.read_half(a)?;
        let digest = set_digest(&set);
        if digest != meta.digest[a] {
            // Not what the metadata says both tries hold: trust only the
            // active trie, and rewrite the other from it.
            self.repair_locked()?;
            return Ok(true);
        }
        let labels = Labels::of_table(&table, &set);
        self.mirror = Some(Mirror {
            generation: meta.generation[a],
            digest,
            set,
            labels,
            live: None,
        });
        Ok(false)
    }

    /// One trie's set and its label table.
    fn read_half(&self, h: usize) -> Result<(PrefixSet, BTreeMap<u32, String>)> {
        let set = self.read_set(h)?;
        let mut table = BTreeMap::new();
        for item in self.labels[h].iter() {
            let (k, v) = item.map_err(rd(maps::LABELS[h]))?;
            table.insert(k, text_of(&v));
        }
        Ok((set, table))
    }

    /// The repair itself, under the lock: copies the active trie (and its
    /// label ids) to the other one, records both in sync, closes the journal.
    fn repair_locked(&mut self) -> Result<()> {
        self.mirror = None;
        let mut meta = self.meta()?;
        let journal = journal_text(&meta.journal);
        let fail = |e: GateError| GateError::Repair {
            journal: journal.clone(),
            problem: e.to_string(),
        };
        let a = self.active_trie()?;
        let (set, table) = self.read_half(a).map_err(fail)?;
        let labels = Labels::of_table(&table, &set);
        let h = 1 - a;
        self.write_full(h, &set, &labels, None, (0, 0, 0))
            .map_err(fail)?;
        // The copy may have been read until the interrupted flip.
        self.grace().map_err(fail)?;
        let (compiled, _) = self.recompile(None, &set, None).map_err(fail)?;
        self.write_copy(h, compiled.as_ref().map(|(l, p)| (l, p)))
            .map_err(fail)?;
        let digest = set_digest(&set);
        let generation = meta.generation[a];
        meta.generation = [generation; 2];
        meta.entries = [set.len() as u64; 2];
        meta.digest = [digest; 2];
        meta.loaded_at[h] = meta.loaded_at[a];
        meta.layout = gate_common::META_LAYOUT;
        meta.journal.state = gate_common::JOURNAL_IDLE;
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        tracing::info!(%journal, entries = set.len(), generation, "repaired the pair of tries after an interrupted update");
        // The copies may differ in layout now (the active one may have
        // been patched): the next update writes both whole.
        self.mirror = Some(Mirror {
            generation,
            digest,
            set,
            labels,
            live: None,
        });
        Ok(())
    }

    /// Plans `changes` against the mirror: what to delete, add and change,
    /// which labels to write and drop, the new digest; and whether to
    /// rewrite instead.
    fn plan(&self, changes: &Changes) -> Result<Plan> {
        let (max_entries, max_labels) = self.capacity();
        let m = self.mirror.as_ref().expect("ensured");
        let mut p = Plan {
            remove: Vec::new(),
            add: Vec::new(),
            change: Vec::new(),
            new_labels: Vec::new(),
            dead_labels: Vec::new(),
            labels: m.labels.clone(),
            digest: Some(m.digest),
            entries: m.set.len(),
            removed: 0,
            written: 0,
            full: false,
        };
        let mut digest = m.digest;
        // Reference deltas per label text, applied after the walk.
        let mut delta: HashMap<&str, i64> = HashMap::new();
        for (prefix, new) in &changes.by_prefix {
            let old = m.set.get(prefix);
            match (old, new) {
                (None, None) => {}
                (Some(o), None) => {
                    digest_sub(&mut digest, o);
                    *delta.entry(o.label.as_str()).or_default() -= 1;
                    p.remove.push(*prefix);
                    p.entries -= 1;
                }
                (Some(o), Some(n)) if o == n => {}
                (o, Some(n)) => {
                    check_label(n)?;
                    if let Some(o) = o {
                        digest_sub(&mut digest, o);
                        *delta.entry(o.label.as_str()).or_default() -= 1;
                        p.change.push(n.clone());
                    } else {
                        p.add.push(n.clone());
                        p.entries += 1;
                    }
                    digest_add(&mut digest, n);
                    *delta.entry(n.label.as_str()).or_default() += 1;
                }
            }
        }
        if p.entries > max_entries as usize {
            return Err(GateError::TooManyEntries {
                got: p.entries,
                max: max_entries,
            });
        }
        let mut added_labels = Vec::new();
        let mut dead = Vec::new();
        for (text, d) in delta {
            match p.labels.by_text.get_mut(text) {
                Some(v) => {
                    v.1 = (v.1 as i64 + d).max(0) as u64;
                    if v.1 == 0 {
                        dead.push(text.to_string());
                    }
                }
                None if d > 0 => added_labels.push((text.to_string(), d as u64)),
                None => {}
            }
        }
        let peak = p.labels.len() + added_labels.len();
        let after = peak - dead.len();
        if after > max_labels as usize {
            return Err(GateError::LabelsFull {
                got: after,
                max: max_labels,
            });
        }
        // New ids first, from ids free before this update: an id dropped
        // now is handed out only by a later update.
        added_labels.sort();
        for (text, refs) in added_labels {
            let id = p.labels.free.pop().unwrap_or_else(|| {
                p.labels.next += 1;
                p.labels.next - 1
            });
            p.labels.by_text.insert(text.clone(), (id, refs));
            p.new_labels.push((id, text));
        }
        for text in dead {
            if let Some((id, _)) = p.labels.by_text.remove(&text) {
                p.dead_labels.push(id);
                p.labels.free.push(id);
            }
        }
        p.digest = Some(digest);
        p.removed = p.remove.len();
        p.written = p.add.len() + p.change.len();
        // A rewrite (its caller gives the set and fresh label ids) when the
        // label table would overflow in the middle of a diff, or when the
        // change is that large.
        p.full = peak > max_labels as usize
            || rewrite_is_cheaper(p.removed + p.written, m.set.len(), p.entries);
        Ok(p)
    }

    /// The mirror's set with `changes` applied.
    fn applied(&self, changes: &Changes) -> PrefixSet {
        let mut set = self.mirror.as_ref().expect("ensured").set.clone();
        for (prefix, new) in &changes.by_prefix {
            match new {
                Some(e) => {
                    set.replace(e.clone());
                }
                None => {
                    set.remove(prefix);
                }
            }
        }
        set
    }

    /// The update, under the lock, from a trusted mirror: journal, the
    /// inactive trie, flip, the other trie, journal closed.
    fn update(&mut self, mut plan: Plan, target: Option<Target<'_>>) -> Result<LoadReport> {
        let start = Instant::now();
        let mut meta = self.meta()?;
        let a = self.active_trie()?;
        let t = 1 - a;
        let from = meta.generation[a];
        let generation = meta.generation[0].max(meta.generation[1]) + 1;
        meta.layout = gate_common::META_LAYOUT;
        meta.journal = Journal {
            state: gate_common::JOURNAL_FILL,
            target: t as u32,
            kind: if plan.full {
                gate_common::JOURNAL_FULL
            } else {
                gate_common::JOURNAL_DIFF
            },
            pid: std::process::id(),
            from_generation: from,
            to_generation: generation,
            removed: plan.removed as u64,
            written: plan.written as u64,
            digest: plan.digest.unwrap_or_default(),
        };
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        step(1);

        // Before the flip: the active trie is untouched, so on any error
        // the datapath keeps its set; the other trie is repaired from it.
        // A rewrite of a given set: its copy for the mirror and its digest
        // are made on another thread while this one writes the trie.
        let target_set = target.as_ref().map(Target::set);
        let (before, copied) = std::thread::scope(|scope| {
            let copy = match (&target, plan.digest) {
                (Some(Target::Given(s)), None) => {
                    let s: &PrefixSet = s;
                    Some(scope.spawn(move || (s.clone(), set_digest(s))))
                }
                _ => None,
            };
            let before = self.write_half(t, &plan, target_set, (2, 3, 4));
            (before, copy.map(|h| h.join().expect("copying the set")))
        });
        let mut new_set = match (copied, target) {
            (Some((set, digest)), _) => {
                plan.digest = Some(digest);
                Some(set)
            }
            (None, Some(Target::Given(s))) => Some(s.clone()),
            (None, Some(Target::Built(s))) => Some(s),
            (None, None) => None,
        };
        if plan.digest.is_none() {
            plan.digest = new_set.as_ref().map(set_digest);
        }
        let digest = plan.digest.unwrap_or_default();
        meta.journal.digest = digest;
        // The compiled copy of the same half, from the new set (a diff's
        // is the mirror's set with the plan applied).
        let mut applied = None;
        let before = before.and_then(|times| {
            let (mut old_live, mut changed) = (None, None);
            if new_set.is_none() {
                let mut m = self.mirror.take().expect("ensured");
                old_live = m.live.take();
                changed = Some(
                    plan.remove
                        .iter()
                        .copied()
                        .chain(plan.add.iter().chain(&plan.change).map(|e| e.prefix))
                        .collect::<Vec<_>>(),
                );
                for p in &plan.remove {
                    m.set.remove(p);
                }
                for e in plan.add.iter().chain(&plan.change) {
                    m.set.replace(e.clone());
                }
                applied = Some(m.set);
            }
            let set = new_set.as_ref().or(applied.as_ref()).expect("one of them");
            let (compiled, compile_time) = self.recompile(old_live, set, changed)?;
            self.write_copy(t, compiled.as_ref().map(|(l, p)| (l, p)))?;
            Ok((times, compiled, compile_time))
        });
        let ((cleared, clear_time, fill_time, check_time), compiled, compile_time) = match before {
            Ok(r) => r,
            Err(e) => {
                self.mirror = None;
                if let Err(r) = self.repair_locked() {
                    tracing::warn!(error = %r, "repairing after a failed update");
                }
                return Err(e);
            }
        };
        meta.generation[t] = generation;
        meta.entries[t] = plan.entries as u64;
        meta.digest[t] = digest;
        meta.loaded_at[t] = now_secs();
        meta.journal.state = gate_common::JOURNAL_SYNC;
        meta.journal.target = a as u32;
        self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
        step(5);
        // The trie bit alone; the settings bit stays as it is (both are
        // written only under the pin directory's lock, held here).
        let word = self.active.get(&0, 0).map_err(rd(maps::ACTIVE))?;
        let word = (word & !gate_common::ACTIVE_TRIE) | t as u32;
        self.active.set(0, word, 0).map_err(upd(maps::ACTIVE))?;
        step(6);
        let enforce_time = start.elapsed();

        // After the flip: the new set is enforced; the old active trie is
        // brought to it the same way.
        let t2 = Instant::now();
        let mut repaired = false;
        let mut grace_time = Duration::ZERO;
        let sync = self.grace().and_then(|g| {
            grace_time = g;
            self.write_copy(a, compiled.as_ref().map(|(l, p)| (l, p)))?;
            self.write_half(a, &plan, new_set.as_ref(), (7, 8, 9))
        });
        if let Err(e) = sync {
            tracing::warn!(error = %e, "bringing the other trie in sync; repairing it from the active one");
            self.repair_locked().map_err(|r| GateError::Repair {
                journal: journal_text(&meta.journal),
                problem: format!(
                    "{e}; then {r} (the new set IS enforced, generation {generation})"
                ),
            })?;
            repaired = true;
        } else {
            meta.generation[a] = generation;
            meta.entries[a] = plan.entries as u64;
            meta.digest[a] = digest;
            meta.loaded_at[a] = meta.loaded_at[t];
            meta.journal.state = gate_common::JOURNAL_IDLE;
            self.meta.set(0, meta, 0).map_err(upd(maps::META))?;
            step(10);
        }
        let sync_time = t2.elapsed();

        let (removed, written) = (plan.removed, plan.written);
        let mode = if plan.full { "full" } else { "diff" };
        let labels = plan.labels.len();
        let lookup = if compiled.is_some() {
            "compiled"
        } else {
            "trie"
        };
        let recompiled = match &compiled {
            Some((_, p)) if p.buckets.is_some() => "groups",
            Some(_) => "whole",
            None => "none",
        };
        if !repaired {
            let set = new_set.take().or(applied).expect("one of them");
            self.mirror = Some(Mirror {
                generation,
                digest,
                set,
                labels: plan.labels,
                live: compiled.map(|(l, _)| l),
            });
        }
        Ok(LoadReport {
            generation,
            trie: t,
            entries: plan.entries,
            labels,
            mode,
            removed,
            written,
            cleared,
            clear_time,
            fill_time,
            check_time,
            enforce_time,
            sync_time,
            lookup,
            recompiled,
            compile_time,
            grace_time,
            repaired,
        })
    }

    /// The compiled lookup for `set` after an update, the patch to write
    /// into each copy, and the time it took: `live` changed group by group
    /// when it is given with the `changed` prefixes (and that works), else
    /// compiled afresh. `None` when the set does not fit the gate's
    /// capacity (the datapath then reads the LPM trie, which holds any set).
    fn recompile(
        &self,
        live: Option<Live>,
        set: &PrefixSet,
        changed: Option<Vec<Ipv6Net>>,
    ) -> Result<(Option<(Live, Patch)>, Duration)> {
        let t = Instant::now();
        if let (Some(mut live), Some(changed)) = (live, changed) {
            match live.apply(set, &changed) {
                Ok(patch) => return Ok((Some((live, patch)), t.elapsed())),
                Err(why) => tracing::debug!(?why, "compiling the whole set"),
            }
        }
        let cap = self.lookup_capacity()?;
        let compiled = match Live::build(set, &cap) {
            Ok(live) => Some((live, Patch::full())),
            Err(e) => {
                tracing::warn!(error = %e, "the datapath looks this set up in the LPM trie");
                None
            }
        };
        Ok((compiled, t.elapsed()))
    }

    /// Writes the planned update into trie `h` (inactive): entry by entry,
    /// or emptied and filled from `target`. `steps` are the kill points
    /// after the labels, half the entries and all of them. Returns how
    /// many entries it deleted, and the times to delete, write and check.
    fn write_half(
        &mut self,
        h: usize,
        plan: &Plan,
        target: Option<&PrefixSet>,
        steps: (u32, u32, u32),
    ) -> Result<(usize, Duration, Duration, Duration)> {
        if let Some(set) = target {
            // The mirror is of the old set, which trie `h` holds in sync.
            let mirror = self.mirror.take();
            let r = self.write_full(h, set, &plan.labels, mirror.as_ref().map(|m| &m.set), steps);
            self.mirror = mirror;
            return r;
        }
        let name = maps::TRUST[h];
        let t0 = Instant::now();
        for (id, text) in &plan.new_labels {
            self.labels[h]
                .insert(id, label_of(text), 0)
                .map_err(upd(maps::LABELS[h]))?;
        }
        step(steps.0);
        let total = plan.removed + plan.written;
        let half = total / 2;
        let mut done = 0usize;
        let tick = |done: &mut usize| {
            *done += 1;
            if *done == half.max(1) {
                step(steps.1);
            }
        };
        for p in &plan.remove {
            match self.trust[h].remove(&key_of(p)) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {
                    return Err(GateError::Verify {
                        trie: h,
                        problem: format!("{p} should be there to remove, and is not"),
                    })
                }
                Err(e) => return Err(upd(name)(e)),
            }
            tick(&mut done);
        }
        let clear_time = t0.elapsed();
        let t1 = Instant::now();
        // BPF_NOEXIST for new prefixes and BPF_EXIST for changed ones: the
        // kernel confirms what the trie held, entry by entry.
        for (list, flags, what) in [
            (&plan.add, BPF_NOEXIST, "is there already"),
            (
                &plan.change,
                BPF_EXIST,
                "should be there to change, and is not",
            ),
        ] {
            for e in list {
                let value = Entry {
                    verdict: e.verdict.to_raw(),
                    source: plan.labels.id(&e.label),
                };
                match self.trust[h].insert(&key_of(&e.prefix), value, flags) {
                    Ok(()) => {}
                    Err(err) if is_errno(&err, libc::EEXIST) || is_errno(&err, libc::ENOENT) => {
                        return Err(GateError::Verify {
                            trie: h,
                            problem: format!("{} {what}", e.prefix),
                        })
                    }
                    Err(err) => return Err(upd(name)(err)),
                }
                tick(&mut done);
            }
        }
        for id in &plan.dead_labels {
            match self.labels[h].remove(id) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {}
                Err(e) => return Err(upd(maps::LABELS[h])(e)),
            }
        }
        step(steps.2);
        let fill_time = t1.elapsed();
        let t2 = Instant::now();
        // Read back a sample of what was written (each write's flag
        // proved the key; this catches wrong values).
        self.check_sample(
            h,
            plan.add.iter().chain(&plan.change),
            plan.written,
            SAMPLE_DIFF,
            &plan.labels,
        )?;
        Ok((plan.remove.len(), clear_time, fill_time, t2.elapsed()))
    }

    /// Empties trie `h` and its label table, then fills them with `set`
    /// and `labels` using batch operations. `old`: what the trie holds, if
    /// known (deleted by key; otherwise its keys are read first). The check
    /// is by construction (the trie verified empty, every distinct key
    /// written once) plus a sample read back.
    fn write_full(
        &mut self,
        h: usize,
        set: &PrefixSet,
        labels: &Labels,
        old: Option<&PrefixSet>,
        steps: (u32, u32, u32),
    ) -> Result<(usize, Duration, Duration, Duration)> {
        let t0 = Instant::now();
        let cleared = self.empty_half(h, old)?;
        step(steps.0);
        let clear_time = t0.elapsed();

        let t1 = Instant::now();
        let mut ids: Vec<(&u32, &String)> = labels.by_text.iter().map(|(t, v)| (&v.0, t)).collect();
        ids.sort();
        for (id, text) in ids {
            self.labels[h]
                .insert(id, label_of(text), 0)
                .map_err(upd(maps::LABELS[h]))?;
        }
        let n = set.len();
        let mut keys = Vec::with_capacity(n * KEY_BYTES);
        let mut values = Vec::with_capacity(n * VALUE_BYTES);
        let mut last: (&str, u32) = ("", labels.id(""));
        for e in set.iter() {
            if e.label != last.0 {
                last = (e.label.as_str(), labels.id(&e.label));
            }
            keys.extend_from_slice(&key_bytes(&e.prefix));
            values.extend_from_slice(&value_bytes(&Entry {
                verdict: e.verdict.to_raw(),
                source: last.1,
            }));
        }
        let half = n / 2;
        self.put_batch(h, &keys[..half * KEY_BYTES], &values[..half * VALUE_BYTES])?;
        step(steps.1);
        self.put_batch(h, &keys[half * KEY_BYTES..], &values[half * VALUE_BYTES..])?;
        step(steps.2);
        let fill_time = t1.elapsed();

        let t2 = Instant::now();
        self.check_sample(h, set.iter(), n, SAMPLE, labels)?;
        Ok((cleared, clear_time, fill_time, t2.elapsed()))
    }

    /// Writes entries into trie `h` with `BPF_MAP_UPDATE_BATCH`, or one by
    /// one where the kernel has no batch update for LPM tries.
    fn put_batch(&mut self, h: usize, keys: &[u8], values: &[u8]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let fd = self.trust[h].map().fd().as_fd();
        match super::sys::map_update_batch(fd, keys, KEY_BYTES, values, VALUE_BYTES) {
            Ok(()) => Ok(()),
            Err((0, e)) if super::sys::batch_unsupported(&e) => {
                for (k, v) in keys.chunks(KEY_BYTES).zip(values.chunks(VALUE_BYTES)) {
                    super::sys::map_update(fd, k, v).map_err(|e| sys_err(h, "writing", e))?;
                }
                Ok(())
            }
            Err((done, e)) => Err(sys_err(
                h,
                &format!("batch write stopped after {done} entries"),
                e,
            )),
        }
    }

    /// Deletes everything in trie `h` and its label table, and verifies
    /// both are empty. Returns how many entries it deleted.
    fn empty_half(&mut self, h: usize, old: Option<&PrefixSet>) -> Result<usize> {
        let fd = self.trust[h].map().fd().as_fd();
        let mut deleted = 0usize;
        if let Some(old) = old {
            let mut keys = Vec::with_capacity(old.len() * KEY_BYTES);
            for e in old.iter() {
                keys.extend_from_slice(&key_bytes(&e.prefix));
            }
            match super::sys::map_delete_batch(fd, &keys, KEY_BYTES) {
                Ok(()) => deleted += old.len(),
                // Not what it should hold: sweep what is left below.
                Err((done, _)) => deleted += done,
            }
        }
        for _ in 0..3 {
            let mut first = [0u8; KEY_BYTES];
            if !super::sys::map_next_key(fd, None, &mut first)
                .map_err(|e| sys_err(h, "reading", e))?
            {
                break;
            }
            let keys = match super::sys::map_keys_batch(fd, KEY_BYTES, VALUE_BYTES)
                .map_err(|e| sys_err(h, "reading keys", e))?
            {
                Some(k) => k,
                None => {
                    let mut k = Vec::new();
                    for key in self.trust[h].keys() {
                        let key = key.map_err(rd(maps::TRUST[h]))?;
                        let net = net_of(&key).ok_or_else(|| GateError::Inconsistent {
                            trie: h,
                            problem: "a key with an invalid prefix length".into(),
                        })?;
                        k.extend_from_slice(&key_bytes(&net));
                    }
                    k
                }
            };
            for k in keys.chunks(KEY_BYTES) {
                match super::sys::map_delete(fd, k) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(sys_err(h, "deleting", e)),
                }
            }
        }
        let mut first = [0u8; KEY_BYTES];
        if super::sys::map_next_key(fd, None, &mut first).map_err(|e| sys_err(h, "reading", e))? {
            return Err(GateError::Verify {
                trie: h,
                problem: "still holds entries after emptying it".into(),
            });
        }
        let ids: Vec<u32> = self.labels[h]
            .keys()
            .collect::<Result<_, _>>()
            .map_err(rd(maps::LABELS[h]))?;
        for id in &ids {
            match self.labels[h].remove(id) {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::ENOENT) => {}
                Err(e) => return Err(upd(maps::LABELS[h])(e)),
            }
        }
        if self.labels[h].keys().next().is_some() {
            return Err(GateError::Verify {
                trie: h,
                problem: "its label table still holds labels after emptying it".into(),
            });
        }
        Ok(deleted)
    }

    /// Trie `h` holds exactly the prefix of `sample` evenly spread entries
    /// of `entries` (`n` of them), with their verdicts and label ids.
    fn check_sample<'e>(
        &self,
        h: usize,
        entries: impl Iterator<Item = &'e PrefixEntry>,
        n: usize,
        sample: usize,
        labels: &Labels,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let fd = self.trust[h].map().fd().as_fd();
        let mut first = [0u8; KEY_BYTES];
        let any = super::sys::map_next_key(fd, None, &mut first)
            .map_err(|err| sys_err(h, "reading back", err))?;
        for e in entries.step_by((n / sample).max(1)) {
            self.check_entry(h, e, labels, any.then_some(&first))?;
        }
        Ok(())
    }

    /// Trie `h` holds exactly `e.prefix`, with `e`'s verdict and label id;
    /// `first`: the trie's first key (`None` when it is empty).
    fn check_entry(
        &self,
        h: usize,
        e: &PrefixEntry,
        labels: &Labels,
        first: Option<&[u8; KEY_BYTES]>,
    ) -> Result<()> {
        let fd = self.trust[h].map().fd().as_fd();
        let io = |err| sys_err(h, "reading back", err);
        let key = key_bytes(&e.prefix);
        let exact = match first {
            Some(first) => super::sys::lpm_has_exact(fd, &key, first).map_err(io)?,
            None => false,
        };
        let want = Entry {
            verdict: e.verdict.to_raw(),
            source: labels.id(&e.label),
        };
        let got = if exact {
            self.trust[h].get(&key_of(&e.prefix), 0).ok()
        } else {
            None
        };
        if got != Some(want) {
            return Err(GateError::Verify {
                trie: h,
                problem: format!(
                    "{} {} {} reads back as {got:?}",
                    e.verdict, e.prefix, e.label
                ),
            });
        }
        Ok(())
    }

    /// Reads one trie back as a prefix set with its labels.
    pub fn read_set(&self, trie: usize) -> Result<PrefixSet> {
        let mut labels = BTreeMap::new();
        for item in self.labels[trie].iter() {
            let (k, v) = item.map_err(rd(maps::LABELS[trie]))?;
            labels.insert(k, text_of(&v));
        }
        let mut set = PrefixSet::new();
        for item in self.trust[trie].iter() {
            let (k, v) = item.map_err(rd(maps::TRUST[trie]))?;
            let Some(prefix) = net_of(&k) else { continue };
            let verdict = Verdict::from_raw(v.verdict).unwrap_or(Verdict::Deny);
            let label = labels.get(&v.source).cloned().unwrap_or_default();
            set.insert(PrefixEntry {
                verdict,
                prefix,
                label,
            })
            .map_err(|problem| GateError::Inconsistent { trie, problem })?;
        }
        Ok(set)
    }

    /// The set the datapath reads now, read in one generation.
    pub fn active_set(&self) -> Result<PrefixSet> {
        Ok(self.settled(|g, trie, _| g.read_set(trie))?.value)
    }

    /// The entry a SYN from `addr` matches in the active set, as the
    /// datapath finds it: one longest-prefix lookup and its label, then
    /// which prefix matched (exact probes from /128 down); never the
    /// whole set.
    pub fn lookup(&self, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        Ok(self.settled(|g, trie, _| g.lookup_in(trie, addr))?.value)
    }

    fn lookup_in(&self, trie: usize, addr: Ipv6Addr) -> Result<Option<PrefixEntry>> {
        let map = &self.trust[trie];
        let value = match map.get(&Key::new(128, addr.octets()), 0) {
            Ok(v) => v,
            Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(rd(maps::TRUST[trie])(e)),
        };
        let label = match self.labels[trie].get(&value.source, 0) {
            Ok(l) => text_of(&l),
            Err(aya::maps::MapError::KeyNotFound) => String::new(),
            Err(e) => return Err(rd(maps::LABELS[trie])(e)),
        };
        Ok(Some(PrefixEntry {
            verdict: Verdict::from_raw(value.verdict).unwrap_or(Verdict::Deny),
            prefix: self.matched_prefix(trie, addr)?,
            label,
        }))
    }

    /// The longest prefix in trie `trie` that holds `addr`.
    fn matched_prefix(&self, trie: usize, addr: Ipv6Addr) -> Result<Ipv6Net> {
        let fd = self.trust[trie].map().fd().as_fd();
        let io = |e: std::io::Error| GateError::Io {
            path: self.pin_dir.join(maps::TRUST[trie]),
            cause: e,
        };
        let mut first = [0u8; KEY_BYTES];
        if super::sys::map_next_key(fd, None, &mut first).map_err(io)? {
            for len in (0..=128u8).rev() {
                let net = Ipv6Net::new(addr, len).expect("len <= 128").trunc();
                if super::sys::lpm_has_exact(fd, &key_bytes(&net), &first).map_err(io)? {
                    return Ok(net);
                }
            }
        }
        Err(GateError::Inconsistent {
            trie,
            problem: format!("a lookup of {addr} found an entry, but no prefix holding it"),
        })
    }
}

/// Bytes of an IPv6 LPM key: prefix length (host order), then the address.
const KEY_BYTES: usize = 4 + 16;

/// Entries read back after writing a trie: enough to catch a systematic
/// fault (wrong ids, wrong byte order), cheap beside the writes.
const SAMPLE: usize = 1024;
/// The same after a diff, whose every write's flag already proved its key.
const SAMPLE_DIFF: usize = 64;

fn key_bytes(net: &Ipv6Net) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..4].copy_from_slice(&u32::from(net.prefix_len()).to_ne_bytes());
    k[4..].copy_from_slice(&net.network().octets());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_before_anything_is_written() {
        let set = |text: &str| PrefixSet::parse(text, "t").unwrap();
        let two = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        assert_eq!(plan_labels(&two, 2, 2).unwrap().len(), 2);
        assert!(matches!(
            plan_labels(&two, 1, 2),
            Err(GateError::TooManyEntries { got: 2, max: 1 })
        ));
        assert!(matches!(
            plan_labels(&two, 2, 1),
            Err(GateError::LabelsFull { got: 2, max: 1 })
        ));
        let mut long = PrefixSet::new();
        long.insert(PrefixEntry {
            verdict: Verdict::Allow,
            prefix: "2001:db8::/32".parse().unwrap(),
            label: "x".repeat(gate_common::LABEL_LEN),
        })
        .unwrap();
        assert!(matches!(
            plan_labels(&long, 9, 9),
            Err(GateError::LabelTooLong { .. })
        ));
    }

    fn set(text: &str) -> PrefixSet {
        PrefixSet::parse(text, "t").unwrap()
    }

    #[test]
    fn changes_between_two_sets_are_what_turns_one_into_the_other() {
        let old = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\ndeny 2001:db8:3::/48 c\n");
        let new =
            set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 B\nallow 2001:db8:4::/48 d\n");
        let c = Changes::between(&old, &new);
        let want: Vec<(String, Option<String>)> = c
            .by_prefix
            .iter()
            .map(|(p, e)| (p.to_string(), e.as_ref().map(|e| e.label.clone())))
            .collect();
        assert_eq!(
            want,
            [
                ("2001:db8:2::/48".into(), Some("B".into())),
                ("2001:db8:3::/48".into(), None),
                ("2001:db8:4::/48".into(), Some("d".into())),
            ]
        );
        assert!(Changes::between(&new, &new).is_empty());
        assert_eq!(count_changes(&old, &new), (1, 2));
        assert_eq!(Changes::between_at_most(&old, &new, 3), Some(c.clone()));
        assert_eq!(Changes::between_at_most(&old, &new, 2), None);
        assert_eq!(Changes::between(&PrefixSet::new(), &new).len(), 3);
    }

    #[test]
    fn the_digest_is_order_free_and_follows_changes() {
        let a = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        let b = set("allow 2001:db8:2::/48 b\nallow 2001:db8:1::/48 a\n");
        assert_eq!(set_digest(&a), set_digest(&b));
        assert_eq!(set_digest(&PrefixSet::new()), [0; 4]);
        // Removing and adding entries moves it exactly to the new set's.
        let c = set("allow 2001:db8:2::/48 b\ndeny 2001:db8:9::/48 a\n");
        let mut d = set_digest(&a);
        digest_sub(&mut d, a.get(&"2001:db8:1::/48".parse().unwrap()).unwrap());
        digest_add(&mut d, c.get(&"2001:db8:9::/48".parse().unwrap()).unwrap());
        assert_eq!(d, set_digest(&c));
        // Verdict and label count.
        assert_ne!(
            set_digest(&set("allow 2001:db8:1::/48 a\n")),
            set_digest(&set("deny 2001:db8:1::/48 a\n"))
        );
        assert_ne!(
            set_digest(&set("allow 2001:db8:1::/48 a\n")),
            set_digest(&set("allow 2001:db8:1::/48 b\n"))
        );
    }

    #[test]
    fn label_ids_are_counted_and_freed_ids_found_again() {
        let s = set("allow 2001:db8:1::/48 x\nallow 2001:db8:2::/48 y\nallow 2001:db8:3::/48 x\n");
        let l = Labels::of_set(&s);
        assert_eq!(l.by_text["x"], (0, 2));
        assert_eq!(l.by_text["y"], (1, 1));
        assert_eq!((l.next, l.len()), (2, 2));
        // Read back from a table with a hole at 1 and an unused id 3.
        let table: BTreeMap<u32, String> = [(0, "x".into()), (2, "y".into()), (3, "z".into())]
            .into_iter()
            .collect();
        let l = Labels::of_table(&table, &s);
        assert_eq!(l.by_text["x"], (0, 2));
        assert_eq!(l.by_text["y"], (2, 1));
        assert_eq!(l.by_text["z"], (3, 0));
        assert_eq!(l.free, [1]);
        assert_eq!(l.id("nothing"), u32::MAX);
    }

    #[test]
    fn a_change_of_more_than_half_a_rewrite_is_rewritten() {
        assert!(!rewrite_is_cheaper(0, 0, 0));
        assert!(!rewrite_is_cheaper(1, 1_000_000, 1_000_000));
        assert!(!rewrite_is_cheaper(1_000_000, 1_000_000, 1_000_000));
        assert!(rewrite_is_cheaper(1_000_001, 1_000_000, 1_000_000));
        // A first load is all writes: rewritten.
        assert!(rewrite_is_cheaper(10, 0, 10));
    }

    #[test]
    fn keys_are_laid_out_as_the_kernel_reads_them() {
        let net: Ipv6Net = "2001:db8:1::/48".parse().unwrap();
        let k = key_bytes(&net);
        assert_eq!(u32::from_ne_bytes(k[..4].try_into().unwrap()), 48);
        assert_eq!(&k[4..8], &[0x20, 0x01, 0x0d, 0xb8]);
    }

    #[test]
    fn labels_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let l = label_of(&long);
        let back = text_of(&l);
        assert!(back.len() < gate_common::LABEL_LEN);
        assert!(back.chars().all(|c| c == 'é'));
        assert_eq!(text_of(&label_of("isp")), "isp");
        assert_eq!(text_of(&label_of("")), "");
    }
}
