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

pub mod holds;
mod listing;
mod registry;
pub mod relay;
mod state;

pub use listing::MAX_LISTED;
pub use state::{AGENT, DEFAULT_MAX_PEERS_PER_IP, MAX_PEERS, Tracker, TrackerConfig};

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

/// Runs a tracker on `listen` until SIGINT/SIGTERM; returns the process exit code.
///
/// Prints `tracker listening on ADDR` (the bound address, so port 0 shows the real port) and
/// then one line per notable event, flushing each line so scripts and tests can follow along.
///
/// The idle timeout used is never shorter than `peer_ttl`: a registered peer only sends a
/// heartbeat every `peer_ttl / 3`, and must not be dropped for being quiet between two.
pub fn run(listen: SocketAddr, config: TrackerConfig, state: &Path) -> io::Result<i32> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let (identity, _) = crate::identity::load_or_create(&state.join("identity.key"))
        .map_err(|e| invalid(e.to_string()))?;
    let id = identity.peer_id();
    let holds_path = state.join("holds");
    let holds = load_holds(&holds_path).map_err(invalid)?;
    let mut reactor = crate::reactor::Reactor::new(std::sync::Arc::new(identity))?;
    reactor.set_limits(effective_limits(&config));
    let bound = reactor
        .listen(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    reactor.catch_signals()?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "tracker listening on {bound}")?;
        writeln!(out, "tracker id {id}")?;
        if let Some(r) = &config.relay {
            let rate = r.max_rate.map_or("no rate limit".to_string(), |r| {
                let r = crate::reactor::rate::format_rate(Some(r));
                format!("{r} each way per session")
            });
            writeln!(
                out,
                "relaying: at most {} sessions, {} per peer, {rate}",
                r.max_sessions, r.max_sessions_per_peer
            )?;
        }
        out.flush()?;
    }
    let log = Box::new(|line: &str| {
        // A closed stdout must not stop the tracker: logging is best effort.
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let save = Box::new(move |holds: &holds::Holds, now: std::time::Instant| {
        let text = holds.encode(now, std::time::SystemTime::now());
        let saved =
            crate::peer::state_file::replace_with(&holds_path, |f| f.write_all(text.as_bytes()));
        if let Err(e) = saved {
            tracing::error!("cannot save the name holds: {e}");
        }
    });
    let mut tracker = Tracker::new(config, log).keep_holds(holds, save);
    reactor.run(&mut tracker)
}

/// The holds saved by an earlier run; none yet is none. A damaged file is an error naming the
/// line: starting without it would hand held names to whoever asks first.
fn load_holds(path: &Path) -> Result<holds::Holds, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => holds::Holds::decode(
            &text,
            std::time::Instant::now(),
            std::time::SystemTime::now(),
        )
        .map_err(|why| {
            format!(
                "{}: {why} (fix the line, or move the file away to release every held \
                         name)",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(holds::Holds::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The reactor limits a tracker with `config` runs with (see [`run`]).
pub fn effective_limits(config: &TrackerConfig) -> crate::reactor::Limits {
    let mut limits = config.limits.clone();
    limits.idle_timeout = limits.idle_timeout.max(config.peer_ttl);
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_timeout_is_never_shorter_than_the_ttl() {
        let mut config = TrackerConfig::default();
        config.limits.idle_timeout = Duration::from_secs(2);
        config.peer_ttl = Duration::from_secs(3);
        assert_eq!(
            effective_limits(&config).idle_timeout,
            Duration::from_secs(3)
        );
        config.peer_ttl = Duration::from_secs(1);
        assert_eq!(
            effective_limits(&config).idle_timeout,
            Duration::from_secs(2)
        );
    }
}
