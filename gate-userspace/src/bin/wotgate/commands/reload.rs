//! `wotgate reload`: asks the running daemon to refresh now (SIGHUP to the
//! pid in its lock file) and waits for the outcome.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use wotgate::daemon::{instance, state};
use wotgate::model::{config::Config, time::to_timestamp};

use crate::exit;

/// Make the running daemon refresh now and print how it went.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate reload --config /etc/wotgate/wotgate.toml
  wotgate reload --config /etc/wotgate/wotgate.toml --force   # past the load guard, once")]
pub struct Reload {
    /// The daemon's configuration file (names its pin and state directories).
    #[arg(long)]
    config: PathBuf,
    /// Load even when an input is incomplete or the set would shrink past
    /// `[load] max_shrink_percent` (this refresh only).
    #[arg(long)]
    force: bool,
    /// Return once the signal is sent, without waiting for the outcome.
    #[arg(long)]
    no_wait: bool,
}

impl Reload {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        let pin = &cfg.gate.pin_directory;
        let holder = instance::holder(pin);
        let pid = match (holder.running, holder.pid) {
            (true, Some(pid)) => pid,
            _ => bail!(
                "no wotgate daemon runs for the gate pinned at {} (start it with wotgate run --config {})",
                pin.display(),
                self.config.display()
            ),
        };
        if self.force {
            state::set_force(&cfg.state_directory).with_context(|| {
                format!(
                    "writing the force flag in {}",
                    cfg.state_directory.display()
                )
            })?;
        }
        let sent = to_timestamp(SystemTime::now());
        // SAFETY: plain kill(2) on a pid read from the lock file it holds.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
            bail!(
                "signalling the daemon (pid {pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        if self.no_wait {
            outln!("asked the daemon (pid {pid}) to refresh");
            return Ok(ExitCode::SUCCESS);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: kill(2) with signal 0 only checks that the pid exists.
            if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            {
                bail!("the daemon (pid {pid}) exited before it recorded the refresh; its log says why");
            }
            let Some(s) = state::DaemonStatus::load(&cfg.state_directory) else {
                continue;
            };
            let Some(r) = s
                .last_refresh
                .filter(|r| r.trigger == "sighup" && r.at >= sent)
            else {
                continue;
            };
            if r.outcome == "loaded" {
                let l = s.loaded.unwrap_or_default();
                outln!(
                    "refreshed: generation {}, {} entries, {}{}",
                    l.generation,
                    l.entries,
                    l.digest,
                    match (r.forced, r.unchanged) {
                        (_, true) => " (unchanged: nothing swapped)",
                        (true, false) => " (forced)",
                        (false, false) => "",
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            errln!(
                "wotgate: the refresh was {}: {}",
                r.outcome,
                r.error.unwrap_or_default()
            );
            errln!("wotgate: the gate keeps its current set");
            return Ok(ExitCode::from(exit::ERROR));
        }
        bail!("the daemon (pid {pid}) did not finish a refresh within 600 s")
    }
}
