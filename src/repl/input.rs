//! Lines from stdin or a batch file, handed to the reactor through its control channel.
//! stdin is read on its own thread: mio cannot register a regular file or /dev/null.

use crate::reactor::{Control, ControlSender};
use std::io::{BufRead, BufReader, Read};

/// Reads lines on a thread until end of input, then sends `EndOfInput`. Bytes that are not
/// UTF-8 are replaced rather than ending the input. Fails if the system refuses a thread.
pub fn spawn_line_reader(
    input: impl Read + Send + 'static,
    to_loop: ControlSender,
) -> std::io::Result<()> {
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
        .map(drop)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start the input thread: {e}")))
}
