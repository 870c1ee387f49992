//! `cargo xtask demo`: the whole system with real mail, in namespaces it
//! creates and removes; every case's outcome is checked, not just shown.
//!
//! The example `demo` (tests/examples/demo.rs) runs [`run`] with signal
//! handling; the kernel test tests/tests/demo.rs runs it in-process.
//! What the demo shows is described in docs/demo.md.

pub mod cases;
pub mod mx;
pub mod net;
pub mod show;
pub mod world;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{bail, Context, Result};

use crate::{daemon::Cleanup, https::HttpsServer, https::TestCa, wotgate_bin};
use cases::{Case, Ctx, Expect, Seen};
use mx::Daemon;
use net::Net;
use show::{Out, Style};
use world::DemoWorld;

/// Set by the signal handler (Ctrl-C, SIGTERM); every wait checks it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Called from a signal handler thread: the demo stops at its next check
/// and cleans up on the way out.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// An error once interrupted, so the demo unwinds through its guards.
pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Forgets an interruption (for a test that interrupts a demo and runs another).
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How the demo runs.
pub struct Options {
    /// Leave everything running until interrupted and say how to look around.
    pub keep: bool,
    /// ANSI colours (a terminal).
    pub color: bool,
}

/// What a finished demo reports: the cases whose outcome was wrong.
pub struct Outcome {
    pub checked: usize,
    pub wrong: Vec<String>,
}

/// Everything running, dropped in field order: daemon, pins, Postfix, the
/// HTTPS server, the namespaces, and last the directory.
struct Running {
    daemon: Option<Daemon>,
    _pins: Cleanup,
    pf: crate::postfix::PostfixInstance,
    web: HttpsServer,
    net: Net,
    world: DemoWorld,
    _dir: crate::TmpDir,
}

