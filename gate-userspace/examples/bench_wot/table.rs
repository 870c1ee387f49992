//! The benchmark's tables: one row per input and tool, the whole-process
//! comparison, and issue 13's targets beside what was measured.

use super::*;

pub(crate) struct Row {
    pub(crate) input: String,
    pub(crate) tool: &'static str,
    pub(crate) certs: usize,
    /// Parse (ours) or `gpg --import` (GnuPG); None: stopped at the limit.
    pub(crate) load: Option<Duration>,
    /// Ours only: the certification graph with a cold verification cache.
    pub(crate) verify: Option<Duration>,
    /// Ours only: search and report over the warm cache.
    pub(crate) search: Option<Duration>,
    /// None: stopped at the time limit (or not reached).
    pub(crate) full: Option<Duration>,
    pub(crate) warm: Option<Duration>,
    /// Ours, generated network: recompute after one added certification
    /// (through the daemon's engine, in a process of its own).
    pub(crate) added: Option<Added>,
    pub(crate) trusted: usize,
    pub(crate) peak_kib: u64,
    /// The GnuPG step stopped at [`GPG_LIMIT`], if any.
    pub(crate) stopped: Option<&'static str>,
    /// GnuPG: the larger peak of its import and its full check.
    pub(crate) whole_peak_kib: u64,
}

/// The recompute after one added certification through the engine.
pub(crate) struct Added {
    pub(crate) took: Duration,
    /// Where its time went: read, parse, graph, search (the rest: verdicts).
    pub(crate) read: Duration,
    pub(crate) parse: Duration,
    pub(crate) graph: Duration,
    pub(crate) search: Duration,
    /// The engine process's peak RSS (the daemon keeps an engine).
    pub(crate) peak_kib: u64,
}

/// One tool's whole process on one input: keyring file to verdicts.
pub(crate) struct Whole {
    pub(crate) tool: &'static str,
    /// None: a step stopped at the limit.
    pub(crate) wall: Option<Duration>,
    /// GnuPG: its full `--check-trustdb` alone.
    pub(crate) check: Option<Duration>,
    pub(crate) peak_kib: u64,
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

pub(crate) fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| input | tool | certs | parse / import | verify | search | full compute | recompute, nothing changed | recompute, one certification added | trusted keys | peak RSS |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let stopped = |step: &str, this: &str| {
        if step == this {
            format!("stopped after {} s", GPG_LIMIT.as_secs())
        } else {
            "not reached".into()
        }
    };
    for r in rows {
        let step = r.stopped.unwrap_or("");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.input,
            r.tool,
            r.certs,
            r.load.map(secs).unwrap_or_else(|| stopped(step, "import")),
            r.verify.map(secs).unwrap_or_else(|| "-".into()),
            r.search.map(secs).unwrap_or_else(|| "-".into()),
            r.full
                .map(secs)
                .unwrap_or_else(|| stopped(step, "check-trustdb")),
            r.warm.map(secs).unwrap_or_else(|| "n/a".into()),
            r.added
                .as_ref()
                .map(|a| secs(a.took))
                .unwrap_or_else(|| "n/a".into()),
            r.trusted,
            // A step killed at the limit leaves no peak (wait4 reaps it).
            if r.peak_kib == 0 {
                "not measured".into()
            } else {
                format!("{} MiB", r.peak_kib / 1024)
            }
        ));
    }
    s
}

