//! A writer killed at every step of an update: the datapath enforces the
//! old set or the new one, never a mix (a prefix in both always passes),
//! and the next writer repairs the pair (both tries and both label tables
//! hold the active set again, the metadata in sync, the journal idle).
//! Every kind of update: a small diff (entry by entry), a rewrite enforced
//! ahead of its trie (compiled copy, flip, then the trie emptied and filled
//! with batch operations; a kill before SYNC is undone: the old set), and
//! a rewrite with a prefix shorter than /32 (the trie before the flip), and
//! a diff whose new set outgrows the records (rewritten ahead, the set moving
//! from the records to the tries, and back when the old set is loaded). The
//! writer is the real `wotgate prefixes load` in a child process, told to
//! SIGKILL itself after step k by the test-only `WOTGATE_TEST_KILL_AT_STEP`,
//! or to fail there by `WOTGATE_TEST_FAIL_AT_STEP`.

use std::{collections::BTreeMap, net::Ipv6Addr, os::unix::process::ExitStatusExt, path::Path};

use aya::maps::{HashMap, Map, MapData};
use gate_common::{
    lookup::{LookupHeader, HDR_RECORD, HDR_VALID},
    maps,
    record::record_capacity,
    Label, JOURNAL_AHEAD, JOURNAL_IDLE,
};
use integration_tests::{wotgate_cmd, PinnedGate, TmpDir};
use wotgate::{
    gate::{
        compile::{compile, Capacity},
        replay::{syn_frame, XDP_DROP, XDP_PASS},
        swap::{set_digest, AHEAD_STEPS, FAIL_AT_STEP_ENV, KILL_AT_STEP_ENV, STEPS},
        Gate,
    },
    model::prefixes::PrefixSet,
};

/// Allowed in both sets, under the same label: never dropped.
const BOTH: &str = "2001:db8:b0:1::/64";
/// Only in the old set, only in the new set.
const OLD_ONLY: &str = "2001:db8:01d::/48";
const NEW_ONLY: &str = "2001:db8:0e0::/48";

fn addr_in(net: &str) -> Ipv6Addr {
    let n: ipnet::Ipv6Net = net.parse().unwrap();
    Ipv6Addr::from(u128::from(n.network()) | 1)
}

/// `n` bulk prefixes from `base`, in runs of ten per label.
fn bulk(n: usize, base: u16, label: &str) -> String {
    (0..n)
        .map(|i| format!("allow 2001:db8:{base:x}:{:x}::/64 {label}-{}\n", i, i / 10))
        .collect()
}

/// Allowed in both sets of the `Short` kind: shorter than /32, outside the
/// others.
const SHORT: &str = "3fff::/20";

/// The update a test is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A small diff (the new set changes ten entries, adds and drops labels).
    Diff,
    /// A rewrite (nearly everything differs): enforced ahead of its trie.
    Rewrite,
    /// The same with a prefix shorter than /32 in both sets: the datapath
    /// may read the trie on a miss, so the trie is written before the flip.
    Short,
    /// A small diff whose new set no longer fits the records (the old one
    /// does): rewritten ahead of its trie, the set moving from the records
    /// to the tries (and back when the old set is loaded again).
    Grow,
}

/// Entries the records of a `Grow` gate hold: the old set, not the new.
const GROW_ROOM: u64 = 3010;

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Diff => "kd",
            Kind::Rewrite => "kf",
            Kind::Short => "ks",
            Kind::Grow => "kg",
        }
    }

    fn mode(self) -> &'static str {
        match self {
            Kind::Diff => "diff",
            Kind::Rewrite | Kind::Grow => "full-ahead",
            Kind::Short => "full",
        }
    }

    /// The kill points, in the order the update passes them.
    fn steps(self) -> Vec<u32> {
        match self {
            Kind::Rewrite | Kind::Grow => AHEAD_STEPS.to_vec(),
            _ => (1..=STEPS).collect(),
        }
    }

    /// Whether the datapath enforces the new set once killed after step k.
    fn enforced_after(self, k: u32) -> bool {
        match self {
            Kind::Rewrite | Kind::Grow => !matches!(k, 1 | 12),
            _ => k > 5,
        }
    }

    /// Whether the set the gate stands by (what readers and the repair
    /// keep) is the new one once killed after step k: for a rewrite
    /// enforced ahead, only once its trie is complete and SYNC recorded.
    fn kept_after(self, k: u32) -> bool {
        match self {
            Kind::Rewrite | Kind::Grow => matches!(k, 5 | 7..=10),
            _ => k > 5,
        }
    }
}

