//! Faults in what the gate reads and shows: captures with records that
//! cannot run (skipped and named, the rest replayed, in bounded memory),
//! pcapng, `check` as one lookup (and IPv4 answered), readers that see one
//! generation while loads run, limits checked before anything is written.

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use integration_tests::{
    many_prefixes,
    packet::{Builder, SYN},
    wait_with_peak_rss, wotgate_cmd, PinnedGate, TmpDir,
};

fn wotgate(pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(None, pin, args).output().expect("run wotgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn must(pin: &Path, args: &[&str]) -> String {
    let out = wotgate(pin, args);
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json(pin: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&must(pin, args)).expect("json output")
}

/// A pcap file (little endian, Ethernet) of `records`.
fn pcap(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xA1B2C3D4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for r in records {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

fn syn(src: &str) -> Vec<u8> {
    let dst = "2001:db8:ffff::1".parse().unwrap();
    Builder::ipv6_tcp(src.parse().unwrap(), dst, 4000, 25, SYN).build()
}

fn trusted_gate(tag: &str, t: &TmpDir) -> PinnedGate {
    let mut pg = PinnedGate::new(tag);
    pg.release();
    let f = t.file("s.prefixes", "allow 2001:db8:1::/48 peer\n");
    must(pg.path(), &["prefixes", "load", f.to_str().unwrap()]);
    pg
}

#[test]
fn replay_skips_what_it_cannot_run_names_it_and_replays_the_rest() {
    let t = TmpDir::new("rs");
    let pg = trusted_gate("rs", &t);
    // Longer than a test run takes (about 73 KB on 6.18).
    let mut jumbo = syn("2001:db8:1::7");
    jumbo.resize(100_000, 0);
    let records = vec![
        syn("2001:db8:1::7"),
        Vec::new(),
        vec![0u8; 13],
        syn("2001:db8:2::7"),
        jumbo,
        syn("2001:db8:1::8"),
        syn("2001:db8:2::8"),
    ];
    let mut bytes = pcap(&records);
    bytes.truncate(bytes.len() - 10); // the last record is cut
    let cap = t.0.join("cap.pcap");
    std::fs::write(&cap, bytes).unwrap();

    let out = wotgate(pg.path(), &["replay", cap.to_str().unwrap(), "--json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "partial: {err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ran: Vec<(u64, &str, &str)> = r["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["packet"].as_u64().unwrap(),
                p["action"].as_str().unwrap(),
                p["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ran,
        [
            (1, "pass", "trusted_pass"),
            (4, "drop", "untrusted_drop"),
            (6, "pass", "trusted_pass")
        ]
    );
    let skipped: Vec<(u64, String)> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["record"].as_u64().unwrap(),
                s["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let numbers: Vec<u64> = skipped.iter().map(|s| s.0).collect();
    assert_eq!(numbers, [2, 3, 5, 7], "{skipped:?}");
    assert!(
        skipped[0].1.contains("shorter than an Ethernet header"),
        "{skipped:?}"
    );
    assert!(skipped[2].1.contains("refused"), "{skipped:?}");
    assert!(skipped[3].1.contains("cut short"), "{skipped:?}");
    assert_eq!(r["totals"]["skipped"], 4);
    for n in [2, 3, 5, 7] {
        assert!(err.contains(&format!("record {n} skipped")), "{err}");
    }
    // Text output: the same, in record order.
    let out = wotgate(pg.path(), &["replay", cap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let lines: Vec<String> = text(&out.stdout)
        .lines()
        .take(7)
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "1 74 pass",
            "2 0 skip",
            "3 13 skip",
            "4 74 drop",
            "5 100000 skip",
            "6 74 pass",
            "7 64 skip"
        ]
    );
}

#[test]
fn replay_reads_pcapng() {
    use pcap_file::pcapng::{
        blocks::{
            enhanced_packet::EnhancedPacketBlock, interface_description::InterfaceDescriptionBlock,
        },
        PcapNgWriter,
    };
    let t = TmpDir::new("ng");
    let pg = trusted_gate("ng", &t);
    let cap = t.0.join("cap.pcapng");
    let mut w = PcapNgWriter::new(std::fs::File::create(&cap).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(
        pcap_file::DataLink::ETHERNET,
        65535,
    ))
    .unwrap();
    for src in ["2001:db8:1::7", "2001:db8:2::7"] {
        let f = syn(src);
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_secs(1),
            original_len: f.len() as u32,
            data: f.into(),
            options: vec![],
        })
        .unwrap();
    }
    drop(w);
    let r = json(pg.path(), &["replay", cap.to_str().unwrap(), "--json"]);
    let reasons: Vec<&str> = r["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["trusted_pass", "untrusted_drop"]);
}

#[test]
fn replay_streams_in_bounded_memory() {
    let t = TmpDir::new("rm");
    let pg = trusted_gate("rm", &t);
    // 20,000 records of 3,400 bytes: 68 MB of frames.
    let mut frame = syn("2001:db8:1::7");
    frame.resize(3400, 0);
    let cap = t.0.join("big.pcap");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&cap).unwrap());
        let head = pcap(&[]);
        f.write_all(&head).unwrap();
        for _ in 0..20_000 {
            f.write_all(&[0; 8]).unwrap();
            f.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
            f.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
            f.write_all(&frame).unwrap();
        }
    }
    let child = wotgate_cmd(
        None,
        pg.path(),
        &["replay", cap.to_str().unwrap(), "--json"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(child);
    assert!(status.success());
    assert!(
        peak_kib < 40 * 1024,
        "replay of a 68 MB capture peaked at {} MiB",
        peak_kib / 1024
    );
}

/// `check ADDR --json`: exit code and report.
fn check(pin: &Path, addr: &str) -> (Option<i32>, serde_json::Value) {
    let out = wotgate(pin, &["check", addr, "--json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check {addr}: {e}: {}", text(&out.stderr)));
    (out.status.code(), v)
}

#[test]
fn check_reports_the_longest_match_even_among_look_alikes() {
    let t = TmpDir::new("ck");
    let mut pg = PinnedGate::new("ck");
    pg.release();
    // Nested entries with the same verdict and label: only the prefix
    // tells them apart.
    let f = t.file(
        "s.prefixes",
        "allow 2001:db8::/32 isp\nallow 2001:db8:1::/48 isp\ndeny 2001:db8:1:bad::/64 isp\nallow 2001:db8:1:bad::25/128 isp\n",
    );
    must(
        pg.path(),
        &["prefixes", "load", "--force", f.to_str().unwrap()],
    );
    for (addr, prefix, code) in [
        ("2001:db8:2::1", "2001:db8::/32", 0),
        ("2001:db8:1::1", "2001:db8:1::/48", 0),
        ("2001:db8:1:bad::1", "2001:db8:1:bad::/64", 3),
        ("2001:db8:1:bad::25", "2001:db8:1:bad::25/128", 0),
    ] {
        let (c, r) = check(pg.path(), addr);
        assert_eq!(r["entry"]["prefix"], prefix, "{addr}: {r}");
        assert_eq!(r["entry"]["label"], "isp");
        assert_eq!(c, Some(code), "{addr}: {r}");
    }
    let (c, r) = check(pg.path(), "2001:db9::1");
    assert_eq!((c, r["entry"].is_null()), (Some(3), true));
}

#[test]
fn check_says_ipv4_is_never_trusted() {
    let t = TmpDir::new("c4");
    let pg = trusted_gate("c4", &t);
    let out = wotgate(pg.path(), &["check", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("never trusts IPv4"), "{said}");
    assert!(
        said.contains("non_ipv6_drop") && said.contains("verdict: dropped"),
        "{said}"
    );
    let (c, r) = check(pg.path(), "192.0.2.1");
    assert_eq!((c, &r["trusted"]), (Some(3), &false.into()));
    // With --protect the gate leaves IPv4 alone; still not trusted.
    let mut pg = pg;
    pg.reopen();
    pg.gate()
        .set_settings(&wotgate::gate::Settings {
            protect: vec!["2001:db8:ffff::/48".parse().unwrap()],
            ..Default::default()
        })
        .unwrap();
    pg.release();
    let (c, r) = check(pg.path(), "192.0.2.1");
    assert_eq!(c, Some(3));
    assert_eq!(r["ports"][0]["reason"], "other_pass");
    assert_eq!(r["verdict"], "passes");
}

#[test]
fn check_reads_one_entry_not_the_whole_set() {
    let t = TmpDir::new("cb");
    let mut pg = PinnedGate::new("cb");
    pg.release();
    let f = t.file("big.prefixes", &many_prefixes(300_000, "big"));
    must(pg.path(), &["prefixes", "load", f.to_str().unwrap()]);
    let child = wotgate_cmd(None, pg.path(), &["check", "2001:db8:8000:3e7::1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(child);
    assert!(status.success());
    assert!(
        peak_kib < 30 * 1024,
        "check against 300,000 entries peaked at {} MiB",
        peak_kib / 1024
    );
}

/// Stops a reader while it reads a large set, runs two loads (the trie it
/// reads is refilled with another set), lets it go on: what it prints must
/// be a set that was loaded, never a mixture.
fn reader_sees_one_generation(args: &[&str], tag: &str) -> (String, PathBuf, TmpDir) {
    let t = TmpDir::new(tag);
    let mut pg = PinnedGate::new(tag);
    pg.release();
    let a = t.file("a.prefixes", &many_prefixes(120_000, "a"));
    let b = t.file("b.prefixes", "allow 2001:db8:1::/48 b\n");
    let c = t.file("c.prefixes", &many_prefixes(100_000, "c"));
    must(pg.path(), &["prefixes", "load", a.to_str().unwrap()]);
    let reader = wotgate_cmd(None, pg.path(), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it once it has opened the maps (it reads right after).
    let fds = format!("/proc/{}/fd", reader.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let maps = std::fs::read_dir(&fds)
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| l.to_string_lossy().contains("bpf-map"))
                    .count()
            })
            .unwrap_or(0);
        if maps >= 9 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never opened the gate"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Well into reading 120,000 entries.
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signals to our own child.
    unsafe { libc::kill(reader.id() as i32, libc::SIGSTOP) };
    let loads = [
        vec!["prefixes", "load", "--force", b.to_str().unwrap()],
        vec!["prefixes", "load", "--force", c.to_str().unwrap()],
    ];
    let load_results: Vec<Output> = loads.iter().map(|l| wotgate(pg.path(), l)).collect();
    // SAFETY: as above.
    unsafe { libc::kill(reader.id() as i32, libc::SIGCONT) };
    let out = reader.wait_with_output().unwrap();
    for l in load_results {
        assert!(l.status.success(), "{}", text(&l.stderr));
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = pg.path().to_path_buf();
    drop(pg);
    (text(&out.stdout), path, t)
}

#[test]
fn prefixes_show_prints_a_set_that_was_loaded() {
    let (shown, _, t) = reader_sees_one_generation(&["prefixes", "show"], "gs");
    let set = |text: &str| wotgate::model::prefixes::PrefixSet::parse(text, "t").unwrap();
    let c = set(&std::fs::read_to_string(t.0.join("c.prefixes")).unwrap());
    let a = set(&std::fs::read_to_string(t.0.join("a.prefixes")).unwrap());
    let lines = shown.lines().count();
    let shown = set(&shown);
    assert!(
        shown == c || shown == a,
        "printed {lines} lines, a set that never existed (a: 120000, c: 100000)"
    );
}

#[test]
fn inspect_shows_one_generation() {
    let (shown, _, _t) = reader_sees_one_generation(&["inspect", "--json"], "gi");
    let s: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let n = s["entries"].as_array().unwrap().len() as u64;
    let trie = s["active_trie"].as_u64().unwrap() as usize;
    assert_eq!(
        s["trie_entries"][trie].as_u64(),
        Some(n),
        "{n} entries listed for generation {}",
        s["generation"]
    );
    assert!(
        n == 120_000 || n == 100_000,
        "{n} entries: a set never loaded"
    );
}

#[test]
fn a_load_over_a_limit_changes_nothing_inspect_shows() {
    let t = TmpDir::new("lm");
    let mut pg = PinnedGate::new("lm");
    pg.release();
    let one = t.file("one.prefixes", "allow 2001:db8:1::/48 one\n");
    let two = t.file(
        "two.prefixes",
        "allow 2001:db8:1::/48 one\nallow 2001:db8:2::/48 two\n",
    );
    must(pg.path(), &["prefixes", "load", one.to_str().unwrap()]);
    must(pg.path(), &["prefixes", "load", two.to_str().unwrap()]);
    let before = json(pg.path(), &["inspect", "--json"]);
    let counts: Vec<u64> = before["trie_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2], "both tries hold the set, in sync");
    // One more distinct label than the label table holds.
    let labels = gate_common::LABELS_MAX_ENTRIES as usize + 1;
    let f = t.file("labels.prefixes", &many_prefixes(labels, ""));
    let out = wotgate(
        pg.path(),
        &["prefixes", "load", "--force", f.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("distinct labels") && err.contains("nothing was changed"),
        "{err}"
    );
    let after = json(pg.path(), &["inspect", "--json"]);
    for key in [
        "generation",
        "active_trie",
        "trie_entries",
        "entries",
        "loaded_at",
    ] {
        assert_eq!(before[key], after[key], "{key} changed by a refused load");
    }
}
