//! The tracker: helps peers find each other. It holds no files and moves no file data.
//!
//! Peers connect, say `Hello`, `Register` a name with the port they accept peer connections on,
//! `Heartbeat` to stay listed, and ask for `ListPeers`. The address the tracker lists for a peer
//! is the IP its connection comes from plus the announced port: a peer cannot register someone
//! else's host. A name belongs to one live connection at a time; it is freed when that
//! connection unregisters, closes, or stays silent for longer than the time to live.
//!
//! [`Tracker`] is the whole protocol as a sans-IO state machine (a [`crate::reactor::Driver`]):
//! it takes frames, closes and timer ticks with the current time and returns actions, so every
//! rule is tested without sockets or a clock (tests at the bottom of `state.rs`).
//! [`run`] is the glue that puts it on a real reactor.

mod registry;
mod state;

pub use state::{AGENT, MAX_PEERS, Tracker, TrackerConfig};

use std::io::{self, Write};
use std::net::SocketAddr;

/// Runs a tracker on `listen` until SIGINT/SIGTERM; returns the process exit code.
///
/// Prints `tracker listening on ADDR` (the bound address, so port 0 shows the real port) and
/// then one line per notable event, flushing each line so scripts and tests can follow along.
pub fn run(listen: SocketAddr, config: TrackerConfig) -> io::Result<i32> {
    let mut reactor = crate::reactor::Reactor::new()?;
    let bound = reactor.listen(listen)?;
    reactor.catch_signals()?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "tracker listening on {bound}")?;
        out.flush()?;
    }
    let log = Box::new(|line: &str| {
        // A closed stdout must not stop the tracker: logging is best effort.
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let mut tracker = Tracker::new(config, log);
    reactor.run(&mut tracker)
}
