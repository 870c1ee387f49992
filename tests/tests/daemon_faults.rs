//! Bad input and faults at the daemon level: the real `wotgate run` on a veth pair, SIGKILLed
//! mid-swap, fed a corrupt keyring or configuration, denied its state directory; the set holds.
//!
//! Every case checks the log line that names the file and the problem, the
//! counter on the metrics endpoint, that `status --json` still shows the same
//! kernel set, and that a trusted peer still connects over real TCP.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use integration_tests::{
    daemon::{
        kernel_set, loaded_count, log_len, log_since, record_with, refreshes, scrape, status,
        value, wait_scrape, Cleanup, DaemonProc, METRICS,
    },
    many_prefixes,
    netns::{connect, Listener, Pair},
    require_kernel, unique,
    world::World,
    wotgate_bin,
};
use serde_json::Value;
use wotgate::{daemon::state::DaemonStatus, gate::Gate};

const SERVER: &str = "[2001:db8:ffff::1]:25";
const ALPHA: &str = "2001:db8:a::10";
const BETA: &str = "2001:db8:b::10";
const EVE: &str = "2001:db8:e::10";

/// A world (keys, statements, config), a veth pair, the SMTP listener,
/// the pins; everything removed on drop (the daemon is dropped first: tests
/// declare it after this).
struct Setup {
    pair: Pair,
    config: PathBuf,
    log: PathBuf,
    pin: PathBuf,
    _smtp: Listener,
    _cleanup: Cleanup,
    world: World,
}

