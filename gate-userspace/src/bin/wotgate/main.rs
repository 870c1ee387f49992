//! The `wotgate` command: parses the command line and hands each subcommand
//! to its file under `commands/`, which calls the library.

/// `println!` that returns an error instead of panicking (use with `?`).
macro_rules! outln {
    ($($t:tt)*) => { $crate::output::out(format_args!("{}\n", format_args!($($t)*)))? };
}
/// `print!` that returns an error instead of panicking (use with `?`).
macro_rules! out {
    ($($t:tt)*) => { $crate::output::out(format_args!($($t)*))? };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::err(format_args!("{}\n", format_args!($($t)*))) };
}
/// `eprint!` that never panics.
macro_rules! err {
    ($($t:tt)*) => { $crate::output::err(format_args!($($t)*)) };
}

mod args;
mod commands;
mod exit;
mod output;
mod progress;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use commands::*;

/// Admit SMTP only from IPv6 peers vouched for by an OpenPGP web of trust.
#[derive(Parser)]
#[command(name = "wotgate", version, about, after_help = exit::TABLE)]
struct Cli {
    /// Directory in bpffs where the gate's maps, program and links are
    /// pinned; used by attach, upgrade, detach, prefixes, inspect, check, replay and
    /// plan (run, reload and status use the configuration's gate.pin_directory).
    #[arg(long, env = "WOTGATE_PIN_DIR", default_value = wotgate::gate::DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Seconds a command that changes the gate (or runs packets through it)
    /// waits for the pin directory's lock while another wotgate holds it;
    /// 0 gives up at once. Waiting is said on standard error.
    #[arg(long, env = "WOTGATE_LOCK_TIMEOUT", default_value_t = wotgate::gate::lock::DEFAULT_LOCK_TIMEOUT.as_secs(), value_name = "SECONDS")]
    lock_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Attach(attach::Attach),
    Upgrade(upgrade::Upgrade),
    Detach(detach::Detach),
    Purge(purge::Purge),
    /// Manage the trusted set.
    #[command(subcommand)]
    Prefixes(prefixes::Prefixes),
    Inspect(inspect::Inspect),
    Check(check::Check),
    Replay(replay::Replay),
    /// Inspect the web of trust.
    #[command(subcommand)]
    Trust(Trust),
    /// Signed network statements: new, sign, verify, show.
    #[command(subcommand)]
    Statement(Statement),
    Plan(plan::PlanCmd),
    Run(run::Run),
    Policy(policy::Policy),
    Postmaster(postmaster::Postmaster),
    Doctor(doctor::Doctor),
    Reload(reload::Reload),
    Status(status::Status),
    /// Check the controller's configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    #[command(hide = true)]
    Generate(generate::Generate),
}

#[derive(Subcommand)]
enum ConfigCmd {
    Check(config_check::Check),
}

#[derive(Subcommand)]
enum Trust {
    List(trust_list::List),
    Explain(trust_explain::Explain),
}

#[derive(Subcommand)]
enum Statement {
    New(statement_new::New),
    Sign(statement_sign::Sign),
    Verify(statement_verify::Verify),
    Show(statement_show::Show),
}

fn main() -> std::process::ExitCode {
    wotgate::wot::alloc::single_arena();
    // Errors are values on hot paths; a captured backtrace per anyhow error
    // costs more than the work (measured: sequoia runs 2.3x slower).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    // The daemon says what it does (one line per refresh, nothing per
    // packet); the commands only warn.
    let default_level = match cli.command {
        Command::Run(_) | Command::Policy(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WOTGATE_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    wotgate::gate::set_lock_wait(wotgate::gate::LockWait {
        timeout: std::time::Duration::from_secs(cli.lock_timeout),
        notice: Some(lock_notice),
    });
    let pin = cli.pin_dir.as_path();
    let result = match cli.command {
        Command::Attach(c) => c.run(pin),
        Command::Upgrade(c) => c.run(pin),
        Command::Detach(c) => c.run(pin),
        Command::Purge(c) => c.run(pin),
        Command::Prefixes(c) => c.run(pin),
        Command::Inspect(c) => c.run(pin),
        Command::Check(c) => c.run(pin),
        Command::Replay(c) => c.run(pin),
        Command::Plan(c) => c.run(pin),
        Command::Run(c) => c.run(),
        Command::Policy(c) => c.run(),
        Command::Postmaster(c) => c.run(),
        Command::Doctor(c) => c.run(),
        Command::Reload(c) => c.run(),
        Command::Status(c) => c.run(),
        Command::Config(ConfigCmd::Check(c)) => c.run(),
        Command::Trust(Trust::List(c)) => c.run(),
        Command::Trust(Trust::Explain(c)) => c.run(),
        Command::Statement(Statement::New(c)) => c.run(),
        Command::Statement(Statement::Sign(c)) => c.run(),
        Command::Statement(Statement::Verify(c)) => c.run(),
        Command::Statement(Statement::Show(c)) => c.run(),
        Command::Generate(c) => c.run(<Cli as clap::CommandFactory>::command()),
    };
    let result = result.and_then(|code| output::flush().map(|_| code).map_err(Into::into));
    match result {
        Ok(code) => code,
        Err(e) => {
            let broken_pipe = e
                .downcast_ref::<output::OutputError>()
                .is_some_and(output::OutputError::is_broken_pipe);
            if !broken_pipe {
                errln!("wotgate: {e:#}");
            }
            std::process::ExitCode::from(exit::ERROR)
        }
    }
}

/// Said when a command has to wait for the gate's lock: once per run, even
/// when a long command (a replay) waits again later.
fn lock_notice(w: &wotgate::gate::Waiting) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        errln!("wotgate: {w}");
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Every argument has a help line; every leaf command ends its help with examples.
    #[test]
    fn every_argument_has_help_and_every_command_examples() {
        fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() {
                    problems.push(format!("{path}: argument {} has no help", a.get_id()));
                }
            }
            let subs: Vec<_> = cmd
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .collect();
            if subs.is_empty() {
                let after = cmd
                    .get_after_help()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if !after.starts_with("Example") {
                    problems.push(format!("{path}: no examples after the help"));
                }
                if cmd.get_about().is_none() {
                    problems.push(format!("{path}: no description"));
                }
            }
            for s in subs {
                walk(s, &path, problems);
            }
        }
        let mut problems = Vec::new();
        walk(&super::Cli::command(), "", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn repeatable_options_take_one_value_per_flag() {
        // The README's order: options first, the query last.
        let cli = super::Cli::try_parse_from([
            "wotgate",
            "trust",
            "explain",
            "--keyring",
            "k",
            "--root",
            "A",
            "--root",
            "B",
            "example.org",
        ]);
        assert!(cli.is_ok(), "{:?}", cli.err());
        for cmd in super::Cli::command().get_subcommands() {
            for leaf in std::iter::once(cmd).chain(cmd.get_subcommands()) {
                for a in leaf.get_arguments() {
                    let n = a.get_num_args().map(|r| r.max_values()).unwrap_or(1);
                    assert!(
                        n <= 1 || a.is_positional(),
                        "{} --{}: takes {n} values per flag",
                        leaf.get_name(),
                        a.get_id()
                    );
                }
            }
        }
    }
}
