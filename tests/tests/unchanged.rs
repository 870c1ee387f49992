//! A load whose set the kernel enforces already swaps nothing: the generation
//! stays (no flip, no refill), and a changed set swaps again.

use std::path::Path;
use std::process::Output;

use integration_tests::{unique, world::World, wotgate_bin, wotgate_cmd, PinnedGate};
use wotgate::gate::Gate;

fn run(pin: &Path, args: &[&str]) -> Output {
    let out = wotgate_cmd(None, pin, args).output().expect("run wotgate");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The generation of the trie the datapath reads, and both tries' generations.
fn generations(pin: &Path) -> (u64, [u64; 2]) {
    let gate = Gate::open(pin).unwrap();
    let meta = gate.meta().unwrap();
    (
        meta.generation[gate.active_trie().unwrap()],
        meta.generation,
    )
}

#[test]
fn loading_the_enforced_set_again_swaps_nothing() {
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-same-{}", unique("w"))),
        &bin,
    );
    let mut pg = PinnedGate::new("same");
    pg.release();
    let pin = pg.path().to_path_buf();
    let config = world.config.to_str().unwrap();

    let out = run(&pin, &["plan", "--config", config, "--load"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("as generation 1"));
    let first = generations(&pin);
    assert_eq!(first.0, 1);

    // The same inputs again: nothing swapped, the generation stays.
    let out = run(&pin, &["plan", "--config", config, "--load"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unchanged"), "{err}");
    assert!(err.contains("(generation 1)"), "{err}");
    assert_eq!(generations(&pin), first, "an unchanged plan was swapped");

    // A different set (the statements expired, forced) swaps again.
    let out = run(
        &pin,
        &[
            "plan",
            "--config",
            config,
            "--load",
            "--at",
            "2099-01-01",
            "--force",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("as generation 2"));
    assert_eq!(generations(&pin).0, 2);
}
