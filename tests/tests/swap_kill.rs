//! A writer killed at every step of an update: the datapath enforces the
//! old set or the new one, never a mix (a prefix in both always passes),
//! and the next writer repairs the pair (both tries and both label tables
//! hold the active set again, the metadata in sync, the journal idle).
//! Both kinds of update: a small diff (entry by entry) and a rewrite (the
//! trie emptied and filled with batch operations). The writer is the real
//! `wotgate prefixes load` in a child process, told to SIGKILL itself after
//! step k by the test-only `WOTGATE_TEST_KILL_AT_STEP`.

use std::{collections::BTreeMap, net::Ipv6Addr, os::unix::process::ExitStatusExt, path::Path};

use aya::maps::{HashMap, Map, MapData};
use gate_common::{lookup::HDR_VALID, maps, Label, JOURNAL_IDLE};
use integration_tests::{wotgate_cmd, PinnedGate, TmpDir};
use wotgate::{
    gate::{
        compile::compile,
        replay::{syn_frame, XDP_DROP, XDP_PASS},
        swap::{set_digest, KILL_AT_STEP_ENV, STEPS},
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

/// Old and new sets: a small diff (the new set changes ten entries, adds
/// and drops labels) and a rewrite (nearly everything differs).
fn sets(rewrite: bool) -> (String, String) {
    let common = format!("allow {BOTH} both\n");
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

/// Both tries, both label tables and the metadata hold `want`, in sync.
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
    let compiled = compile(want, &gate.lookup_capacity().unwrap()).unwrap();
    for h in 0..2 {
        let header = gate.lookup_header(h).unwrap();
        assert_ne!(header.flags & HDR_VALID, 0, "{what}: compiled copy {h}");
        assert_eq!(header, compiled.header, "{what}: compiled copy {h}");
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

fn kill_at_every_step(rewrite: bool) {
    let tag = if rewrite { "kf" } else { "kd" };
    let mut pg = PinnedGate::new(tag);
    pg.release();
    let pin = pg.path().to_path_buf();
    let t = TmpDir::new(tag);
    let (old_text, new_text) = sets(rewrite);
    let (old_file, new_file) = (t.file("old", &old_text), t.file("new", &new_text));
    let old = PrefixSet::parse(&old_text, "old").unwrap();
    let new = PrefixSet::parse(&new_text, "new").unwrap();
    assert!(load(&pin, &old_file, None).success());
    assert_in_sync(&pin, &old, "first load");

    for k in 1..=STEPS {
        let what = format!("{tag} killed after step {k}");
        let status = load(&pin, &new_file, Some(k));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status:?}");

        // Before any repair: the datapath enforces one whole set.
        let gate = Gate::open(&pin).unwrap();
        let active = gate.read_set(gate.active_trie().unwrap()).unwrap();
        let (expect, other) = if k <= 5 { (&old, &new) } else { (&new, &old) };
        assert_eq!(&active, expect, "{what}: the active set");
        assert_ne!(&active, other);
        let meta = gate.meta().unwrap();
        assert_eq!(
            meta.journal.state == JOURNAL_IDLE,
            k == STEPS,
            "{what}: the journal says an update was under way: {meta:?}"
        );
        assert_eq!(action(&gate, BOTH), XDP_PASS, "{what}: in both sets");
        let (kept, gone) = if k <= 5 {
            (OLD_ONLY, NEW_ONLY)
        } else {
            (NEW_ONLY, OLD_ONLY)
        };
        assert_eq!(action(&gate, kept), XDP_PASS, "{what}: {kept}");
        assert_eq!(action(&gate, gone), XDP_DROP, "{what}: {gone}");
        drop(gate);

        if k % 2 == 1 {
            // The next writer repairs: here explicitly, keeping the set.
            let mut gate = Gate::open(&pin).unwrap();
            assert_eq!(gate.repair().unwrap(), k != STEPS, "{what}");
            drop(gate);
            assert_in_sync(&pin, expect, &format!("{what}, repaired"));
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
    assert_eq!(r["mode"], if rewrite { "full" } else { "diff" }, "{r:#}");
    assert_eq!(r["repaired"], false, "{r:#}");
    assert_in_sync(&pin, &new, "undisturbed");
    assert!(load(&pin, &old_file, None).success());
    assert_in_sync(&pin, &old, "undisturbed back");
}

#[test]
fn a_diff_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(false);
}

#[test]
fn a_rewrite_killed_at_every_step_leaves_one_set_and_is_repaired() {
    kill_at_every_step(true);
}
