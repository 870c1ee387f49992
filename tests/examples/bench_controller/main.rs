//! `cargo xtask bench controller`: the daemon as a real process on a veth pair
//! in namespaces, fed N participants' statements; start-up, SIGHUP, peak memory.
//!
//! Observable: the pinned selector and metadata, polled every 2 ms from here
//! (a set is enforced when the datapath's selector points at its trie); the
//! status file says when a refresh ended. Baselines run in the same process.

mod fixture;
#[path = "../../../gate-userspace/examples/common/record.rs"]
mod record;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, ensure, Context, Result};
use fixture::Fixture;
use integration_tests::{netns::Pair, wotgate_bin};
use sequoia_openpgp::policy::StandardPolicy;
use wotgate::apply::LoadGuard;
use wotgate::daemon::{digest::digest, refresh, state::DaemonStatus};
use wotgate::gate::Gate;
use wotgate::model::config::Config;

const POLL: Duration = Duration::from_millis(2);
const LIMIT: Duration = Duration::from_secs(900);

/// The daemon; SIGTERM, then SIGKILL, on drop.
struct DaemonProc(Child);

impl Drop for DaemonProc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pins, the daemon's lock file and the run directory, removed on drop.
struct Cleanup {
    pin: PathBuf,
    run: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = wotgate::gate::purge(&self.pin) {
            eprintln!("cleanup of {} failed: {e}", self.pin.display());
        }
        let _ = std::fs::remove_file(wotgate::daemon::instance::lock_path(&self.pin));
        let _ = std::fs::remove_dir_all(&self.run);
    }
}

/// One repetition's figures, in seconds (memory in MiB).
#[derive(Default)]
struct Run {
    start_enforced: f64,
    start_done: f64,
    unchanged_done: f64,
    change_enforced: f64,
    change_done: f64,
    hwm_mib: f64,
    plan_build: f64,
    raw_first: f64,
    raw_second: f64,
    raw_third: f64,
    apply_changed: f64,
    apply_changed_swap: f64,
    apply_unchanged: f64,
    save_plan: f64,
}

fn arg(name: &str, default: usize) -> Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context(name.to_string())?
            .parse()
            .with_context(|| name.to_string()),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let record = std::env::args().any(|a| a == "--record");
    let participants = arg("--participants", 10_000)?;
    let per = arg("--per", 100)?;
    let reps = arg("--reps", 3)?;
    let bin = wotgate_bin();
    let exe = std::env::current_exe()?;
    // target/release/examples/bench_controller -> target/bench-controller
    let base = exe
        .ancestors()
        .nth(3)
        .context("target directory")?
        .join("bench-controller");
    let machine = record::machine();
    eprintln!("fixture: {participants} participants x {per} prefixes ...");
    let fx = Fixture::ensure(&base, participants, per)?;
    eprintln!(
        "fixture in {} ({} {:.1} s)",
        fx.dir.display(),
        if fx.made_now {
            "made in"
        } else {
            "cached, made in"
        },
        fx.made_in
    );
    let pair = Pair::new("bc", &[]);
    let mut runs = Vec::new();
    for r in 0..reps {
        let run = one_run(&fx, &bin, &pair, &base, r)?;
        eprintln!(
            "run {r}: start {:.2}/{:.2} s, unchanged {:.2} s, change {:.2}/{:.2} s, VmHWM {:.0} MiB; plan {:.2} s, raw loads {:.2}/{:.2}/{:.2} s, apply changed {:.2} (swap {:.2}) unchanged {:.2}, save plan {:.2} s",
            run.start_enforced, run.start_done, run.unchanged_done, run.change_enforced,
            run.change_done, run.hwm_mib, run.plan_build, run.raw_first, run.raw_second, run.raw_third,
            run.apply_changed, run.apply_changed_swap, run.apply_unchanged, run.save_plan
        );
        runs.push(run);
    }
    let table = table(&runs);
    let entry = format!(
        "\n### {machine}; release build; {participants} participants x {per} prefixes = {} entries, {reps} repetitions\n\nFixture: {} ({:.1} s to make with sequoia, 2 threads).\n\n{table}",
        participants * per,
        if fx.made_now { "made in this run" } else { "cached" },
        fx.made_in
    );
    print!("{entry}");
    if record {
        record::record(
            "## Controller",
            "`cargo xtask bench controller` (tests/examples/bench_controller): the daemon as a real process, see the method below.",
            &entry,
        )?;
    }
    Ok(())
}

