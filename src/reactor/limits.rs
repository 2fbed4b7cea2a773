//! Limits the reactor enforces by itself, whatever node it drives: how many connections it
//! accepts (in total and per remote IP), and how long an accepted connection may go without
//! sending one complete frame (the idle timeout). Also the file-descriptor limit the process
//! raises at start-up so those connections can exist at all.
//!
//! Why "complete frame" and not "any byte": a slowloris client that dribbles one byte a second
//! of a frame it never finishes would otherwise hold its connection (and its buffer) forever.
//! The nodes have shorter, protocol-level timers of their own (the handshake timeout); the idle
//! timeout is the backstop that applies to every accepted connection after that.
//!
//! Outgoing connections are not counted or timed here: the node opened them for a command or a
//! download, and those have deadlines of their own (and the tracker link legitimately receives
//! nothing between two peer lists).
//!
//! This file keeps its own table by slab index (the reactor calls [`ConnLimits::track`] and
//! [`ConnLimits::release`] as connections come and go), so the connection struct and its hot
//! read/write paths are untouched.

use crate::wire::{ErrorCode, Message, encode_message};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most accepted connections held at once (`--max-conns`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Most accepted connections from one remote IP (`--max-conns-per-ip`).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// An accepted connection that sends no complete frame for this long is closed
/// (`--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors kept free for everything that is not an accepted connection: stdio, the
/// poll, listeners, the waker, files being served (at most 64 open), partial downloads, state
/// files and outgoing connections.
pub const FD_RESERVE: u64 = 256;

/// The reactor's limits. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Limits {
    /// Lowers `max_connections` so that accepted connections plus [`FD_RESERVE`] fit in
    /// `fd_limit` descriptors: past that, `accept` would fail with EMFILE instead of refusing
    /// politely. Returns the limits actually used.
    pub fn fitted_to(mut self, fd_limit: u64) -> Limits {
        let room = fd_limit.saturating_sub(FD_RESERVE).max(16);
        self.max_connections = self
            .max_connections
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        self
    }
}

static PROCESS_LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

/// Sets the limits every [`super::Reactor`] created later in this process starts with (the
/// command line does this once, before starting the tracker or the peer). Returns false if they
/// were set already.
pub fn set_process_limits(limits: Limits) -> bool {
    PROCESS_LIMITS.set(limits).is_ok()
}

/// The limits a new reactor starts with: those given to [`set_process_limits`], or the defaults.
pub fn process_limits() -> Limits {
    PROCESS_LIMITS.get().cloned().unwrap_or_default()
}

/// Raises the soft limit on open files to the hard limit (soft = hard) and returns the new soft
/// limit. Thousands of connections need thousands of descriptors; many systems start processes
/// with a soft limit of 1024.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}

/// Refuses a just-accepted connection: a FIN without a word, and whatever the client already
/// sent (its first handshake message) is read and dropped so that closing does not turn into a
/// reset. Nothing is said because nothing may be said in the clear, and a handshake for every
/// connection over the cap would spend on a flood what the cap is there to save; the connector
/// sees its handshake cut off and says so (PROTOCOL.md §15). `why` goes to the log.
pub fn refuse(mut stream: mio::net::TcpStream, why: &str) {
    use std::io::Read;
    tracing::debug!("refused a connection: {why}");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = stream.read(&mut sink);
}

/// The frame queued for a connection closed by the idle timeout.
pub fn idle_frame(idle: Duration) -> Vec<u8> {
    encode_message(&Message::Error {
        req: None,
        code: ErrorCode::Other,
        message: idle_text(idle),
    })
}

pub fn idle_text(idle: Duration) -> String {
    format!("no complete frame for {idle:?}; closing")
}

struct Accepted {
    generation: u64,
    ip: IpAddr,
    last_frame: Instant,
}

/// The reactor's bookkeeping for [`Limits`].
///
/// Invariants: `accepted.len()` is the number of accepted connections counted against the
/// limits, `per_ip` holds for each IP the number of entries of `accepted` with that IP (no zero
/// entries), and `next_idle_check` is never later than the earliest idle deadline.
pub struct ConnLimits {
    limits: Limits,
    accepted: HashMap<usize, Accepted>,
    per_ip: HashMap<IpAddr, usize>,
    /// Lower bound of the earliest idle deadline (exact after every sweep).
    next_idle_check: Option<Instant>,
    refused: u64,
}

impl ConnLimits {
    pub fn new(limits: Limits) -> ConnLimits {
        ConnLimits {
            limits,
            accepted: HashMap::new(),
            per_ip: HashMap::new(),
            next_idle_check: None,
            refused: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.next_idle_check = self.earliest_deadline();
    }

    /// Accepted connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Accepted connections counted now.
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// Whether a new connection from `ip` may be accepted; `Err` holds the text for the refusal.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        let total = self.accepted.len();
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let why = if total >= self.limits.max_connections {
            format!(
                "too many connections ({total}, the limit is {}); try again later",
                self.limits.max_connections
            )
        } else if from_ip >= self.limits.max_connections_per_ip {
            format!(
                "too many connections from {ip} ({from_ip}, the limit is {}); try again later",
                self.limits.max_connections_per_ip
            )
        } else {
            return Ok(());
        };
        self.refused += 1;
        Err(why)
    }

    /// Counts an accepted connection (after [`Self::admit`] said yes) and starts its idle clock.
    pub fn track(&mut self, index: usize, generation: u64, ip: IpAddr, now: Instant) {
        self.release(index);
        let ip = ip.to_canonical();
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.accepted.insert(
            index,
            Accepted {
                generation,
                ip,
                last_frame: now,
            },
        );
        if let Some(deadline) = now.checked_add(self.limits.idle_timeout) {
            self.next_idle_check = Some(self.next_idle_check.map_or(deadline, |d| d.min(deadline)));
        }
    }

