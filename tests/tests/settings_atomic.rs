//! Gate-wide settings (ports, observe, protected destinations) change like
//! the trusted set: the inactive settings slot is written whole, then one
//! store flips the selector. A writer killed between the two leaves the
//! settings in force untouched (the datapath, run on real packets, agrees);
//! the next writer rewrites the inactive slot from scratch. The killed
//! writer is this test binary re-run as a child with the test-only
//! `WOTGATE_TEST_KILL_AT_STEP`.

use std::{net::Ipv6Addr, os::unix::process::ExitStatusExt, path::Path};

use aya::maps::{Array, Map, MapData};
use gate_common::{maps, GateConfig, Reason, FLAG_OBSERVE, FLAG_PROTECT_DST};
use integration_tests::PinnedGate;
use wotgate::gate::{
    replay::{syn_frame, XDP_DROP, XDP_PASS},
    swap::{KILL_AT_STEP_ENV, SETTINGS_STEP},
    Gate, Settings,
};

const CHILD_PIN: &str = "WOTGATE_TEST_SETTINGS_CHILD_PIN";
const SRC: &str = "2001:db8:5::1";
const MX: &str = "2001:db8:25::1";
const OTHER: &str = "2001:db8:99::1";

fn settings(ports: &[u16], observe: bool, protect: &[&str]) -> Settings {
    Settings {
        ports: ports.to_vec(),
        observe,
        protect: protect.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

/// What the settings being written by the killed child would be.
fn next() -> Settings {
    settings(&[587], true, &["2001:db8:99::/64"])
}

/// An untrusted SYN from SRC to `dst`, port `port`, through the real program.
fn run(gate: &Gate, dst: &str, port: u16) -> (u32, Reason) {
    let frame = syn_frame(
        SRC.parse::<Ipv6Addr>().unwrap().into(),
        dst.parse::<Ipv6Addr>().unwrap().into(),
        40000,
        port,
    );
    let o = gate.runner().unwrap().run(&frame).unwrap();
    (o.action, o.reason)
}

fn configs(pin: &Path) -> [GateConfig; 2] {
    let data = MapData::from_pin(pin.join(maps::CONFIG)).unwrap();
    let a: Array<MapData, GateConfig> = Map::Array(data).try_into().unwrap();
    [a.get(&0, 0).unwrap(), a.get(&1, 0).unwrap()]
}

/// The child: writes `next()` and is killed before the flip. Not a test of
/// its own (ignored); the parent runs it with `--ignored`.
#[test]
#[ignore = "the child of a_settings_update_killed_before_its_flip_changes_nothing"]
fn settings_child() {
    let pin = std::env::var_os(CHILD_PIN).expect("run only by the parent test");
    let mut gate = Gate::open(Path::new(&pin)).unwrap();
    gate.set_settings(&next()).unwrap();
    panic!("the settings update was not killed at step {SETTINGS_STEP}");
}

#[test]
fn a_settings_update_killed_before_its_flip_changes_nothing() {
    let mut pg = PinnedGate::new("sk");
    let before = settings(&[25], false, &["2001:db8:25::/64"]);
    pg.gate().set_settings(&before).unwrap();
    assert_eq!(pg.gate().settings().unwrap(), before);
    // Enforcing on 25 for MX only: dropped; 587 and other destinations pass.
    assert_eq!(run(pg.gate(), MX, 25), (XDP_DROP, Reason::UntrustedDrop));
    assert_eq!(run(pg.gate(), MX, 587), (XDP_PASS, Reason::OtherPass));
    assert_eq!(run(pg.gate(), OTHER, 25), (XDP_PASS, Reason::OtherPass));
    pg.release();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "settings_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PIN, pg.path())
        .env(KILL_AT_STEP_ENV, SETTINGS_STEP.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "child: {status:?}");

    // The child got as far as writing the inactive slot whole...
    let [c0, c1] = configs(pg.path());
    let written = [c0, c1]
        .into_iter()
        .find(|c| c.nports == 1 && c.ports[0] == 587)
        .expect("the killed writer wrote the inactive slot");
    assert_eq!(
        written.flags,
        FLAG_OBSERVE | FLAG_PROTECT_DST,
        "{written:?}"
    );
    // ...and nothing of it is in force: settings and datapath as before.
    pg.reopen();
    assert_eq!(pg.gate().settings().unwrap(), before);
    assert_eq!(run(pg.gate(), MX, 25), (XDP_DROP, Reason::UntrustedDrop));
    assert_eq!(run(pg.gate(), MX, 587), (XDP_PASS, Reason::OtherPass));
    assert_eq!(run(pg.gate(), OTHER, 25), (XDP_PASS, Reason::OtherPass));

    // The next writer rewrites the inactive slot from scratch (the killed
    // writer's protected destination is gone) and flips to it.
    let after = settings(&[25, 587], false, &[]);
    pg.gate().set_settings(&after).unwrap();
    assert_eq!(pg.gate().settings().unwrap(), after);
    assert_eq!(run(pg.gate(), MX, 587), (XDP_DROP, Reason::UntrustedDrop));
    assert_eq!(run(pg.gate(), OTHER, 25), (XDP_DROP, Reason::UntrustedDrop));
    // And once more, so both slots have been written by a whole update.
    let observe = settings(&[25], true, &["2001:db8:99::/64"]);
    pg.gate().set_settings(&observe).unwrap();
    assert_eq!(pg.gate().settings().unwrap(), observe);
    assert_eq!(run(pg.gate(), MX, 25), (XDP_PASS, Reason::OtherPass));
    assert_eq!(
        run(pg.gate(), OTHER, 25),
        (XDP_PASS, Reason::ObserveUntrusted)
    );
}
