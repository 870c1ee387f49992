//! Bad input and faults at the daemon level: the real `wotgate run` on a veth pair, fed a
//! corrupt keyring or configuration, denied its state directory; the set holds.

// Every case checks the log line that names the file and the problem, the
// counter on the metrics endpoint, that `status --json` still shows the same
// kernel set, and that a trusted peer still connects over real TCP. SIGKILL
// in the middle of a swap is in daemon_faults_kill.rs, fetch faults in
// daemon_faults_https.rs.

use std::path::Path;

use integration_tests::{
    daemon::{kernel_set, log_len, log_since, record_with, refreshes, scrape, status, value},
    daemon_world::{counter, WorldDaemon as Setup},
};

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