/// Old and new sets of `kind`.
fn sets(kind: Kind) -> (String, String) {
    let rewrite = !matches!(kind, Kind::Diff | Kind::Grow);
    let mut common = format!("allow {BOTH} both\n");
    if kind == Kind::Short {
        common.push_str(&format!("allow {SHORT} short\n"));
    }
    let old = format!(
        "{common}allow {OLD_ONLY} old-only\n{}",
        bulk(3000, 0x1000, "a")
    );
    let new = if rewrite {
        format!(
            "{common}allow {NEW_ONLY} new-only\n{}",
            bulk(3000, 0x2000, "b")
        )
    } else {
        let mut b = bulk(3000, 0x1000, "a");
        // Ten entries change label (one label is dropped, one is new).
        b = b.replace("a-5\n", "fresh\n");
        if kind == Kind::Grow {
            b.push_str(&bulk(50, 0x3000, "c"));
        }
        format!("{common}allow {NEW_ONLY} new-only\n{b}")
    };
    (old, new)
}

fn label_table(pin: &Path, h: usize) -> BTreeMap<u32, Vec<u8>> {
    let data = MapData::from_pin(pin.join(maps::LABELS[h])).unwrap();
    let map: HashMap<MapData, u32, Label> = Map::from_map_data(data).unwrap().try_into().unwrap();
    map.iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k, v.bytes.to_vec())
        })
        .collect()
}

/// Both halves (records, tries, copies), both label tables and the
/// metadata hold `want`, in sync; in the records when it fits them (the
/// tries then hold only its prefixes shorter than /32), else in the tries.
fn assert_in_sync(pin: &Path, want: &PrefixSet, what: &str) {
    let gate = Gate::open(pin).unwrap();
    let meta = gate.meta().unwrap();
    let a = gate.active_trie().unwrap();
    assert_eq!(meta.journal.state, JOURNAL_IDLE, "{what}: {meta:?}");
    assert_eq!(meta.generation[0], meta.generation[1], "{what}: {meta:?}");
    assert_eq!(meta.entries, [want.len() as u64; 2], "{what}: {meta:?}");
    assert_eq!(meta.digest, [set_digest(want); 2], "{what}: {meta:?}");
    assert_eq!(gate.read_set(a).unwrap(), *want, "{what}: active trie");
    assert_eq!(gate.read_set(1 - a).unwrap(), *want, "{what}: other trie");
    // Both compiled copies hold the set, compiled the same way.
    let cap = gate.lookup_capacity().unwrap();
    let compiled = compile(want, &cap).unwrap();
    let record = want.len() as u64 <= record_capacity(cap.record);
    let short = want.iter().filter(|e| e.prefix.prefix_len() < 32).count();
    for h in 0..2 {
        let header = gate.lookup_header(h).unwrap();
        assert_ne!(header.flags & HDR_VALID, 0, "{what}: compiled copy {h}");
        assert_eq!(header.flags & HDR_RECORD != 0, record, "{what}: copy {h}");
        let bare = LookupHeader {
            flags: header.flags & !HDR_RECORD,
            ..header
        };
        assert_eq!(bare, compiled.header, "{what}: compiled copy {h}");
        let counts = gate.half_counts(h).unwrap();
        let want_counts = if record {
            (want.len(), short)
        } else {
            (0, want.len())
        };
        assert_eq!(counts, want_counts, "{what}: half {h} (record, trie)");
    }
    assert_eq!(
        label_table(pin, 0),
        label_table(pin, 1),
        "{what}: label tables"
    );
    let used: std::collections::BTreeSet<&str> = want.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        label_table(pin, a).len(),
        used.len(),
        "{what}: no label left over"
    );
}