/// Median (the upper middle one for an even count) and range of `f`.
fn stat(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn table(runs: &[Run]) -> String {
    let mut t = String::from("| measurement | median | min - max |\n| --- | ---: | ---: |\n");
    let mut row = |name: &str, unit: &str, f: &dyn Fn(&Run) -> f64| {
        let (m, lo, hi) = stat(runs, f);
        t.push_str(&format!(
            "| {name} | {m:.2} {unit} | {lo:.2} - {hi:.2} {unit} |\n"
        ));
    };
    row(
        "start-up: spawn to first set enforced (selector flip)",
        "s",
        &|r| r.start_enforced,
    );
    row("start-up: spawn to first refresh recorded", "s", &|r| {
        r.start_done
    });
    row(
        "SIGHUP, nothing changed: to refresh recorded (no swap)",
        "s",
        &|r| r.unchanged_done,
    );
    row(
        "SIGHUP, one statement changed: to new set enforced (flip)",
        "s",
        &|r| r.change_enforced,
    );
    row(
        "SIGHUP, one statement changed: to refresh recorded",
        "s",
        &|r| r.change_done,
    );
    row("daemon peak RSS (VmHWM)", "MiB", &|r| r.hwm_mib);
    row(
        "baseline: plan alone (refresh::build in-process)",
        "s",
        &|r| r.plan_build,
    );
    row(
        "baseline: `prefixes load` into an empty trie (new gate)",
        "s",
        &|r| r.raw_first,
    );
    row(
        "baseline: `prefixes load` into the other, empty trie",
        "s",
        &|r| r.raw_second,
    );
    row(
        "baseline: `prefixes load` over a full trie (clear + fill)",
        "s",
        &|r| r.raw_third,
    );
    row(
        "in-process: `Prepared::load`, one entry changed (read, guard, diff, swap)",
        "s",
        &|r| r.apply_changed,
    );
    row("  of which the swap (clear + fill + check)", "s", &|r| {
        r.apply_changed_swap
    });
    row(
        "in-process: `Prepared::load`, set unchanged (read, guard, compare)",
        "s",
        &|r| r.apply_unchanged,
    );
    row(
        "in-process: save the last good plan (state::save_plan)",
        "s",
        &|r| r.save_plan,
    );
    row(
        "ratio: change flip / (plan + load into empty trie)",
        "x",
        &|r| r.change_enforced / (r.plan_build + r.raw_second),
    );
    row("ratio: start-up flip / (plan + first load)", "x", &|r| {
        r.start_enforced / (r.plan_build + r.raw_first)
    });
    row("ratio: unchanged refresh / plan", "x", &|r| {
        r.unchanged_done / r.plan_build
    });
    t
}

/// The generation the datapath enforces now (0 before the first load).
fn enforced_generation(gate: &Gate) -> Result<u64> {
    let trie = gate.active_trie()?;
    Ok(gate.meta()?.generation[trie])
}

/// Polls the pins until the enforced generation reaches `at_least`; when.
fn wait_generation(pin: &Path, at_least: u64, since: Instant) -> Result<f64> {
    let gate = loop {
        match Gate::open(pin) {
            Ok(g) => break g,
            Err(_) if since.elapsed() < LIMIT => std::thread::sleep(POLL),
            Err(e) => bail!("the daemon never pinned its gate: {e}"),
        }
    };
    loop {
        if enforced_generation(&gate)? >= at_least {
            return Ok(since.elapsed().as_secs_f64());
        }
        ensure!(since.elapsed() < LIMIT, "generation {at_least} never came");
        std::thread::sleep(POLL);
    }
}

/// Polls the status file until `refreshes_loaded` reaches `n`; when, and it.
fn wait_refreshes(state: &Path, n: u64, since: Instant) -> Result<(f64, DaemonStatus)> {
    loop {
        if let Some(s) = DaemonStatus::load(state).filter(|s| s.refreshes_loaded >= n) {
            return Ok((since.elapsed().as_secs_f64(), s));
        }
        if let Some(s) = DaemonStatus::load(state) {
            ensure!(
                s.refreshes_failed + s.refreshes_refused == 0,
                "a refresh did not load: {:?}",
                s.last_refresh
            );
        }
        ensure!(since.elapsed() < LIMIT, "refresh {n} never came");
        std::thread::sleep(POLL);
    }
}

/// The kernel enforces exactly the plan the daemon says it loaded.
fn check_kernel(pin: &Path, s: &DaemonStatus, entries: usize) -> Result<()> {
    let set = Gate::open(pin)?.active_set()?;
    let loaded = s.loaded.as_ref().context("no loaded plan")?;
    ensure!(
        set.len() == entries,
        "{} entries, {entries} wanted",
        set.len()
    );
    ensure!(digest(&set) == loaded.digest, "kernel digest differs");
    Ok(())
}

fn vm_hwm_mib(pid: u32) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmHWM")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn hup(child: &Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
}