/// Runs the demo: builds the world and the network, sends every case,
/// reloads, and removes everything on return (also on an error or a panic).
pub fn run(opts: &Options) -> Result<Outcome> {
    crate::require_kernel();
    crate::postfix::require_postfix();
    let mut out = Out::new(opts.color, 6);
    let bin = wotgate_bin();
    out.line(&out.paint(
        Style::Bold,
        "wotgate demo: an MX that takes mail only from peers its web of trust vouches for",
    ));
    out.line(&out.paint(Style::Dim, &format!("wotgate binary: {}", bin.display())));

    let step = out.step("making keys, certifications and statements (wotgate statement new/sign)");
    let dir = crate::TmpDir::new("demo");
    let world = DemoWorld::create(&dir.0)?;
    let statements = world.sign_statements(&bin)?;
    step.done(&format!(
        "{} keys, {} signed statements",
        world.parties.len() + 1,
        statements.len()
    ));
    check_interrupt()?;

    let step = out.step("creating namespaces: MX, router, HTTPS host, 8 peers");
    // `PID` and a counter: names unique on the machine and in this process.
    let id = crate::unique("");
    let net = Net::create(&id);
    step.done(&format!("wgdemo{id}-*"));
    check_interrupt()?;

    let step = out.step("publishing WKD keys, statements and certifications over HTTPS (demo CA)");
    let ca = TestCa::new("demo");
    std::fs::write(dir.0.join("demo-ca.pem"), ca.pem())?;
    let names: Vec<&str> = net::WEB_HOSTS.iter().map(|(n, _)| *n).collect();
    std::fs::create_dir_all(dir.0.join("www"))?;
    let web = HttpsServer::start(&net.web.name, 443, &ca, &names, &dir.0.join("www"));
    world.publish(&web, &statements);
    std::fs::write(dir.0.join("hosts"), net.hosts_file())?;
    std::fs::write(dir.0.join("resolv.conf"), "nameserver ::1\n")?;
    step.done(&format!("{} domains", names.len()));

    let step = out.noisy_step("starting Postfix (STARTTLS, policy service at RCPT and DATA)");
    let pf = mx::start_postfix(&net);
    step.done("listening on [2001:db8:ffff::1]:25 and 192.0.2.1:25");
    check_interrupt()?;

    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-demo-{id}"));
    let mut site = Running {
        daemon: None,
        _pins: Cleanup {
            pin: pin.clone(),
            dir: None,
        },
        pf,
        web,
        net,
        world,
        _dir: dir,
    };
    let wdir = site.world.dir.clone();
    std::fs::create_dir_all(wdir.join("statements"))?;
    std::fs::create_dir_all(wdir.join("recipients.d"))?;
    std::fs::create_dir_all(wdir.join("state"))?;
    let alice = site.pf.address("alice");
    std::fs::write(
        wdir.join(format!("recipients.d/{alice}.toml")),
        format!(
            "# alice also trusts delta, whose admin she knows\ncombine = \"extend\"\nroots = [\"{}\"]\n",
            site.world.fpr("delta")
        ),
    )?;
    let config = wdir.join("wotgate.toml");
    std::fs::write(
        &config,
        mx::config_text(&mx::ConfigInput {
            root: &site.world.ours.fingerprint().to_hex(),
            refuse: &site.world.fpr("mallory"),
            uplink: &site.net.uplink,
            pin: &pin,
            policy_socket: &site.pf.policy_socket(),
        }),
    )?;

    out.line(&out.paint(
        Style::Dim,
        &format!("      configuration: {}", config.display()),
    ));
    let step =
        out.step("starting `wotgate run`: fetch, web of trust, plan, XDP gate, policy server");
    let daemon = Daemon::start(&site.net, &wdir, &config);
    let v = daemon.wait_ready(&site.pf.policy_socket());
    site.daemon = Some(daemon);
    let v = v?;
    step.done(&format!(
        "first plan loaded: {} gate entries",
        v["gate"]["entries"].as_u64().unwrap_or(0)
    ));

    let d = site.daemon.as_ref().expect("daemon");
    let ctx = Ctx {
        net: &site.net,
        pf: &site.pf,
        daemon: d,
        tls: &site.world.epsilon_tls,
    };
    let names = Names::new(&site.world, &ctx);
    let mut outcome = Outcome {
        checked: 0,
        wrong: Vec::new(),
    };
    out.title(&format!(
        "Each peer sends one mail with swaks (alice = {alice}, bob = {})",
        ctx.address("bob")
    ));
    for case in cases::first_round() {
        play(&out, &ctx, &case, &config, &names, &mut outcome)?;
    }

    out.title("What the MX says about itself");
    let (_, status) = d.wotgate(&["status", "--config", config.to_str().context("path")?]);
    out.line("$ wotgate status");
    out.block("  ", &status);
    counters(&out, d)?;

    out.title("alpha certifies gamma and publishes it; the MX reloads");
    let step = out.step("publishing alpha's new certified.pgp, `wotgate reload`");
    site.world.alpha_certifies_gamma(&site.web);
    let v = d.reload()?;
    step.done(&format!(
        "reloaded: {} gate entries",
        v["gate"]["entries"].as_u64().unwrap_or(0)
    ));
    play(
        &out,
        &ctx,
        &cases::after_reload(),
        &config,
        &names,
        &mut outcome,
    )?;

    out.title("Result");
    if outcome.wrong.is_empty() {
        out.line(&out.paint(
            Style::Green,
            &format!(
                "all {} outcomes as expected ({:.0} s)",
                outcome.checked,
                out.elapsed().as_secs_f64()
            ),
        ));
    } else {
        out.line(&out.paint(
            Style::Red,
            &format!("WRONG outcome in case(s): {}", outcome.wrong.join(", ")),
        ));
    }
    if opts.keep {
        keep(&out, &site, &config, &pin)?;
    }
    out.line(&out.paint(
        Style::Dim,
        "cleaning up: daemon, pins, Postfix, namespaces, files",
    ));
    drop(site);
    Ok(outcome)
}