fn action(gate: &Gate, net: &str) -> u32 {
    let frame = syn_frame(
        addr_in(net).into(),
        "2001:db8:25::1".parse::<Ipv6Addr>().unwrap().into(),
        40000,
        25,
    );
    gate.runner().unwrap().run(&frame).unwrap().action
}

fn load(pin: &Path, file: &Path, kill_at: Option<u32>) -> std::process::ExitStatus {
    let mut c = wotgate_cmd(
        None,
        pin,
        &["prefixes", "load", "--force", file.to_str().unwrap()],
    );
    if let Some(k) = kill_at {
        c.env(KILL_AT_STEP_ENV, k.to_string());
    }
    c.stdout(std::process::Stdio::null());
    c.status().expect("run wotgate")
}

fn kill_at_every_step(kind: Kind) {
    let tag = kind.tag();
    let mut pg = if kind == Kind::Grow {
        let cap = Capacity {
            record: (GROW_ROOM * 4).div_ceil(3) as u32,
            ..Capacity::default()
        };
        assert_eq!(record_capacity(cap.record), GROW_ROOM);
        PinnedGate::with_capacity(tag, &cap)
    } else {
        PinnedGate::new(tag)
    };
    pg.release();
    let pin = pg.path().to_path_buf();
    let t = TmpDir::new(tag);
    let (old_text, new_text) = sets(kind);
    let (old_file, new_file) = (t.file("old", &old_text), t.file("new", &new_text));
    let old = PrefixSet::parse(&old_text, "old").unwrap();
    let new = PrefixSet::parse(&new_text, "new").unwrap();
    assert!(load(&pin, &old_file, None).success());
    assert_in_sync(&pin, &old, "first load");

    let steps = kind.steps();
    for &k in &steps {
        let what = format!("{tag} killed after step {k}");
        let status = load(&pin, &new_file, Some(k));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status:?}");

        // Before any repair: the datapath enforces one whole set, and
        // readers see one whole set (the one a repair keeps).
        let gate = Gate::open(&pin).unwrap();
        let (expect, other) = if kind.kept_after(k) {
            (&new, &old)
        } else {
            (&old, &new)
        };
        let active = gate.active_set().unwrap();
        assert_eq!(&active, expect, "{what}: the active set as read");
        assert_ne!(&active, other);
        let meta = gate.meta().unwrap();
        assert_eq!(
            meta.journal.state == JOURNAL_IDLE,
            k == STEPS,
            "{what}: the journal says an update was under way: {meta:?}"
        );
        if matches!(kind, Kind::Rewrite | Kind::Grow) {
            let ahead = meta.journal.state == JOURNAL_AHEAD;
            assert_eq!(ahead, !kind.kept_after(k), "{what}: {meta:?}");
            if ahead {
                // The other readers see the same set, and say why.
                let st = gate.status().unwrap();
                assert_eq!(st.entries.len(), old.len(), "{what}: inspect");
                let note = st.update_under_way.unwrap_or_default();
                assert!(note.contains("enforced ahead"), "{what}: {note}");
                assert_eq!(gate.lookup(addr_in(NEW_ONLY)).unwrap(), None, "{what}");
                assert!(gate.lookup(addr_in(OLD_ONLY)).unwrap().is_some(), "{what}");
                let k = wotgate::daemon::metrics::read_kernel(&pin).unwrap();
                assert_eq!(k.entries, old.len(), "{what}: the daemon's kernel view");
                assert_eq!(
                    k.generation,
                    meta.generation[1 - meta.journal.target as usize]
                );
            }
        }
        assert_eq!(action(&gate, BOTH), XDP_PASS, "{what}: in both sets");
        if kind == Kind::Short {
            assert_eq!(action(&gate, SHORT), XDP_PASS, "{what}: {SHORT}");
        }
        let (kept, gone) = if kind.enforced_after(k) {
            (NEW_ONLY, OLD_ONLY)
        } else {
            (OLD_ONLY, NEW_ONLY)
        };
        assert_eq!(action(&gate, kept), XDP_PASS, "{what}: {kept}");
        assert_eq!(action(&gate, gone), XDP_DROP, "{what}: {gone}");
        drop(gate);

        if k % 2 == 1 {
            // The next writer repairs: here explicitly, keeping the set
            // (undoing an update killed while enforced ahead).
            let mut gate = Gate::open(&pin).unwrap();
            assert_eq!(gate.repair().unwrap(), k != STEPS, "{what}");
            drop(gate);
            assert_in_sync(&pin, expect, &format!("{what}, repaired"));
            let gate = Gate::open(&pin).unwrap();
            let (kept, gone) = if expect == &new {
                (NEW_ONLY, OLD_ONLY)
            } else {
                (OLD_ONLY, NEW_ONLY)
            };
            assert_eq!(action(&gate, kept), XDP_PASS, "{what}, repaired: {kept}");
            assert_eq!(action(&gate, gone), XDP_DROP, "{what}, repaired: {gone}");
            drop(gate);
            assert!(load(&pin, &old_file, None).success(), "{what}");
        } else {
            // The next load repairs first, then updates.
            assert!(load(&pin, &old_file, None).success(), "{what}");
        }
        assert_in_sync(&pin, &old, &format!("{what}, then the old set loaded"));
        let gate = Gate::open(&pin).unwrap();
        assert_eq!(action(&gate, OLD_ONLY), XDP_PASS, "{what}");
        assert_eq!(action(&gate, NEW_ONLY), XDP_DROP, "{what}");
    }
    // And undisturbed, both ways, the kind of update this test is about.
    let out = wotgate_cmd(
        None,
        &pin,
        &[
            "prefixes",
            "load",
            "--force",
            "--json",
            new_file.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], kind.mode(), "{r:#}");
    assert_eq!(r["repaired"], false, "{r:#}");
    assert_in_sync(&pin, &new, "undisturbed");
    assert!(load(&pin, &old_file, None).success());
    assert_in_sync(&pin, &old, "undisturbed back");
}

