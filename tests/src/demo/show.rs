//! How the demo talks: numbered steps with their time, a ticking counter
//! for the long ones on a terminal, colour only on a terminal (plain ANSI).

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// ANSI styles; printed only when the output is a terminal.
#[derive(Clone, Copy)]
pub enum Style {
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "\x1b[1m",
            Style::Dim => "\x1b[2m",
            Style::Green => "\x1b[32m",
            Style::Red => "\x1b[1;31m",
            Style::Yellow => "\x1b[33m",
            Style::Cyan => "\x1b[36m",
        }
    }
}

/// The demo's output: standard output, coloured when `color`.
pub struct Out {
    pub color: bool,
    started: Instant,
    step: usize,
    steps: usize,
}

impl Out {
    /// `color`: whether to use ANSI colours (a terminal, and `NO_COLOR` unset).
    pub fn new(color: bool, steps: usize) -> Out {
        Out {
            color,
            started: Instant::now(),
            step: 0,
            steps,
        }
    }

    /// Whether standard output is a terminal and `NO_COLOR` is unset.
    pub fn terminal() -> bool {
        use std::io::IsTerminal;
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}\x1b[0m", style.code())
        } else {
            text.to_string()
        }
    }

    pub fn line(&self, text: &str) {
        println!("{text}");
    }

    /// A section title.
    pub fn title(&self, text: &str) {
        println!("\n{}", self.paint(Style::Bold, text));
    }

    /// Indented lines of a command's output, dimmed.
    pub fn block(&self, indent: &str, text: &str) {
        for l in text.trim_end().lines() {
            println!("{indent}{}", self.paint(Style::Dim, l));
        }
    }

    /// Starts step `text`: `[k/N] text ...`; finish it with [`Step::done`].
    /// On a terminal a counter of seconds ticks until then.
    pub fn step(&mut self, text: &str) -> Step {
        self.start_step(text, false)
    }

    /// Like [`Out::step`] for a step whose helpers write to standard error
    /// themselves: the head gets a line of its own, the result the next one.
    pub fn noisy_step(&mut self, text: &str) -> Step {
        self.start_step(text, true)
    }

    fn start_step(&mut self, text: &str, own_line: bool) -> Step {
        self.step += 1;
        let head = format!("[{}/{}] {text}", self.step, self.steps);
        if own_line {
            println!("{}", self.paint(Style::Bold, &head));
        } else {
            print!("{} ... ", self.paint(Style::Bold, &head));
        }
        let _ = std::io::stdout().flush();
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = (self.color && !own_line).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || tick(&stop))
        });
        Step {
            started: Instant::now(),
            stop,
            ticker,
            color: self.color,
            open: true,
            indent: if own_line { "      " } else { "" },
        }
    }

    /// A counter of seconds after the text on the current line (on a
    /// terminal), until the returned value is dropped; the caller ends the line.
    pub fn ticker(&self) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = self.color.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || tick(&stop))
        });
        Ticker { stop, thread }
    }

    /// Seconds since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Rewrites `N s` at the end of the line every second until `stop`.
fn tick(stop: &AtomicBool) {
    let t0 = Instant::now();
    let mut shown = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let s = t0.elapsed().as_secs();
        if s > shown && !stop.load(Ordering::Relaxed) {
            // Save the cursor, print the counter, restore: `done` overwrites it.
            print!("\x1b7\x1b[2m{s} s\x1b[0m\x1b8");
            let _ = std::io::stdout().flush();
            shown = s;
        }
    }
}

/// See [`Out::ticker`].
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            // Erase the counter.
            print!("\x1b[K");
        }
    }
}

/// A step in progress.
pub struct Step {
    started: Instant,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    color: bool,
    open: bool,
    /// Printed before the result when the head had a line of its own.
    indent: &'static str,
}

impl Step {
    fn stop(&mut self) {
        self.open = false;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }

    /// Ends the line: `done (DETAIL, 1.2 s)`.
    pub fn done(mut self, detail: &str) {
        self.stop();
        let took = format!("{:.1} s", self.started.elapsed().as_secs_f64());
        let text = if detail.is_empty() {
            format!("done ({took})")
        } else {
            format!("{detail} ({took})")
        };
        let indent = self.indent;
        if self.color {
            println!("\x1b[K{indent}\x1b[32m{text}\x1b[0m");
        } else {
            println!("{indent}{text}");
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A step left by an error or a panic: end the line.
        if self.open {
            self.stop();
            println!("failed");
        }
    }
}
