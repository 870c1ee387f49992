//! Project tasks: `cargo xtask setup|build|test|demo|deb|build-and-attach|bench`.
//! Every task installs what it needs first (see `setup`).

mod deb;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install missing prerequisites (Debian packages, bpf-linker). Idempotent.
    Setup,
    /// Build the XDP program and the `wotgate` binary (release).
    Build,
    /// Run every test: formatting, clippy, unit, packet, differential and
    /// kernel (veth) tests. Needs root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the whole system with real mail on the embedded default, in
    /// namespaces of its own, and check every outcome (docs/demo.md). Needs root.
    Demo {
        /// Leave it running until Ctrl-C and print how to look around.
        #[arg(long)]
        keep: bool,
    },
    /// Build the Debian package (cargo-deb, installed when missing): the
    /// release binary, the systemd unit, the example configuration, man
    /// pages and shell completions. Prints the package's path.
    Deb,
    /// Build everything and attach the gate to an interface.
    BuildAndAttach {
        #[arg(long)]
        iface: String,
        /// native (in the driver) or skb (generic XDP, slow).
        #[arg(long, default_value = "native")]
        xdp_mode: String,
        /// Further `wotgate attach` options (e.g. --observe, --port 25).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Benchmarks: xdp, flood, wot, plan, controller, policy or webs. `--record`
    /// appends to BENCHMARKS.md.
    Bench {
        which: String,
        #[arg(long)]
        record: bool,
        /// Further arguments for the benchmark (controller: --participants
        /// N, --per M prefixes each, --reps R; webs: --statements N, --reps
        /// R, --webs 100,1000; flood: --rounds R, --seconds S).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A cargo command in the workspace with the eBPF build switched on.
fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root())
        .args(args)
        .env("WOTGATE_BUILD_EBPF", "1")
        .env("RUST_LIB_BACKTRACE", "0")
        .env("PATH", setup::path_with_cargo_bin());
    c
}

pub(crate) fn run(mut c: Command) -> Result<()> {
    let desc = format!("{c:?}");
    let st = c.status().with_context(|| format!("spawning {desc}"))?;
    if !st.success() {
        bail!("{desc} failed ({st})");
    }
    Ok(())
}

/// Runs `cargo test`, echoing its output, and ends with one closing line
/// totalling every test binary: `tests: N passed, N failed`.
fn test_with_summary(mut c: Command) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let desc = format!("{c:?}");
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {desc}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)?
                            .trim()
                            .rsplit(' ')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            passed += num("passed");
            failed += num("failed");
        }
    }
    let st = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !st.success() || failed > 0 {
        bail!("{desc} failed ({st})");
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// Where cargo puts what it builds (`CARGO_TARGET_DIR` when set, relative
/// to the workspace root when relative).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"))
}

/// Release build of the XDP program and the `wotgate` binary; its path.
pub(crate) fn build_release() -> Result<PathBuf> {
    run(cargo(&[
        "build",
        "--release",
        "-p",
        "gate-userspace",
        "--bins",
    ]))?;
    Ok(target_dir().join("release/wotgate"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Build => {
            setup::setup()?;
            build_release().map(|_| ())
        }
        Cmd::Test { args } => {
            setup::setup()?;
            setup::require_root(
                "the kernel tests load XDP programs and create network namespaces",
            )?;
            run(cargo(&["fmt", "--all", "--", "--check"]))?;
            // Every host crate, the root-only `tests` crate included (it is
            // not a default member); never the eBPF crate (built by build.rs).
            let host = ["--workspace", "--exclude", "gate-ebpf"];
            let mut clippy = vec!["clippy", "--all-targets"];
            clippy.extend(host);
            clippy.extend(["--", "-D", "warnings"]);
            run(cargo(&clippy))?;
            // The kernel tests drive the real `wotgate` binary.
            run(cargo(&["build", "-p", "gate-userspace", "--bins"]))?;
            // tests/tests/package.rs checks the package built here (a
            // release build: about as long as the debug one).
            let package = deb::deb()?;
            let mut t = vec!["test", "--no-fail-fast"];
            t.extend(host);
            if !args.is_empty() {
                t.push("--");
                t.extend(args.iter().map(String::as_str));
            }
            let mut c = cargo(&t);
            c.env("WOTGATE_DEB", package);
            test_with_summary(c)
        }
        Cmd::Demo { keep } => {
            setup::setup()?;
            setup::require_root("the demo attaches XDP inside network namespaces")?;
            let wotgate = build_release()?;
            run(cargo(&[
                "build",
                "--release",
                "-p",
                "integration-tests",
                "--example",
                "demo",
            ]))?;
            // Replace this process with the demo, so Ctrl-C reaches the
            // demo alone (it cleans up) and not a parent that would exit
            // while the demo still removes its namespaces.
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(target_dir().join("release/examples/demo"));
            c.env("WOTGATE_BIN", wotgate).env("RUST_LIB_BACKTRACE", "0");
            if keep {
                c.arg("--keep");
            }
            let e = c.exec();
            bail!("cannot run the demo: {e}")
        }
        Cmd::Deb => deb::deb().map(|_| ()),
        Cmd::BuildAndAttach {
            iface,
            xdp_mode,
            args,
        } => {
            setup::setup()?;
            setup::require_root("attaching XDP")?;
            let wotgate = build_release()?;
            let mut c = Command::new(wotgate);
            c.args(["attach", "--iface", &iface, "--xdp-mode", &xdp_mode])
                .args(&args);
            run(c)
        }
        Cmd::Bench {
            which,
            record,
            args: extra,
        } => {
            setup::setup_with(match which.as_str() {
                "wot" => setup::BENCH_WOT_PACKAGES,
                "policy" => setup::BENCH_POLICY_PACKAGES,
                _ => &[],
            })?;
            // The XDP benchmark needs the kernel and test support: it
            // lives with the integration tests.
            let (package, example) = match which.as_str() {
                "xdp" => {
                    setup::require_root("BPF_PROG_TEST_RUN")?;
                    ("integration-tests", "bench_xdp")
                }
                "flood" => {
                    setup::require_root("the flood runs XDP on a veth pair in namespaces")?;
                    ("integration-tests", "bench_flood")
                }
                "wot" => ("gate-userspace", "bench_wot"),
                "plan" => ("gate-userspace", "bench_plan"),
                "controller" => {
                    setup::require_root("the daemon attaches XDP inside network namespaces")?;
                    ("integration-tests", "bench_controller")
                }
                "policy" => ("gate-userspace", "bench_policy"),
                "webs" => ("gate-userspace", "bench_webs"),
                other => {
                    bail!("unknown benchmark {other:?}: xdp, flood, wot, plan, controller, policy or webs")
                }
            };
            let mut args = vec![
                "run",
                "--release",
                "-p",
                package,
                "--example",
                example,
                "--",
            ];
            if record {
                args.push("--record");
            }
            args.extend(extra.iter().map(String::as_str));
            let mut c = cargo(&args);
            // Measure what runs in production: no backtrace captured for
            // every error the parsers make and handle (a shell's
            // RUST_BACKTRACE=1 doubled the keyring parse).
            c.env("RUST_LIB_BACKTRACE", "0");
            if which == "controller" {
                // The benchmark runs the daemon: the release binary, built first.
                c.env("WOTGATE_BIN", build_release()?);
            } else if which == "flood" {
                // It loads and attaches through the release binary, found
                // beside the example.
                build_release()?;
            }
            run(c)
        }
    }
}