impl Setup {
    /// `gate_extra`: more `[gate]` lines (e.g. `static_prefixes`), `{dir}`
    /// standing for the world's directory.
    fn new(tag: &str, gate_extra: &str) -> Setup {
        require_kernel();
        let bin = wotgate_bin();
        let world = World::create(
            &std::env::temp_dir().join(format!("wotgate-dfault-{}", unique(tag))),
            &bin,
        );
        let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
        let pair = Pair::new(tag, &clients);
        let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique(tag)));
        let cleanup = Cleanup {
            pin: pin.clone(),
            dir: None,
        };
        let smtp = Listener::start(&pair.server.name, 25);
        let config = world.dir.join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n{gate_extra}\n[daemon]\nrefresh_interval = \"1h\"\nmax_plan_age = \"2h\"\n[metrics]\nlisten = \"{METRICS}\"\n",
                std::fs::read_to_string(&world.config).unwrap(),
                pair.server_if,
                pin.display(),
                gate_extra = gate_extra.replace("{dir}", &world.dir.display().to_string()),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(world.dir.join("state")).unwrap();
        Setup {
            log: world.dir.join("daemon.log"),
            config,
            pin,
            pair,
            _smtp: smtp,
            _cleanup: cleanup,
            world,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.world.dir.join("state")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ns(&self) -> &str {
        &self.pair.server.name
    }

    fn admitted(&self, client: &str) -> bool {
        connect(
            &self.pair.client.name,
            client.parse().unwrap(),
            SERVER.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(1000),
        )
        .is_ok()
    }

    /// Asserts who connects: alpha always; beta when `beta`; eve never.
    fn expect_peers(&self, when: &str, beta: bool) {
        for (client, name, want) in [
            (ALPHA, "alpha", true),
            (BETA, "beta", beta),
            (EVE, "eve", false),
        ] {
            assert_eq!(
                self.admitted(client),
                want,
                "{when}: {name} ({client}) should {}connect\ndaemon log:\n{}",
                if want { "" } else { "not " },
                self.log_text()
            );
        }
    }

    /// Polls `status` (through `d`'s namespaces) until `cond` holds (at most 90 s).
    fn wait_status(&self, d: &DaemonProc, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let v = d.status(&self.config);
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "waiting for {what}; last status {v:#}\ndaemon log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the daemon and waits for its first plan.
    fn start(&self, mounts: Option<&str>) -> DaemonProc {
        let d = DaemonProc::start_with_mounts(&self.pair.server, &self.config, &self.log, mounts);
        let pid = d.pid();
        let v = self.wait_status(&d, "the first plan", |v| {
            v["status"]["pid"] == pid && loaded_count(v) >= 1 && v["kernel_equals_plan"] == true
        });
        assert_eq!(v["status"]["last_refresh"]["outcome"], "loaded", "{v:#}");
        wait_scrape(self.ns(), &self.log, "the metrics endpoint", |t| {
            value(t, "wotgate_kernel_matches_plan") == Some(1.0)
        });
        d
    }

    /// SIGHUP with a writable state directory again: the status file and
    /// the last good plan catch up (the file counts every loaded refresh the
    /// metrics count) and the kernel set is `v0`'s again.
    fn caught_up(&self, d: &DaemonProc, v0: &Value) {
        let text = self.sighup(d);
        let ok = counter(&text, "wotgate_refresh_total{result=\"ok\"}");
        let v = self.wait_status(d, "the status file catching up", |v| {
            loaded_count(v) as f64 == ok
        });
        assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
        assert_eq!(v["plan"], v0["plan"], "{v:#}");
        assert_eq!(kernel_set(&v), kernel_set(v0), "{v:#}");
        assert_eq!(
            value(&scrape(self.ns(), &self.log), "wotgate_kernel_matches_plan"),
            Some(1.0)
        );
    }

    /// SIGHUP, then waits until the metrics count one more refresh; the scrape.
    fn sighup(&self, d: &DaemonProc) -> String {
        let before = refreshes(&scrape(self.ns(), &self.log));
        d.signal(libc::SIGHUP);
        wait_scrape(self.ns(), &self.log, "the SIGHUP refresh", |t| {
            refreshes(t) > before
        })
    }
}

/// A counter from a scrape, 0 when absent.
fn counter(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or(0.0)
}

#[test]
fn a_corrupt_keyring_at_refresh_keeps_the_set() {
    let s = Setup::new("dkr", "");
    let d = s.start(None);
    s.expect_peers("before", true);
    let v0 = d.status(&s.config);
    let before = scrape(s.ns(), &s.log);
    let refused = counter(&before, "wotgate_refresh_total{result=\"refused\"}");

    let good = std::fs::read(s.world.keyring()).unwrap();
    std::fs::write(s.world.keyring(), b"\x99\x01garbage, not OpenPGP").unwrap();
    let mark = log_len(&s.log);
    let text = s.sighup(&d);

    // (b) counted as refused; the kernel still matches the daemon's plan.
    assert_eq!(
        counter(&text, "wotgate_refresh_total{result=\"refused\"}"),
        refused + 1.0,
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_last_refresh_successful"), Some(0.0));
    assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
    // (a) the log names the keyring file and says the set stays.
    let log = log_since(&s.log, mark);
    let keyring = s.world.keyring().display().to_string();
    let line = record_with(&log, &["refresh refused", &keyring])
        .unwrap_or_else(|| panic!("no refusal naming {keyring}:\n{log}"));
    assert!(line.contains("the current set stays"), "{line}");
    // (c) the same kernel set, still the last good plan.
    let v = d.status(&s.config);
    assert_eq!(kernel_set(&v), kernel_set(&v0), "{v:#}");
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    assert_eq!(v["plan"], v0["plan"]);
    assert_eq!(v["status"]["last_refresh"]["outcome"], "refused", "{v:#}");
    assert!(
        v["status"]["last_refresh"]["error"]
            .as_str()
            .unwrap_or("")
            .contains(&keyring),
        "{v:#}"
    );
    // (d) trusted peers still connect, the untrusted one still does not.
    s.expect_peers("with a corrupt keyring", true);

    // The keyring repaired: the next refresh loads again.
    std::fs::write(s.world.keyring(), good).unwrap();
    let text = s.sighup(&d);
    assert_eq!(value(&text, "wotgate_last_refresh_successful"), Some(1.0));
    assert_eq!(kernel_set(&d.status(&s.config)), kernel_set(&v0));
}

#[test]
fn a_configuration_error_at_reload_keeps_the_running_configuration() {
    let s = Setup::new("dcf", "");
    let d = s.start(None);
    s.expect_peers("before", true);
    let v0 = d.status(&s.config);
    let good = std::fs::read_to_string(&s.config).unwrap();
    assert!(good.contains("depth = 2\n"), "{good}");
    // Each broken file also lowers the depth to 1, which would drop beta:
    // beta still connecting shows the running configuration stayed.
    let shallow = good.replace("depth = 2\n", "depth = 1\n");
    let cases = [
        (
            "a misspelt key",
            format!("max_shrink_procent = 10\n{shallow}"),
            "max_shrink_procent",
        ),
        (
            "a bad value",
            shallow.replace(
                "refresh_interval = \"1h\"",
                "refresh_interval = \"fortnight\"",
            ),
            "refresh_interval",
        ),
    ];
    // `status` needs a readable configuration: a good copy beside it
    // names the same pins and state directory.
    let good_copy = s.world.dir.join("good.toml");
    std::fs::write(&good_copy, &good).unwrap();
    for (n, (what, text, key)) in cases.iter().enumerate() {
        std::fs::write(&s.config, text).unwrap();
        // `wotgate reload` reads the file first: it refuses, naming the
        // key, and leaves the daemon alone.
        let before = refreshes(&scrape(s.ns(), &s.log));
        let out = d.wotgate(&["reload", "--config", s.config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: reload accepted it: {err}");
        assert!(
            err.contains(key),
            "{what}: reload does not name {key}: {err}"
        );
        assert_eq!(refreshes(&scrape(s.ns(), &s.log)), before, "{what}");
        // SIGHUP (systemctl reload): the daemon reads it, refuses it.
        let mark = log_len(&s.log);
        let scraped = s.sighup(&d);
        // (b) counted.
        assert_eq!(
            value(&scraped, "wotgate_config_reload_failures_total"),
            Some(n as f64 + 1.0),
            "{what}: {scraped}"
        );
        assert_eq!(
            value(&scraped, "wotgate_config_last_reload_successful"),
            Some(0.0),
            "{what}"
        );
        // (a) the log names the file and the key, and says the running one stays.
        let log = log_since(&s.log, mark);
        let line = record_with(&log, &["the configuration has an error"])
            .unwrap_or_else(|| panic!("{what}: no configuration error logged:\n{log}"));
        assert!(line.contains(key), "{what}: the key is not named: {line}");
        assert!(
            line.contains(&*s.config.to_string_lossy()),
            "{what}: the file is not named: {line}"
        );
        assert!(line.contains("keeping the running configuration"), "{line}");
        // (c) the set stays; (d) beta (depth 2) still connects.
        let v = status(&s.pair.server, &good_copy);
        assert_eq!(kernel_set(&v), kernel_set(&v0), "{what}: {v:#}");
        assert_eq!(v["kernel_equals_plan"], true);
        assert_eq!(v["status"]["config_reload_failures"], n as u64 + 1);
        assert_eq!(v["status"]["last_refresh"]["outcome"], "loaded", "{v:#}");
        s.expect_peers(what, true);
    }

    // The good file back: the reload succeeds, the set is the same.
    std::fs::write(&s.config, &good).unwrap();
    let scraped = s.sighup(&d);
    assert_eq!(
        value(&scraped, "wotgate_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(
        value(&scraped, "wotgate_config_reload_failures_total"),
        Some(2.0)
    );
    assert_eq!(kernel_set(&d.status(&s.config)), kernel_set(&v0));
    // And a good file that does lower the depth is taken: beta goes.
    std::fs::write(&s.config, &shallow).unwrap();
    s.sighup(&d);
    s.expect_peers("depth 1 taken", false);
}

/// The state directory as a bind mount of itself in the daemon's mount
/// namespace, so it can be made read-only there alone.
fn bind_state(dir: &Path) -> String {
    format!("mount --bind '{0}' '{0}'", dir.display())
}

/// Moves beta's statement away (or back): the next refresh drops (or
/// admits) beta, 1 of 2 allow entries, within the load guard's 50%.
fn withdraw_beta(s: &Setup, withdraw: bool) {
    let (asc, held) = (
        s.world.dir.join("statements/beta.asc"),
        s.world.dir.join("beta.asc.held"),
    );
    if withdraw {
        std::fs::rename(asc, held).unwrap();
    } else {
        std::fs::rename(held, asc).unwrap();
    }
}

#[test]
fn a_read_only_state_directory_is_logged_and_counted_and_the_gate_goes_on() {
    let s = Setup::new("dro", "");
    let state = s.state_dir();
    let d = s.start(Some(&bind_state(&state)));
    s.expect_peers("before", true);
    let v0 = d.status(&s.config);

    d.sh(&format!("mount -o remount,bind,ro '{}'", state.display()));
    let probe = d
        .cmd(&["touch", state.join("probe").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !probe.status.success(),
        "the state directory should be read-only for the daemon now"
    );
    // (1) A refresh with the same inputs: its writes fail, the set stays.
    let mark = log_len(&s.log);
    let text = s.sighup(&d);
    let status_file = state.join("daemon-status.json").display().to_string();
    let log = log_since(&s.log, mark);
    assert!(
        record_with(
            &log,
            &[
                "could not write the status file",
                &status_file,
                "Read-only file system"
            ]
        )
        .is_some(),
        "no line naming {status_file} and the reason:\n{log}"
    );
    assert!(
        counter(&text, "wotgate_state_write_errors_total{file=\"status\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
    assert_eq!(value(&text, "wotgate_last_refresh_successful"), Some(1.0));
    let v = status(&s.pair.server, &s.config);
    assert_eq!(kernel_set(&v), kernel_set(&v0), "{v:#}");
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    s.expect_peers("state read-only, same inputs", true);

    // (2) A real change: the new plan is enforced although it cannot be
    // saved; the disk's last good plan lags, and says so.
    let plan_errors = counter(&text, "wotgate_state_write_errors_total{file=\"plan\"}");
    withdraw_beta(&s, true);
    let mark = log_len(&s.log);
    let text = s.sighup(&d);
    let log = log_since(&s.log, mark);
    let plan_file = state.join("plan.prefixes").display().to_string();
    assert!(
        record_with(
            &log,
            &["could not be saved as the last good plan", &plan_file]
        )
        .is_some(),
        "no line naming {plan_file}:\n{log}"
    );
    assert!(
        log.contains("the serials could not be recorded"),
        "serials:\n{log}"
    );
    assert_eq!(
        counter(&text, "wotgate_state_write_errors_total{file=\"plan\"}"),
        plan_errors + 1.0,
        "{text}"
    );
    assert!(counter(&text, "wotgate_state_write_errors_total{file=\"serials\"}") >= 1.0);
    assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
    s.expect_peers("beta withdrawn, state read-only", false);
    let v = status(&s.pair.server, &s.config);
    assert_eq!(v["plan"], v0["plan"], "the saved plan cannot change: {v:#}");
    assert_eq!(v["kernel_equals_plan"], false, "{v:#}");

    // (3) Writable again: the next refresh saves everything.
    d.sh(&format!("mount -o remount,bind,rw '{}'", state.display()));
    withdraw_beta(&s, false);
    s.caught_up(&d, &v0);
    s.expect_peers("writable again", true);
}

#[test]
fn a_full_state_directory_is_logged_and_counted_and_the_set_stays() {
    let s = Setup::new("dfu", "");
    let state = s.state_dir();
    // A small tmpfs of its own as the state directory, in the daemon's
    // mount namespace only (it vanishes with the daemon).
    let d = s.start(Some(&format!(
        "mount -t tmpfs -o size=256k wotgate-test-state '{}'",
        state.display()
    )));
    s.expect_peers("before", true);
    let v0 = d.status(&s.config);
    let filler = state.join("filler");
    let out = d
        .cmd(&[
            "dd",
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=4k",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left"),
        "the tmpfs should be full: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A refresh that changes nothing and one that drops beta: every write
    // fails for want of space, the set the kernel needs is enforced.
    let mark = log_len(&s.log);
    let text = s.sighup(&d);
    assert!(
        counter(&text, "wotgate_state_write_errors_total{file=\"status\"}") >= 1.0,
        "{text}"
    );
    let v = d.status(&s.config);
    assert_eq!(kernel_set(&v), kernel_set(&v0), "{v:#}");
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    s.expect_peers("state full, same inputs", true);
    withdraw_beta(&s, true);
    let text = s.sighup(&d);
    let log = log_since(&s.log, mark);
    let status_file = state.join("daemon-status.json").display().to_string();
    assert!(
        record_with(
            &log,
            &[
                "could not write the status file",
                &status_file,
                "No space left on device"
            ]
        )
        .is_some(),
        "no line naming {status_file} and the reason:\n{log}"
    );
    assert!(counter(&text, "wotgate_state_write_errors_total{file=\"plan\"}") >= 1.0);
    assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
    s.expect_peers("beta withdrawn, state full", false);
    // Nothing half-written is left behind.
    let listing = d.sh(&format!("ls -A '{}'", state.display()));
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(!listing.contains(".tmp"), "{listing}");
    let v = d.status(&s.config);
    assert_eq!(v["plan"], v0["plan"], "{v:#}");

    // Space again: everything is saved at the next refresh.
    d.sh(&format!("rm '{}'", filler.display()));
    withdraw_beta(&s, false);
    s.caught_up(&d, &v0);
    s.expect_peers("space again", true);
}

/// Connects from `client` again and again until stopped; counts outcomes.
struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(client_ns: &str, client: &str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let thread = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let (ns, client) = (client_ns.to_string(), client.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = connect(
                        &ns,
                        client.parse().unwrap(),
                        SERVER.parse().unwrap(),
                        Duration::from_millis(1000),
                    );
                    let n = if r.is_ok() { &ok } else { &failed };
                    n.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Prober {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops and returns (ok, failed).
    fn finish(&mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How many entries the inactive trie holds.
fn inactive_entries(pin: &Path) -> usize {
    let gate = Gate::open(pin).expect("open the pinned gate");
    let t = 1 - gate.active_trie().unwrap();
    gate.read_set(t).map_or(usize::MAX, |s| s.len())
}

const BULK: usize = 60_000;
const KILLS: usize = 20;

#[test]
fn sigkill_in_the_middle_of_a_swap_never_drops_a_trusted_connection() {
    let s = Setup::new("dki", "static_prefixes = \"{dir}/static.prefixes\"");
    let statics = s.world.dir.join("static.prefixes");
    // Two versions of a big static set, the same prefixes under other
    // labels: every refresh rewrites the whole inactive trie.
    let versions = [many_prefixes(BULK, "bulk-a"), many_prefixes(BULK, "bulk-b")];
    std::fs::write(&statics, &versions[0]).unwrap();
    let mut d = s.start(None);
    let v = d.status(&s.config);
    let mut digests = [kernel_set(&v).1, String::new()];
    let entries = kernel_set(&v).0;
    assert!(entries > BULK as u64, "{v:#}");
    s.expect_peers("before", true);

    let mut prober = Prober::start(&s.pair.client.name, ALPHA);
    // One undisturbed refresh to version 1: its digest and how long it takes.
    std::fs::write(&statics, &versions[1]).unwrap();
    s.sighup(&d);
    let v = s.wait_status(&d, "version 1", |v| loaded_count(v) >= 2);
    digests[1] = kernel_set(&v).1;
    assert_ne!(digests[0], digests[1]);
    let took = Duration::from_millis(v["status"]["last_refresh"]["duration_ms"].as_u64().unwrap());
    eprintln!("an undisturbed refresh of {entries} entries took {took:?}");
    let mut current = 1;
    let mut partial = 0;
    let mut outcomes = Vec::new();
    for i in 0..KILLS {
        current = 1 - current;
        std::fs::write(&statics, &versions[current]).unwrap();
        let pid = d.pid();
        d.signal(libc::SIGHUP);
        if i % 2 == 0 {
            // Anywhere from the start of the refresh to past its end.
            std::thread::sleep(took * 6 / 5 * i as u32 / KILLS as u32);
        } else {
            // Once the inactive trie is emptied and being filled, a little later.
            let gate = Gate::open(&s.pin).expect("open the pinned gate");
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                let t = 1 - gate.active_trie().unwrap();
                let meta = gate.meta().unwrap();
                if (meta.entries[t] == 0 && meta.generation[t] == 0) || Instant::now() > end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(10 * (i as u64 % 7)));
        }
        d.kill();
        // The kernel holds one complete version, never a mix.
        let v = status(&s.pair.server, &s.config);
        let (n, digest) = kernel_set(&v);
        assert_eq!(n, entries, "kill {i}: {v:#}");
        assert!(
            digests.contains(&digest),
            "kill {i}: a set of neither version: {v:#}"
        );
        let left = inactive_entries(&s.pin);
        if left > 0 && left < entries as usize {
            partial += 1;
        }
        outcomes.push(format!(
            "kill {i}: kernel has version {}, inactive trie {left} entries",
            digests.iter().position(|x| *x == digest).unwrap()
        ));

        // A new daemon adopts the pins and brings the kernel to the plan.
        d = DaemonProc::start(&s.pair.server, &s.config, &s.log);
        let newpid = d.pid();
        assert_ne!(newpid, pid);
        // The status file alone (cheap to poll, unlike `status`, which
        // reads every entry of the maps) until its first refresh is done.
        let end = Instant::now() + Duration::from_secs(120);
        while !DaemonStatus::load(&s.state_dir())
            .is_some_and(|st| st.pid == newpid as u32 && st.refreshes_loaded >= 1)
        {
            assert!(
                Instant::now() < end,
                "kill {i}: the adopting daemon never loaded a plan\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Read again: one `status` reads the maps, the plan and the status
        // file one after the other, so the first may straddle the refresh.
        let v = d.status(&s.config);
        assert_eq!(v["status"]["start"], "adopted", "kill {i}: {v:#}");
        assert_eq!(loaded_count(&v), 1, "kill {i}: {v:#}");
        assert_eq!(v["kernel_equals_plan"], true, "kill {i}: {v:#}");
        assert_eq!(
            kernel_set(&v),
            (entries, digests[current].clone()),
            "kill {i}: version {current} of {digests:?}: {v:#}"
        );
    }
    let (ok, failed) = prober.finish();
    eprintln!("{}", outcomes.join("\n"));
    eprintln!("{partial} of {KILLS} kills left a half-written inactive trie; {ok} connections");
    assert_eq!(failed, 0, "a trusted peer failed to connect ({ok} did)");
    assert!(ok > KILLS, "{ok}");
    assert!(
        partial > 0,
        "no kill landed in the middle of a swap, so the test proved nothing:\n{}",
        outcomes.join("\n")
    );
    let log = s.log_text();
    assert_eq!(
        log.matches("adopting the pinned gate").count(),
        KILLS,
        "every restart adopts"
    );
    s.expect_peers("after the kills", true);
    let v = status(&s.pair.server, &s.config);
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    assert_eq!(kernel_set(&v), (entries, digests[current].clone()));
    let text = scrape(s.ns(), &s.log);
    assert_eq!(
        value(&text, "wotgate_kernel_matches_plan"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "wotgate_kernel_entries"), Some(entries as f64));
}
