//! The exit codes of every command, in one table (README and `--help` show it).

use std::process::ExitCode;

/// The command did what was asked and every verdict was positive.
pub const OK: u8 = 0;
/// The command could not do what was asked (unreadable input, kernel error).
pub const ERROR: u8 = 1;
/// The command line was wrong (clap exits with it itself; kept for the table).
#[allow(dead_code)]
pub const USAGE: u8 = 2;
/// The command ran, and a verdict was negative: a statement rejected, a key
/// not trusted, a body malformed, something to fix (`doctor`), the daemon
/// down or the kernel not equal to the plan (`status`).
pub const NEGATIVE: u8 = 3;
/// The command ran, but some of its input could not be used: `replay`
/// skipped records it could not run (each is named on standard error).
pub const PARTIAL: u8 = 4;

/// The table, as shown after `wotgate --help`.
pub const TABLE: &str = "Exit codes:
  0  done; every verdict positive
  1  error: the command could not do what was asked
  2  usage: the command line was wrong
  3  negative verdict: a statement rejected, a key or address not trusted, something to fix (doctor), the daemon down or the kernel not equal to the plan (status)
  4  partial: the command ran, but skipped input it could not use (replay)";

pub fn code(ok: bool) -> ExitCode {
    ExitCode::from(if ok { OK } else { NEGATIVE })
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct_and_tabled() {
        let codes = [
            super::OK,
            super::ERROR,
            super::USAGE,
            super::NEGATIVE,
            super::PARTIAL,
        ];
        for (i, c) in codes.iter().enumerate() {
            assert!(!codes[..i].contains(c));
            assert!(super::TABLE.contains(&format!("  {c}  ")));
        }
    }
}
