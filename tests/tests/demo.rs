//! The demo end to end (`cargo xtask demo` without the build): real
//! Postfix, `wotgate run`, the XDP gate and swaks in namespaces; every
//! case's outcome is checked by the demo itself and must be as expected.
//! And an interrupted demo (what Ctrl-C does) leaves nothing behind.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use integration_tests::demo::{self, run, Options};

/// The demos of this file run one at a time (the interruption is global).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const OPTIONS: Options = Options {
    keep: false,
    color: false,
};

/// What this process made that outlives a demo if cleanup fails: its
/// namespaces, pins, mail users and processes (named after our pid).
fn leftovers() -> Vec<String> {
    let pid = std::process::id() % 100_000;
    let mut left = Vec::new();
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let netns = String::from_utf8_lossy(&netns.stdout);
    left.extend(
        netns
            .lines()
            .filter(|l| l.starts_with(&format!("wgdemo{pid}x")))
            .map(|l| format!("namespace {l}")),
    );
    for e in std::fs::read_dir("/sys/fs/bpf").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("wotgate-demo-{pid}x")) {
            left.push(format!("pins {name}"));
        }
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    left.extend(
        passwd
            .lines()
            .filter(|l| l.starts_with(&format!("wgpf{pid}x")))
            .map(|l| format!("user {l}")),
    );
    // The daemon's and Postfix's command lines or environments name the
    // demo's temporary directories.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        for file in ["cmdline", "environ"] {
            let text = std::fs::read(format!("/proc/{p}/{file}")).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            if text.contains(&format!("wotgate-demo{pid}x"))
                || text.contains(&format!("wotgate-pf{pid}x"))
            {
                left.push(format!("process {p}: {}", text.replace('\0', " ")));
                break;
            }
        }
    }
    left
}

#[test]
fn the_demo_runs_and_every_case_has_its_expected_outcome() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run(&OPTIONS).expect("the demo runs to the end");
    // 9 cases, case 7 with two recipients, and the peer admitted after the reload.
    assert_eq!(outcome.checked, 11, "outcomes checked");
    assert!(
        outcome.wrong.is_empty(),
        "wrong outcomes: {:?}",
        outcome.wrong
    );
    assert_eq!(leftovers(), Vec::<String>::new(), "left behind");
}

#[test]
fn an_interrupted_demo_removes_everything_it_made() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id() % 100_000;
    // Interrupt once the gate is pinned (the daemon runs, Postfix too) and
    // the first cases are under way.
    let watcher = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            let pinned = std::fs::read_dir("/sys/fs/bpf")
                .unwrap()
                .flatten()
                .any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("wotgate-demo-{pid}x"))
                });
            if pinned {
                std::thread::sleep(Duration::from_secs(3));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        demo::interrupt();
    });
    let result = run(&OPTIONS);
    watcher.join().unwrap();
    demo::clear_interrupt();
    match result {
        Err(e) => assert_eq!(e.to_string(), "interrupted"),
        Ok(o) => panic!("the demo ran to the end ({} outcomes)", o.checked),
    }
    assert_eq!(leftovers(), Vec::<String>::new(), "left behind");
}
