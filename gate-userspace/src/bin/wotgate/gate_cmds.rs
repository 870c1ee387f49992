//! Gate subcommands (attach, detach, prefixes, inspect, check, replay).
//! Placeholder while the loader is written; replaced in the next commits.
use std::{path::Path, process::ExitCode};

#[derive(clap::Args)]
pub struct Attach {}
#[derive(clap::Args)]
pub struct Detach {}
#[derive(clap::Subcommand)]
pub enum Prefixes {
    Load,
}
#[derive(clap::Args)]
pub struct Inspect {}
#[derive(clap::Args)]
pub struct Check {}
#[derive(clap::Args)]
pub struct Replay {}

macro_rules! todo_run {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn run(self, _pin: &Path) -> anyhow::Result<ExitCode> {
                anyhow::bail!("not written yet")
            }
        }
    )*};
}
todo_run!(Attach, Detach, Prefixes, Inspect, Check, Replay);
