//! The `wotgate` command: one subcommand per operator task, each in its own
//! file; this file only parses the command line and dispatches.

mod gate_cmds;
mod plan;
mod statement;
mod trust;

use clap::{Parser, Subcommand};

/// Admit SMTP only from IPv6 peers vouched for by an OpenPGP web of trust.
#[derive(Parser)]
#[command(name = "wotgate", version, about)]
struct Cli {
    /// Directory in bpffs where the gate's maps, program and links are pinned.
    #[arg(long, global = true, env = "WOTGATE_PIN_DIR", default_value = wotgate::gate::DEFAULT_PIN_DIR)]
    pin_dir: std::path::PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Attach(gate_cmds::Attach),
    Detach(gate_cmds::Detach),
    /// Manage the trusted set.
    #[command(subcommand)]
    Prefixes(gate_cmds::Prefixes),
    Inspect(gate_cmds::Inspect),
    Check(gate_cmds::Check),
    Replay(gate_cmds::Replay),
    /// Inspect the web of trust.
    #[command(subcommand)]
    Trust(trust::Trust),
    /// Signed network statements: new, sign, verify, show.
    #[command(subcommand)]
    Statement(statement::StatementCmd),
    Plan(plan::PlanCmd),
}

fn main() -> std::process::ExitCode {
    // Errors are values on hot paths; a captured backtrace per anyhow error
    // costs more than the work (see field notes).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WOTGATE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attach(c) => c.run(&cli.pin_dir),
        Command::Detach(c) => c.run(&cli.pin_dir),
        Command::Prefixes(c) => c.run(&cli.pin_dir),
        Command::Inspect(c) => c.run(&cli.pin_dir),
        Command::Check(c) => c.run(&cli.pin_dir),
        Command::Replay(c) => c.run(&cli.pin_dir),
        Command::Statement(c) => c.run(&cli.pin_dir),
        Command::Plan(c) => c.run(&cli.pin_dir),
        Command::Trust(c) => c.run(&cli.pin_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wotgate: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
