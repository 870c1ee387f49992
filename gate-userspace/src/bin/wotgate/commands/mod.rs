//! One file per command; each parses its flags (clap derive, doc comments as
//! help, examples after) and calls the library. Nothing here decides anything.

pub mod attach;
pub mod check;
pub mod detach;
pub mod inspect;
pub mod plan;
pub mod prefixes;
pub mod purge;
pub mod replay;
pub mod statement_new;
pub mod statement_show;
pub mod statement_sign;
pub mod statement_verify;
pub mod trust_explain;
pub mod trust_list;
mod trust_report;

use std::path::Path;

use anyhow::Context;
use wotgate::source::{local, Named};

/// Reads at most `max + 1` bytes of a file named on the command line.
pub fn read_bounded(path: &Path, max: usize) -> anyhow::Result<Named> {
    local::read_bounded(path, max).with_context(|| format!("reading {}", path.display()))
}