/// Sends one case, prints what happened and why, records a wrong outcome.
fn play(
    out: &Out,
    ctx: &Ctx,
    case: &Case,
    // The daemon's own configuration: `trust explain --config` adds the keys
    // the daemon fetched (its cache), so it sees what the daemon judged.
    config: &Path,
    names: &Names,
    outcome: &mut Outcome,
) -> Result<()> {
    out.line("");
    print!(
        "{} {} from {}  {} ",
        out.paint(Style::Bold, &format!("({})", case.id)),
        out.paint(Style::Cyan, case.domain),
        net::addr(case.peer),
        out.paint(Style::Dim, case.story)
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let ticker = out.ticker();
    let seen = ctx.run(case);
    drop(ticker);
    out.line("");
    let seen = seen?;
    for s in &seen {
        outcome.checked += 1;
        report(out, case, s);
        if !s.ok {
            outcome.wrong.push(format!("({}) to {}", case.id, s.rcpt));
        }
    }
    for (query, recipient) in &case.explain {
        let mut args = vec!["trust", "explain", "--config", config.to_str().unwrap()];
        let addr;
        if let Some(r) = recipient {
            addr = ctx.address(r);
            args.extend(["--recipient", &addr]);
        }
        args.push(query);
        let (_, text) = ctx.daemon.wotgate(&args);
        let shown = match recipient {
            Some(r) => format!("$ wotgate trust explain --recipient {r} {query}"),
            None => format!("$ wotgate trust explain {query}"),
        };
        out.line(&format!("    {}", out.paint(Style::Dim, &shown)));
        out.block("      ", &names.apply(&text));
    }
    Ok(())
}

fn report(out: &Out, case: &Case, s: &Seen) {
    let want = match s.expect {
        Expect::Delivered(_) => "delivered".to_string(),
        Expect::Rejected(c) => format!("rejected at RCPT ({c} check)"),
        Expect::Dropped(r) => format!("dropped at the gate ({r})"),
    };
    let mark = if s.ok {
        out.paint(Style::Green, "as expected")
    } else {
        out.paint(Style::Red, &format!("WRONG: expected {want}"))
    };
    let colour = match s.expect {
        Expect::Delivered(_) => Style::Green,
        _ => Style::Yellow,
    };
    out.line(&format!(
        "    to {:5} {}  [{mark}]",
        s.rcpt,
        out.paint(colour, &s.what)
    ));
    if let Some(h) = &s.header {
        out.line(&format!(
            "    {}",
            out.paint(Style::Dim, &format!("Authentication-Results: {h}"))
        ));
    }
    let _ = case;
}

/// Prints the counters that tell the story: the gate's, the policy's, the trust's.
fn counters(out: &Out, d: &Daemon) -> Result<()> {
    let text = d.metrics()?;
    out.line(&format!(
        "$ curl http://{}/metrics  (selected)",
        crate::daemon::METRICS
    ));
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let interesting = [
            "wotgate_gate_packets_total",
            "wotgate_policy_verdicts_total",
            "wotgate_policy_failures_total",
            "wotgate_trusted_keys",
            "wotgate_plan_entries",
            "wotgate_statements",
        ]
        .iter()
        .any(|p| l.starts_with(p));
        if interesting && !l.ends_with(" 0") {
            out.line(&format!("  {}", out.paint(Style::Dim, l)));
        }
    }
    Ok(())
}

/// `--keep`: says how to look around, then waits for Ctrl-C.
fn keep(out: &Out, site: &Running, config: &Path, pin: &Path) -> Result<()> {
    let mx = &site.net.mx.name;
    out.title("Left running (--keep); look around, then press Ctrl-C to clean up:");
    let bin = wotgate_bin();
    let lines = [
        format!("nsenter --net=/run/netns/{mx} {} status --config {}", bin.display(), config.display()),
        format!("nsenter --net=/run/netns/{mx} {} --pin-dir {} inspect", bin.display(), pin.display()),
        format!("nsenter --net=/run/netns/{mx} curl -s http://{}/metrics", crate::daemon::METRICS),
        format!(
            "nsenter --net=/run/netns/{} swaks --server {} --from postmaster@alpha.example --to {} --helo mail.alpha.example",
            site.net.peer("alpha").name,
            net::MX_V6,
            site.pf.address("bob")
        ),
        format!("less {}   # the daemon's log", site.world.dir.join("daemon.log").display()),
        format!("less {}   # Postfix's log", site.pf.dir().join("maillog").display()),
        "ip netns list | grep wgdemo".to_string(),
    ];
    for l in lines {
        out.line(&format!("  {l}"));
    }
    while !interrupted() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

/// Fingerprints and test addresses shown as names in `trust explain` output.
struct Names(Vec<(String, String)>);

impl Names {
    fn new(world: &DemoWorld, ctx: &Ctx) -> Names {
        let mut v = vec![(world.ours.fingerprint().to_hex(), "[ours]".to_string())];
        for p in &world.parties {
            v.push((p.key.fingerprint().to_hex(), format!("[{}]", p.name)));
        }
        for r in ["alice", "bob"] {
            v.push((ctx.address(r), r.to_string()));
        }
        Names(v)
    }

    fn apply(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (from, to) in &self.0 {
            t = t.replace(from.as_str(), to);
        }
        t
    }
}

/// The demo as a command: runs, prints, and turns the outcome into an
/// exit code (0: every case as expected; 1: a wrong outcome; 2: an error;
/// 130: interrupted).
pub fn main_with(opts: &Options) -> std::process::ExitCode {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(opts)));
    match result {
        Ok(Ok(o)) if o.wrong.is_empty() => std::process::ExitCode::SUCCESS,
        Ok(Ok(o)) => {
            eprintln!("demo: wrong outcome in case(s) {}", o.wrong.join(", "));
            std::process::ExitCode::from(1)
        }
        Ok(Err(_)) | Err(_) if interrupted() => {
            eprintln!("demo: interrupted; everything it made is removed");
            std::process::ExitCode::from(130)
        }
        Ok(Err(e)) => {
            eprintln!("demo failed: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("demo failed (see the panic above); everything it made is removed");
            std::process::ExitCode::from(2)
        }
    }
}