fn one_run(fx: &Fixture, bin: &Path, pair: &Pair, base: &Path, r: usize) -> Result<Run> {
    let tag = format!("{}-{r}", std::process::id());
    let run_dir = base.join(format!("run-{tag}"));
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-bench-ctl-{tag}"));
    let _cleanup = Cleanup {
        pin: pin.clone(),
        run: run_dir.clone(),
    };
    let statements = run_dir.join("statements");
    std::fs::create_dir_all(&statements)?;
    for e in std::fs::read_dir(fx.dir.join("statements"))? {
        let e = e?;
        std::fs::hard_link(e.path(), statements.join(e.file_name()))?;
    }
    let state = run_dir.join("state");
    let config = run_dir.join("wotgate.toml");
    std::fs::write(
        &config,
        format!(
            "state_directory = \"{}\"\n[trust]\nkeyrings = [\"{}\"]\nroots = [\"{}\"]\ndepth = 1\n\
             [statements]\ndirectory = \"{}\"\nallow_documentation_prefixes = true\nmax_prefixes_per_statement = {}\n\
             [gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n[daemon]\nrefresh_interval = \"1h\"\n[metrics]\nlisten = \"\"\n",
            state.display(),
            fx.dir.join("keyring.pgp").display(),
            fx.root,
            statements.display(),
            fx.per.max(64),
            pair.server_if,
            pin.display()
        ),
    )?;
    let entries = fx.participants * fx.per;
    let log = std::fs::File::create(run_dir.join("daemon.log"))?;
    let mut run = Run::default();

    let t = Instant::now();
    let child = pair
        .server
        .cmd(&[
            bin.to_str().unwrap(),
            "run",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    let daemon = DaemonProc(child);
    run.start_enforced = wait_generation(&pin, 1, t)?;
    let (done, s) = wait_refreshes(&state, 1, t)?;
    run.start_done = done;
    check_kernel(&pin, &s, entries)?;
    let generation = s.loaded.as_ref().map_or(0, |l| l.generation);

    // SIGHUP with nothing changed.
    let t = Instant::now();
    hup(&daemon.0);
    let (done, s) = wait_refreshes(&state, 2, t)?;
    run.unchanged_done = done;
    let l = s.loaded.as_ref().context("loaded")?;
    let unchanged = s.last_refresh.as_ref().is_some_and(|r| r.unchanged);
    eprintln!(
        "  unchanged refresh: generation {} (was {generation}), unchanged = {unchanged}",
        l.generation
    );
    let generation = l.generation;

    // One statement changed: participant 0 replaces its last prefix.
    let mut p = fixture::prefixes(0, fx.per);
    let new_prefix = "2001:db8:ffff:1::/64".parse()?;
    let old_prefix = p.pop().context("a prefix")?;
    p.push(new_prefix);
    let st = fixture::statement(&fx.p0_key()?, 0, fx.serial + 1, p, SystemTime::now())?;
    let tmp = statements.join(".p00000.asc.tmp");
    std::fs::write(&tmp, st)?;
    std::fs::rename(&tmp, statements.join("p00000.asc"))?;
    let t = Instant::now();
    hup(&daemon.0);
    run.change_enforced = wait_generation(&pin, generation + 1, t)?;
    let (done, s) = wait_refreshes(&state, 3, t)?;
    run.change_done = done;
    check_kernel(&pin, &s, entries)?;
    let gate = Gate::open(&pin)?;
    ensure!(
        gate.lookup(new_prefix.network())?.is_some(),
        "new prefix missing"
    );
    ensure!(
        gate.lookup(old_prefix.network())?.is_none(),
        "old prefix still there"
    );
    drop(gate);
    run.hwm_mib = vm_hwm_mib(daemon.0.id())?;
    drop(daemon);
    // The last repetition's daemon log stays, for its timestamps.
    std::fs::copy(run_dir.join("daemon.log"), base.join("daemon-last.log"))?;

    // Baselines, same inputs: the raw loads of the daemon's last plan, then
    // the plan alone with participant 0 changed once more, and its load
    // through `apply` in this process (changed, then unchanged).
    let raw_pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-bench-raw-{tag}"));
    let _raw = Cleanup {
        pin: raw_pin.clone(),
        run: run_dir.join("none"),
    };
    drop(Gate::create(&raw_pin)?);
    let file = state.join(wotgate::daemon::state::PLAN_FILE);
    let raw = || -> Result<f64> {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["--pin-dir", raw_pin.to_str().unwrap(), "prefixes", "load"])
            .arg(&file)
            .output()?;
        ensure!(
            out.status.success(),
            "prefixes load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("  {}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(t.elapsed().as_secs_f64())
    };
    run.raw_first = raw()?;
    run.raw_second = raw()?;
    run.raw_third = raw()?;

    let mut p = fixture::prefixes(0, fx.per);
    p.pop();
    p.push("2001:db8:ffff:2::/64".parse()?);
    let st = fixture::statement(&fx.p0_key()?, 0, fx.serial + 2, p, SystemTime::now())?;
    std::fs::write(&tmp, st)?;
    std::fs::rename(&tmp, statements.join("p00000.asc"))?;
    let cfg = Config::load(&config)?;
    let t = Instant::now();
    let built = refresh::build(&cfg, &StandardPolicy::new(), SystemTime::now())?;
    run.plan_build = t.elapsed().as_secs_f64();
    ensure!(built.prepared.set.len() == entries, "plan size");
    let mut gate = Gate::open(&raw_pin)?;
    let guard = LoadGuard {
        max_shrink_percent: 50,
        force: false,
    };
    let apply_state = run_dir.join("apply-state");
    let t = Instant::now();
    let a = built.prepared.load(&mut gate, &apply_state, &guard)?;
    run.apply_changed = t.elapsed().as_secs_f64();
    ensure!(!a.unchanged && a.diff.added.len() == 1, "one entry changed");
    run.apply_changed_swap =
        (a.load.clear_time + a.load.fill_time + a.load.check_time).as_secs_f64();
    let t = Instant::now();
    let a = built.prepared.load(&mut gate, &apply_state, &guard)?;
    run.apply_unchanged = t.elapsed().as_secs_f64();
    ensure!(a.unchanged, "the same set again is unchanged");
    let t = Instant::now();
    wotgate::daemon::state::save_plan(&apply_state, &built.prepared.set)?;
    run.save_plan = t.elapsed().as_secs_f64();
    Ok(run)
}
