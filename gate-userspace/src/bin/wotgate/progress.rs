//! Progress on long work (keyring evaluation, plans, replays), drawn on
//! standard error only when it is a terminal: scripts and logs see nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner with a message, cleared when dropped; nothing off a terminal.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts a spinner saying `msg` when standard error is a terminal.
    pub fn start(msg: &str) -> Spinner {
        Spinner::start_if(
            std::io::stderr().is_terminal(),
            msg,
            "{spinner} {msg} ({elapsed})",
        )
    }

    fn start_if(on_terminal: bool, msg: &str, template: &str) -> Spinner {
        if !on_terminal {
            return Spinner(None);
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        Spinner(Some(pb))
    }

    /// A counter of items done (a replay's packets), shown only when
    /// standard error is a terminal and standard output is not (on a
    /// terminal the output itself shows the progress).
    pub fn counter(msg: &str) -> Spinner {
        Spinner::start_if(
            std::io::stderr().is_terminal() && !std::io::stdout().is_terminal(),
            msg,
            "{spinner} {msg}: {pos} ({elapsed})",
        )
    }

    /// Says what is being done now.
    pub fn set(&self, msg: &str) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg.to_string());
        }
    }

    /// Counts one more item.
    pub fn inc(&self) {
        if let Some(pb) = &self.0 {
            pb.inc(1);
        }
    }

    /// Runs `f` (which writes to standard error) with the spinner hidden.
    pub fn suspend(&self, f: impl FnOnce()) {
        match &self.0 {
            Some(pb) => pb.suspend(f),
            None => f(),
        }
    }

    /// Whether anything is drawn (tests).
    #[cfg(test)]
    fn shown(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_is_drawn_off_a_terminal() {
        // Under cargo test standard error is captured or piped, never the
        // terminal the spinner would draw on.
        let s = super::Spinner::start_if(false, "x", "{msg}");
        assert!(!s.shown());
        s.inc();
        s.set("y");
        assert!(super::Spinner::start_if(true, "z", "{msg}").shown());
    }
}