#[test]
fn a_diff_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(Kind::Diff);
}

#[test]
fn a_rewrite_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(Kind::Rewrite);
}

#[test]
fn a_rewrite_with_a_short_prefix_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(Kind::Short);
}

#[test]
fn a_diff_outgrowing_the_records_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(Kind::Grow);
}

/// A rewrite enforced ahead of its trie that fails after the flip (its
/// trie emptied, half filled, filled) or just before it: the command
/// fails, the old set is enforced again and both halves hold it.
#[test]
fn a_rewrite_enforced_ahead_that_fails_is_undone() {
    let kind = Kind::Rewrite;
    let mut pg = PinnedGate::new("af");
    pg.release();
    let pin = pg.path().to_path_buf();
    let t = TmpDir::new("af");
    let (old_text, new_text) = sets(kind);
    let (old_file, new_file) = (t.file("old", &old_text), t.file("new", &new_text));
    let old = PrefixSet::parse(&old_text, "old").unwrap();
    let new = PrefixSet::parse(&new_text, "new").unwrap();
    assert!(load(&pin, &old_file, None).success());
    for k in [12, 13, 14, 15, 16] {
        let what = format!("failed after step {k}");
        let out = wotgate_cmd(
            None,
            &pin,
            &["prefixes", "load", "--force", new_file.to_str().unwrap()],
        )
        .env(FAIL_AT_STEP_ENV, k.to_string())
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(err.contains(&format!("after step {k}")), "{what}: {err}");
        assert_in_sync(&pin, &old, &what);
        let gate = Gate::open(&pin).unwrap();
        assert_eq!(action(&gate, BOTH), XDP_PASS, "{what}");
        assert_eq!(action(&gate, OLD_ONLY), XDP_PASS, "{what}");
        assert_eq!(action(&gate, NEW_ONLY), XDP_DROP, "{what}");
    }
    assert!(load(&pin, &new_file, None).success());
    assert_in_sync(&pin, &new, "then loaded undisturbed");
}
