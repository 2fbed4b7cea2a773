//! The one output path of a peer. It knows whether a prompt or a progress bar is on screen, so a
//! message that arrives mid-download or while the prompt waits is printed above them instead of
//! through them. When stdout is not a terminal there are no bars, no prompt and no escapes.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

const PROMPT: &str = "p2p> ";

pub struct Ui {
    /// stdout is a terminal: draw bars and the prompt.
    tty: bool,
    /// A REPL is reading from the user (not batch or serve).
    interactive: bool,
    prompt_shown: bool,
    bar: Option<ProgressBar>,
}

impl Ui {
    pub fn new(interactive: bool) -> Ui {
        Ui {
            tty: std::io::stdout().is_terminal(),
            interactive,
            prompt_shown: false,
            bar: None,
        }
    }

    /// Switches between REPL and non-interactive output (batch followed by serve).
    pub fn set_interactive(&mut self, interactive: bool) {
        self.interactive = interactive;
    }

    /// One line of normal output (results, events, incoming messages).
    pub fn line(&mut self, text: &str) {
        self.above(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        });
    }

    /// An error line on stderr, `error: ` in front.
    pub fn error(&mut self, text: &str) {
        self.above(|| {
            let _ = std::io::stdout().flush();
            eprintln!("error: {text}");
        });
    }

    /// A warning on stderr (something went wrong but nothing failed).
    pub fn warn(&mut self, text: &str) {
        self.above(|| {
            let _ = std::io::stdout().flush();
            eprintln!("warning: {text}");
        });
    }

    /// Prints above whatever is on screen: hides the prompt line, or suspends the bar.
    fn above(&mut self, print: impl FnOnce()) {
        if let Some(bar) = &self.bar {
            bar.suspend(print);
            return;
        }
        let reprompt = self.prompt_shown && self.tty;
        if reprompt {
            // Carriage return + erase line: the half-typed input stays in the terminal's
            // line buffer; the prompt is drawn again below the new line.
            print!("\r\x1b[K");
        }
        print();
        if reprompt {
            print!("{PROMPT}");
            let _ = std::io::stdout().flush();
        }
    }

    /// Shows the prompt when a REPL on a terminal waits for a command.
    pub fn prompt(&mut self) {
        if self.interactive && self.tty && !self.prompt_shown {
            print!("{PROMPT}");
            let _ = std::io::stdout().flush();
            self.prompt_shown = true;
        }
    }

    /// The user pressed Enter: the prompt line is gone.
    pub fn input_taken(&mut self) {
        self.prompt_shown = false;
    }

    /// Starts a progress bar for a transfer of `total` bytes (only on a terminal).
    pub fn start_progress(&mut self, label: &str, total: u64) {
        self.finish_progress();
        if !self.tty {
            return;
        }
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout())
            .with_style(style)
            .with_message(label.to_string());
        self.bar = Some(bar);
    }

    pub fn set_progress(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Removes the bar; the caller prints the summary line.
    pub fn finish_progress(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
