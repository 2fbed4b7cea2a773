//! The terminal, shared by everything in the process that prints: the peers' [`super::Ui`]s
//! (three of them in `p2p demo`), the log lines of `tracing` (any thread), and the line editor
//! on the input thread. Every line goes through [`write_line`], which knows what is on screen:
//!
//! - a progress bar: the line is printed above it (`ProgressBar::suspend`, which also works when
//!   the bar is hidden; `println` would drop the text then);
//! - the line editor reading (rustyline): the line goes to its `ExternalPrinter`, which prints
//!   it above the prompt and redraws the prompt with the half-typed text;
//! - a plain prompt (no editor): the prompt line is erased, the line printed, the prompt drawn
//!   again (the typed text stays in the terminal's own line buffer).
//!
//! The editor's printer can block (rustyline hands it one message at a time), so it runs on a
//! thread of its own and nobody that holds the lock here ever waits for it.

use indicatif::ProgressBar;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub const PROMPT: &str = "p2p> ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn is_terminal(self) -> bool {
        static TTY: OnceLock<(bool, bool)> = OnceLock::new();
        let (out, err) = *TTY.get_or_init(|| {
            (
                std::io::stdout().is_terminal(),
                std::io::stderr().is_terminal(),
            )
        });
        match self {
            Stream::Out => out,
            Stream::Err => err,
        }
    }
}

enum ToPrinter {
    Line(String),
    Flush(Sender<()>),
}

#[derive(Default)]
struct Screen {
    bar: Option<ProgressBar>,
    /// A plain prompt (no editor) is the last thing on the terminal.
    plain_prompt: bool,
    /// The line editor is inside `readline`: print through its printer.
    editor_reading: bool,
    printer: Option<Sender<ToPrinter>>,
    /// Terminal settings from before the editor changed them, restored on exit.
    saved_termios: Option<libc::termios>,
}

fn screen() -> MutexGuard<'static, Screen> {
    static SCREEN: OnceLock<Mutex<Screen>> = OnceLock::new();
    let m = SCREEN.get_or_init(|| Mutex::new(Screen::default()));
    // A panic while printing must not silence everything after it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_raw(stream: Stream, text: &str) {
    match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        Stream::Err => {
            let _ = std::io::stdout().flush();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
            let _ = err.flush();
        }
    }
}

/// Prints one line (or several, separated by `\n`) above whatever is on screen.
pub fn write_line(stream: Stream, text: &str) {
    let s = screen();
    if let Some(bar) = &s.bar {
        bar.suspend(|| write_raw(stream, text));
        return;
    }
    if s.editor_reading
        && stream.is_terminal()
        && let Some(printer) = &s.printer
        && printer.send(ToPrinter::Line(text.to_string())).is_ok()
    {
        return;
    }
    let reprompt = s.plain_prompt && Stream::Out.is_terminal();
    if reprompt {
        // Carriage return + erase line: the half-typed input stays in the terminal's line
        // buffer; the prompt is drawn again below the new line.
        print!("\r\x1b[K");
    }
    write_raw(stream, text);
    if reprompt {
        print!("{PROMPT}");
        let _ = std::io::stdout().flush();
    }
}

/// Shows the bar (replacing any other; the caller finishes the old one).
pub fn set_bar(bar: Option<ProgressBar>) {
    screen().bar = bar;
}

/// Draws the plain prompt (no editor) and remembers that it is on screen.
pub fn show_plain_prompt() {
    let mut s = screen();
    if !s.plain_prompt {
        print!("{PROMPT}");
        let _ = std::io::stdout().flush();
        s.plain_prompt = true;
    }
}

/// The user pressed Enter: the plain prompt line is gone.
pub fn plain_prompt_taken() {
    screen().plain_prompt = false;
}

/// Hands lines printed while the editor reads to its printer, on a thread of its own.
pub fn install_editor_printer(mut printer: impl rustyline::ExternalPrinter + Send + 'static) {
    let (tx, rx) = mpsc::channel::<ToPrinter>();
    let spawned = std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            for msg in rx {
                match msg {
                    ToPrinter::Line(line) => {
                        if printer.print(line.clone()).is_err() {
                            write_raw(Stream::Out, &line);
                        }
                    }
                    ToPrinter::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    if spawned.is_ok() {
        let mut s = screen();
        s.printer = Some(tx);
        s.saved_termios = saved_termios();
        if let Some(t) = s.saved_termios {
            no_echo_between_prompts(t);
        }
    }
}

/// Keys typed while a command runs are not echoed: the terminal would print them (and `^C`)
/// after the progress bar, which indicatif leaves with the cursor at the right edge, so they
/// would land on a line of their own and the bar could not be cleared. They are not lost:
/// rustyline reads them at the next prompt (it sets its own raw mode there and puts this mode
/// back after). Ctrl-C still raises SIGINT.
fn no_echo_between_prompts(mut t: libc::termios) {
    t.c_lflag &= !(libc::ECHO | libc::ECHOCTL);
    // SAFETY: tcsetattr on fd 0 with a termios read from the same fd by tcgetattr.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &t);
    }
}

/// The editor enters (`true`) or leaves `readline`.
pub fn set_editor_reading(reading: bool) {
    screen().editor_reading = reading;
}

/// Waits (briefly) until lines handed to the editor's printer are out, and puts the terminal
/// back the way it was if the editor was still reading: called before the process exits.
pub fn finish() {
    let (printer, termios) = {
        let mut s = screen();
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        s.editor_reading = false;
        (s.printer.take(), s.saved_termios.take())
    };
    if let Some(printer) = printer {
        let (tx, rx) = mpsc::channel();
        if printer.send(ToPrinter::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_millis(500));
        }
    }
    if let Some(t) = termios {
        // SAFETY: tcsetattr on fd 0 with a termios read from the same fd by tcgetattr.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
}

fn saved_termios() -> Option<libc::termios> {
    // SAFETY: tcgetattr fills the zeroed struct; its return value says whether it did.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(0, &mut t) == 0).then_some(t)
    }
}
