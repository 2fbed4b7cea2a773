//! Lines from stdin or a batch file, handed to the reactor through its control channel.
//! stdin is read on its own thread: mio cannot register a regular file or /dev/null.

use crate::reactor::{Control, ControlSender};
use std::io::{BufRead, BufReader, Read};

/// Reads lines on a thread until end of input, then sends `EndOfInput`. Bytes that are not
/// UTF-8 are replaced rather than ending the input.
pub fn spawn_line_reader(input: impl Read + Send + 'static, to_loop: ControlSender) {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            let mut reader = BufReader::new(input);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw);
                        let line = line.trim_end_matches(['\n', '\r']).to_string();
                        if !to_loop.send(Control::Line(line)) {
                            return;
                        }
                    }
                }
            }
            to_loop.send(Control::EndOfInput);
        })
        .expect("spawning the input thread");
}

/// Set by SIGINT (Ctrl-C), next to the reactor's own handler that turns SIGINT and SIGTERM
/// alike into `Control::Shutdown`: the flag tells the two apart, so Ctrl-C in the REPL can stop
/// the foreground command instead of the peer.
static INTERRUPTED: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

/// Starts noting SIGINTs (call once, after the reactor catches its signals).
pub fn catch_interrupts() {
    let flag = INTERRUPTED.get_or_init(Default::default).clone();
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGINT, flag) {
        tracing::warn!("cannot tell Ctrl-C from SIGTERM: {e}");
    }
}

/// Whether a SIGINT arrived since the last call (the `Shutdown` being handled came from Ctrl-C).
pub fn take_interrupt() -> bool {
    INTERRUPTED
        .get()
        .is_some_and(|f| f.swap(false, std::sync::atomic::Ordering::SeqCst))
}
