//! Logs: `tracing` events written to stderr through [`super::screen`], so a log line never tears
//! a progress bar or the prompt. `RUST_LOG` (e.g. `RUST_LOG=p2p=debug`) chooses what is logged;
//! without it `-q` logs errors only, the default is warnings, `-v` info, `-vv` debug, `-vvv`
//! trace.

use super::screen::{self, Stream};
use std::io;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter for `quiet` / `verbose` when `RUST_LOG` is not set.
pub fn default_filter(quiet: bool, verbose: u8) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    }
}

/// Installs the process-wide subscriber (once; later calls do nothing).
pub fn init(quiet: bool, verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(spec.trim())
            .unwrap_or_else(|_| EnvFilter::new(default_filter(quiet, verbose))),
        _ => EnvFilter::new(default_filter(quiet, verbose)),
    };
    let ansi = Stream::Err.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ScreenWriter)
        .with_ansi(ansi)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_target(true)
        .try_init();
}

/// Hands each formatted log event to the screen as one line on stderr.
#[derive(Clone, Copy)]
struct ScreenWriter;

impl<'a> MakeWriter<'a> for ScreenWriter {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::new())
    }
}

/// One event's text; printed when the formatter drops it.
struct LineBuffer(Vec<u8>);

impl io::Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            screen::write_line(Stream::Err, text);
        }
    }
}