/// The whole-process table and the GnuPG/wotgate ratios.
pub(crate) fn render_whole(w: &[Whole]) -> String {
    if w.len() < 2 {
        return String::new();
    }
    let mut s = String::from(
        "\nWhole process on debian-keyring.gpg, keyring file to verdicts:\n\n\
         | tool | wall time | peak RSS |\n|---|---:|---:|\n",
    );
    for r in w {
        s.push_str(&format!(
            "| {} | {} | {} MiB |\n",
            r.tool,
            r.wall
                .map(secs)
                .unwrap_or_else(|| format!("stopped ({} s limit per step)", GPG_LIMIT.as_secs())),
            r.peak_kib / 1024
        ));
    }
    if let (Some(ours), Some(gpg)) = (w[0].wall, w[1].wall) {
        s.push_str(&format!(
            "\nGnuPG / wotgate: time {:.2}x, peak RSS {:.2}x (wotgate's memory is {:.2}x GnuPG's).\n",
            gpg.as_secs_f64() / ours.as_secs_f64(),
            w[1].peak_kib as f64 / w[0].peak_kib.max(1) as f64,
            w[0].peak_kib as f64 / w[1].peak_kib.max(1) as f64,
        ));
    }
    if let (Some(ours), Some(check)) = (w[0].wall, w[1].check) {
        s.push_str(&format!(
            "Without GnuPG's import (keyring already in its keybox): `--check-trustdb` {} \
             = {:.2}x wotgate's whole process.\n",
            secs(check),
            check.as_secs_f64() / ours.as_secs_f64(),
        ));
    }
    s
}

/// Where our time goes, and the targets (reported, not asserted).
pub(crate) fn targets(rows: &[Row], w: &[Whole]) -> String {
    let mut s = String::from("\nwotgate's time split (parse / verify / search, of their sum):\n");
    for r in rows.iter().filter(|r| r.verify.is_some()) {
        let (p, v, q) = (
            r.load.unwrap_or_default().as_secs_f64(),
            r.verify.unwrap_or_default().as_secs_f64(),
            r.search.unwrap_or_default().as_secs_f64(),
        );
        let t = (p + v + q).max(f64::MIN_POSITIVE);
        s.push_str(&format!(
            "- {}: parse {:.0}%, verify {:.0}%, search {:.0}%\n",
            r.input,
            100.0 * p / t,
            100.0 * v / t,
            100.0 * q / t
        ));
    }
    s.push_str("\nTargets (issue 13; reported, not asserted):\n");
    if let (Some(ours), Some(gpg)) = (
        w.first().and_then(|r| r.wall),
        w.get(1).and_then(|r| r.wall),
    ) {
        let x = gpg.as_secs_f64() / ours.as_secs_f64();
        let m = w[0].peak_kib as f64 / w[1].peak_kib.max(1) as f64;
        s.push_str(&format!(
            "- debian-keyring whole process at least 10x faster than GnuPG: {x:.2}x ({})\n\
             - memory within 2x of GnuPG's: {m:.2}x ({})\n",
            if x >= 10.0 { "met" } else { "not met" },
            if m <= 2.0 { "met" } else { "not met" },
        ));
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.input.starts_with("generated 10k") && r.verify.is_some())
    {
        let full = r.full.unwrap_or_default().as_secs_f64();
        let mib = r.peak_kib / 1024;
        s.push_str(&format!(
            "- generated 10k/100k full computation at most 3 s: {full:.3} s ({})\n\
             - its peak memory at most 200 MiB: {mib} MiB ({})\n",
            if full <= 3.0 { "met" } else { "not met" },
            if mib <= 200 { "met" } else { "not met" },
        ));
        if let Some(a) = &r.added {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let total = ms(a.took);
            s.push_str(&format!(
                "- recompute after one added certification at most 20 ms: {total:.0} ms ({}); \
                 through the daemon's engine: read the file {:.1} ms, split/hash/parse {:.1} ms, \
                 judge and build the graph {:.1} ms, search {:.1} ms, verdicts {:.1} ms; \
                 the engine process's peak RSS {} MiB\n",
                if total <= 20.0 { "met" } else { "not met" },
                ms(a.read),
                ms(a.parse),
                ms(a.graph),
                ms(a.search),
                ms(a.took.saturating_sub(a.read + a.parse + a.graph + a.search)),
                a.peak_kib / 1024,
            ));
        }
    }
    s
}
