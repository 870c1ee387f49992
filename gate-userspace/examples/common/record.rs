//! Shared by the benchmark examples: which machine a run was on, and
//! appending a run to its section of BENCHMARKS.md.

use std::path::PathBuf;

/// "CPU model, N cores, kernel X, load average L at start, YYYY-MM-DD HH:MM UTC".
/// The load average is read, not assumed: a shared machine shows in it. Read
/// once, at the first call: a benchmark calls it first thing in `main`, so
/// the heading it records later still names the load and time at its start.
pub fn machine() -> String {
    static AT_START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AT_START.get_or_init(read_machine).clone()
}

fn read_machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, kernel {}, load average {load} at start, {date}",
        kernel.trim()
    )
}

/// Appends `entry` at the end of `section` (a `## ` heading) in
/// BENCHMARKS.md, creating the section with `intro` when missing.
pub fn record(section: &str, intro: &str, entry: &str) -> std::io::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let mut doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    if !doc.contains(section) {
        doc.push_str(&format!("\n{section}\n\n{intro}\n"));
    }
    let start = doc.find(section).expect("section present") + section.len();
    let end = doc[start..].find("\n## ").map_or(doc.len(), |i| start + i);
    let mut entry = entry.trim().to_string();
    entry.push('\n');
    if !doc[..end].ends_with("\n\n") {
        entry.insert(0, '\n');
    }
    doc.insert_str(end, &entry);
    std::fs::write(&path, doc)?;
    eprintln!("recorded in {}", path.display());
    Ok(())
}
