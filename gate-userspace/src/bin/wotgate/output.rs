//! Standard output and error that never panic: a full disk is an error with a
//! message, a closed pipe ends the command quietly, as Unix tools do.

use std::io::{self, Write};

/// Writing to standard output failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
pub struct OutputError(#[from] pub io::Error);

impl OutputError {
    /// The reader went away (`| head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes formatted text to standard output.
pub fn out(args: std::fmt::Arguments<'_>) -> Result<(), OutputError> {
    io::stdout().lock().write_fmt(args).map_err(OutputError)
}

/// Flushes standard output at the end of a command.
pub fn flush() -> Result<(), OutputError> {
    io::stdout().flush().map_err(OutputError)
}

/// Writes to standard error; a failure there has nowhere to be reported.
pub fn err(args: std::fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}