    /// Forgets the connection in slab slot `index` (accepted or not).
    pub fn release(&mut self, index: usize) {
        if let Some(a) = self.accepted.remove(&index)
            && let Some(n) = self.per_ip.get_mut(&a.ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&a.ip);
            }
        }
    }

    /// A complete frame arrived on `index`: its idle clock starts again.
    pub fn frame_seen(&mut self, index: usize, now: Instant) {
        if let Some(a) = self.accepted.get_mut(&index) {
            a.last_frame = now;
        }
    }

    /// When [`Self::idle_expired`] must run next.
    pub fn next_check(&self) -> Option<Instant> {
        self.next_idle_check
    }

    /// The accepted connections (slab index, generation) idle for the timeout or longer at
    /// `now`. They are not released: the reactor closes them and releases them then.
    pub fn idle_expired(&mut self, now: Instant) -> Vec<(usize, u64)> {
        match self.next_idle_check {
            Some(at) if at <= now => {}
            _ => return Vec::new(),
        }
        let idle = self.limits.idle_timeout;
        let expired: Vec<(usize, u64)> = self
            .accepted
            .iter()
            .filter(|(_, a)| a.last_frame.checked_add(idle).is_some_and(|d| d <= now))
            .map(|(&index, a)| (index, a.generation))
            .collect();
        for (index, _) in &expired {
            // Their deadline passed; keep counting them until the reactor releases them, but
            // never report them twice.
            if let Some(a) = self.accepted.get_mut(index) {
                a.last_frame = now;
            }
        }
        self.next_idle_check = self.earliest_deadline();
        expired
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        let idle = self.limits.idle_timeout;
        self.accepted
            .values()
            .filter_map(|a| a.last_frame.checked_add(idle))
            .min()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let mut counts: HashMap<IpAddr, usize> = HashMap::new();
        for a in self.accepted.values() {
            *counts.entry(a.ip).or_insert(0) += 1;
        }
        assert_eq!(counts, self.per_ip);
        if let (Some(check), Some(earliest)) = (self.next_idle_check, self.earliest_deadline()) {
            assert!(check <= earliest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn limits(total: usize, per_ip: usize, idle_secs: u64) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            idle_timeout: Duration::from_secs(idle_secs),
        }
    }

    #[test]
    fn per_ip_and_total_caps_refuse_new_connections_only() {
        let t0 = Instant::now();
        let mut l = ConnLimits::new(limits(5, 2, 60));
        for i in 0..2 {
            assert!(l.admit(ip(1)).is_ok());
            l.track(i, i as u64, ip(1), t0);
        }
        let why = l.admit(ip(1)).unwrap_err();
        assert!(why.contains("from 10.0.0.1"), "{why}");
        assert!(why.contains("limit is 2"), "{why}");
        // Another address is still welcome; the total cap comes next.
        for i in 2..5 {
            assert!(l.admit(ip(i as u8)).is_ok());
            l.track(i, i as u64, ip(i as u8), t0);
        }
        let why = l.admit(ip(99)).unwrap_err();
        assert!(why.contains("too many connections (5"), "{why}");
        assert_eq!(l.refused(), 2);
        // A slot freed makes room again.
        l.release(0);
        assert!(l.admit(ip(1)).is_ok());
        l.check_invariants();
        // An IPv4-mapped IPv6 address counts as its IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        l.release(1);
        l.track(1, 1, mapped, t0);
        assert!(l.admit(ip(2)).is_err());
        l.check_invariants();
    }

    #[test]
    fn idle_is_measured_from_the_last_complete_frame() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = ConnLimits::new(limits(10, 10, 60));
        l.track(1, 7, ip(1), t0);
        l.track(2, 8, ip(2), t0 + s(10));
        assert_eq!(l.next_check(), Some(t0 + s(60)));
        assert!(l.idle_expired(t0 + s(59)).is_empty());
        l.frame_seen(1, t0 + s(30));
        // The check at 60 finds nobody due and moves to the earliest real deadline (70).
        assert!(l.idle_expired(t0 + s(60)).is_empty());
        assert_eq!(l.next_check(), Some(t0 + s(70)));
        assert_eq!(l.idle_expired(t0 + s(70)), vec![(2, 8)]);
        // Reported once only, even before the reactor releases it.
        assert_eq!(l.next_check(), Some(t0 + s(90)));
        assert!(l.idle_expired(t0 + s(80)).is_empty());
        l.release(2);
        assert_eq!(l.idle_expired(t0 + s(90)), vec![(1, 7)]);
        l.release(1);
        assert_eq!(l.next_check(), Some(t0 + s(150)));
        assert!(l.idle_expired(t0 + s(150)).is_empty());
        assert_eq!(l.next_check(), None);
        l.check_invariants();
    }

    #[test]
    fn fitted_to_leaves_room_for_the_reserve() {
        assert_eq!(
            Limits::default().fitted_to(1024).max_connections,
            1024 - 256
        );
        assert_eq!(Limits::default().fitted_to(1 << 20).max_connections, 4096);
        assert_eq!(Limits::default().fitted_to(64).max_connections, 16);
    }

    #[test]
    fn the_frames_decode() {
        let mut dec = crate::wire::FrameDecoder::new();
        dec.extend(&idle_frame(Duration::from_secs(3)));
        let body = dec.next_frame().unwrap().unwrap();
        assert!(matches!(
            crate::wire::decode_message(body).unwrap(),
            Message::Error {
                code: ErrorCode::Other,
                ..
            }
        ));
    }
}
