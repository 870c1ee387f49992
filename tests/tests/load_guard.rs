//! `plan --load` never wipes or guts the trusted set by accident: incomplete
//! inputs and large shrinks are refused with the set unchanged, unless forced.

use std::path::Path;
use std::process::Output;

use integration_tests::{unique, world::World, wotgate_bin, wotgate_cmd, PinnedGate};
use wotgate::gate::Gate;

fn run(pin: &Path, args: &[&str]) -> Output {
    wotgate_cmd(None, pin, args).output().expect("run wotgate")
}

fn loaded(pin: &Path) -> Vec<String> {
    let set = Gate::open(pin).unwrap().active_set().unwrap();
    set.iter()
        .map(|e| format!("{} {}", e.verdict, e.prefix))
        .collect()
}

/// The world's configuration with one line replaced, written beside it.
fn variant(world: &World, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(&world.config).unwrap();
    assert!(text.contains(from), "{text}");
    let path = world.dir.join(format!("{name}.toml"));
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn incomplete_inputs_and_shrinks_are_refused_and_change_nothing() {
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-guard-{}", unique("w"))),
        &bin,
    );
    let mut pg = PinnedGate::new("guard");
    pg.release();
    let pin = pg.path().to_path_buf();
    let config = world.config.to_str().unwrap();
    let out = run(&pin, &["plan", "--config", config, "--load"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = loaded(&pin);
    assert_eq!(good.len(), 3, "{good:?}");

    let root = world.root();
    let stranger = "0123456789ABCDEF0123456789ABCDEF01234567";
    let cases = [
        (
            variant(&world, "no-keyring", "keyring.pgp", "missing.pgp"),
            vec![],
            "missing.pgp",
        ),
        (
            variant(&world, "no-root", &root, stranger),
            vec![],
            "is not in any keyring",
        ),
        // Every statement expired: the set would lose everything.
        (
            config.to_string(),
            vec!["--at", "2099-01-01"],
            "leaving nothing trusted",
        ),
    ];
    for (cfg, extra, why) in &cases {
        let mut args = vec!["plan", "--config", cfg.as_str(), "--load"];
        args.extend(extra.iter().copied());
        let out = run(&pin, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("refusing to load"), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(err.contains("nothing was loaded"), "{args:?}: {err}");
        assert_eq!(loaded(&pin), good, "{args:?} changed the set");
    }
    // Saying what would be lost: the domains of the lost entries.
    let out = run(
        &pin,
        &["plan", "--config", config, "--load", "--at", "2099-01-01"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow 2001:db8:a::/48"), "{err}");

    // The operator may force it.
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(loaded(&pin).iter().all(|e| !e.starts_with("allow")));
    // From nothing trusted, a good plan loads without force.
    let out = run(&pin, &["plan", "--config", config, "--load"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(loaded(&pin), good);
}

#[test]
fn prefix_files_that_trust_nobody_or_everybody_need_force() {
    let mut pg = PinnedGate::new("pguard");
    pg.release();
    let pin = pg.path().to_path_buf();
    let dir = std::env::temp_dir().join(format!("wotgate-pguard-{}", unique("d")));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = file(
        "good",
        "allow 2001:db8:1::/48 one\nallow 2001:db8:2::/48 two\n",
    );
    let out = run(&pin, &["prefixes", "load", &good]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = loaded(&pin);
    let cases = [
        (file("empty", ""), "leaving nothing trusted"),
        (
            file("comments", "# nothing here\n\n"),
            "leaving nothing trusted",
        ),
        (
            file("deny", "deny 2001:db8:1::/48\n"),
            "leaving nothing trusted",
        ),
        (
            file(
                "world",
                "allow ::/0 everyone\nallow 2001:db8:1::/48 one\nallow 2001:db8:2::/48 two\n",
            ),
            "broader than /16",
        ),
    ];
    for (f, why) in &cases {
        let out = run(&pin, &["prefixes", "load", f]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{f}: {err}");
        assert!(err.contains(why) && err.contains(f.as_str()), "{f}: {err}");
        assert_eq!(loaded(&pin), before, "{f} changed the set");
    }
    let out = run(&pin, &["prefixes", "load", "--force", &cases[0].0]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(loaded(&pin).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory bind-mounted read-only onto itself; unmounted on drop.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.to_str().unwrap();
        let ro = ReadOnly(dir.to_path_buf());
        integration_tests::netns::sh(&["mount", "--bind", d, d]);
        integration_tests::netns::sh(&["mount", "-o", "remount,ro,bind", d]);
        ro
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_load_whose_serials_cannot_be_recorded_says_what_state_everything_is_in() {
    let bin = wotgate_bin();
    let world = World::create(
        &std::env::temp_dir().join(format!("wotgate-ro-{}", unique("w"))),
        &bin,
    );
    let mut pg = PinnedGate::new("ro");
    pg.release();
    let pin = pg.path().to_path_buf();
    let _ro = ReadOnly::new(&world.dir.join("state"));
    let out = run(
        &pin,
        &["plan", "--config", world.config.to_str().unwrap(), "--load"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the plan IS loaded"), "{err}");
    assert!(err.contains("gate enforces it"), "{err}");
    assert!(err.contains("still holds the previous serials"), "{err}");
    assert_eq!(loaded(&pin).len(), 3, "the set is in the kernel");
}
