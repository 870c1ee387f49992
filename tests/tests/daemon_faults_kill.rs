//! SIGKILL of the real daemon in the middle of a swap, 20 times, while a trusted peer
//! connects throughout: no connection fails, each restart adopts, the kernel ends at the plan.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use integration_tests::{
    daemon::{kernel_set, loaded_count, scrape, status, value, DaemonProc},
    daemon_world::{WorldDaemon as Setup, ALPHA, SERVER},
    many_prefixes,
    netns::connect,
};
use wotgate::{daemon::state::DaemonStatus, gate::Gate};

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

/// The update the pinned journal says was under way, if one was: what a
/// kill in the middle of a swap leaves for the next writer to repair.
fn interrupted(pin: &Path) -> Option<String> {
    let gate = Gate::open(pin).expect("open the pinned gate");
    let meta = gate.meta().unwrap();
    (meta.journal.state != gate_common::JOURNAL_IDLE).then(|| format!("{:?}", meta.journal))
}

const BULK: usize = 60_000;
const KILLS: usize = 20;

#[test]
fn sigkill_in_the_middle_of_a_swap_never_drops_a_trusted_connection() {
    let s = Setup::new("dki", "static_prefixes = \"{dir}/static.prefixes\"");
    let statics = s.world.dir.join("static.prefixes");
    // Two versions of a big static set, the same prefixes under other
    // labels: every refresh changes every one of them (both tries, entry by entry).
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
            // Once the journal says the update started, a little later.
            let gate = Gate::open(&s.pin).expect("open the pinned gate");
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                let meta = gate.meta().unwrap();
                if meta.journal.state != gate_common::JOURNAL_IDLE || Instant::now() > end {
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
        let left = interrupted(&s.pin);
        if left.is_some() {
            partial += 1;
        }
        outcomes.push(format!(
            "kill {i}: kernel has version {}, interrupted update: {}",
            digests.iter().position(|x| *x == digest).unwrap(),
            left.as_deref().unwrap_or("none")
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
    eprintln!(
        "{partial} of {KILLS} kills interrupted an update (journal not idle); {ok} connections"
    );
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
