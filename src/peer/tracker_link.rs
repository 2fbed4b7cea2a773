//! The peer's link to the tracker: connect, handshake, register, heartbeat, ask for the peer
//! list, and come back with jittered exponential backoff whenever the link drops. A tracker that
//! cannot be reached never stops the peer.

use super::node::{ConnectPurpose, PeerNode, Purpose};
use crate::reactor::ConnId;
use crate::wire::{ErrorCode, Message, PROTOCOL_VERSION, decode_message};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Heartbeat this many times per TTL, so one lost heartbeat does not expire us.
const HEARTBEATS_PER_TTL: u32 = 3;
/// A tracker that accepted our connection must answer `Hello`, `Register` and every
/// `ListPeers` within this long; one that goes silent is dropped and retried like an
/// unreachable one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum LinkState {
    Down {
        retry_at: Instant,
    },
    Connecting,
    Handshaking {
        conn: ConnId,
    },
    Registering {
        conn: ConnId,
    },
    Up {
        conn: ConnId,
        next_heartbeat: Instant,
        interval: Duration,
    },
}

pub struct TrackerLink {
    pub addr: SocketAddr,
    pub state: LinkState,
    backoff: Duration,
    /// We said once that we work without a tracker; say it again only after it came back.
    announced_down: bool,
    registered_before: bool,
    /// The heartbeat interval of the last registration: retries never wait longer, so a
    /// tracker that restarts empty has every live peer back within one interval.
    heartbeat: Option<Duration>,
    /// A peer-list request is in flight.
    pub list_in_flight: bool,
    /// While handshaking, registering or waiting for a peer list: the tracker must have
    /// answered by then.
    answer_by: Option<Instant>,
}

impl TrackerLink {
    pub fn new(addr: SocketAddr, now: Instant) -> TrackerLink {
        TrackerLink {
            addr,
            state: LinkState::Down { retry_at: now },
            backoff: FIRST_RETRY,
            announced_down: false,
            registered_before: false,
            heartbeat: None,
            list_in_flight: false,
            answer_by: None,
        }
    }

    pub fn conn(&self) -> Option<ConnId> {
        match self.state {
            LinkState::Handshaking { conn }
            | LinkState::Registering { conn }
            | LinkState::Up { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// The connection, if we are registered over it.
    pub fn up(&self) -> Option<ConnId> {
        match self.state {
            LinkState::Up { conn, .. } => Some(conn),
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            LinkState::Down { retry_at } => Some(retry_at),
            LinkState::Up { next_heartbeat, .. } => Some(
                self.answer_by
                    .map_or(next_heartbeat, |t| t.min(next_heartbeat)),
            ),
            LinkState::Handshaking { .. } | LinkState::Registering { .. } => self.answer_by,
            LinkState::Connecting => None,
        }
    }

    /// We lost the tracker (or never reached it) and said so: peers are found and reached
    /// without it until it registers us again.
    pub fn working_without(&self) -> bool {
        self.announced_down
    }

    /// Next retry delay: doubles up to a cap (30 s, or the heartbeat interval once we had
    /// one), then a random point between half and all of it, so peers that lost the same
    /// tracker do not all come back in the same millisecond and none waits past the cap.
    fn next_backoff(&mut self) -> Duration {
        let cap = self
            .heartbeat
            .map_or(MAX_RETRY, |h| h.min(MAX_RETRY))
            .max(FIRST_RETRY);
        let base = self.backoff.min(cap);
        self.backoff = (self.backoff * 2).min(cap);
        let noise = RandomState::new().hash_one(Instant::now()) % 1000;
        base.mul_f64(0.5 + noise as f64 / 2000.0)
    }
}

impl PeerNode {
    pub(super) fn tracker_tick(&mut self, now: Instant) {
        let owed = match self.tracker.state {
            LinkState::Handshaking { .. } | LinkState::Registering { .. } => true,
            LinkState::Up { .. } => self.tracker.list_in_flight,
            _ => false,
        };
        if owed {
            match self.tracker.answer_by {
                // A peer-list request went out since the last tick: its clock starts now.
                None => self.tracker.answer_by = Some(now + ANSWER_TIMEOUT),
                Some(t) if now >= t => {
                    let why = format!("no answer within {}s", ANSWER_TIMEOUT.as_secs());
                    return self.tracker_lost(&why, now);
                }
                Some(_) => {}
            }
        }
        match self.tracker.state {
            LinkState::Down { retry_at } if now >= retry_at => {
                self.tracker.state = LinkState::Connecting;
                let addr = self.tracker.addr;
                self.connect(addr, ConnectPurpose::Tracker);
            }
            LinkState::Up {
                conn,
                next_heartbeat,
                interval,
            } if now >= next_heartbeat => {
                self.send(conn, &Message::Heartbeat);
                self.tracker.state = LinkState::Up {
                    conn,
                    next_heartbeat: now + interval,
                    interval,
                };
            }
            _ => {}
        }
    }

    pub(super) fn tracker_connected(&mut self, conn: ConnId, now: Instant) {
        tracing::debug!("connected to tracker {}", self.tracker.addr);
        self.tracker.state = LinkState::Handshaking { conn };
        self.tracker.answer_by = Some(now + ANSWER_TIMEOUT);
        self.send_hello(conn);
    }

    pub(super) fn tracker_lost(&mut self, why: &str, now: Instant) {
        if let Some(conn) = self.tracker.conn() {
            self.close(conn);
            self.pending.retain(|_, p| p.conn != conn);
        }
        self.tracker.list_in_flight = false;
        self.tracker.answer_by = None;
        let delay = self.tracker.next_backoff();
        tracing::info!(
            "tracker {} lost ({why}); next attempt in {delay:?}",
            self.tracker.addr
        );
        self.tracker.state = LinkState::Down {
            retry_at: now + delay,
        };
        if !self.tracker.announced_down && !self.exiting {
            self.tracker.announced_down = true;
            let addr = self.tracker.addr;
            self.ui.warn(&format!(
                "tracker {addr} unreachable ({why}); working without a tracker and retrying"
            ));
        }
        self.ready = true;
        // A command waiting for the peer list gets its answer: there is none.
        self.op_peer_list_arrived(now);
        self.downloads_peer_event(now);
    }

    pub(super) fn tracker_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        let msg = match decode_message(body) {
            Ok(msg) => msg,
            Err(e) => {
                self.tracker_lost(&format!("tracker sent {e}"), now);
                return;
            }
        };
        match msg {
            Message::Hello { version, .. } if version == PROTOCOL_VERSION => {
                if matches!(self.tracker.state, LinkState::Handshaking { .. }) {
                    self.register(conn, now);
                }
            }
            Message::Hello { version, .. } => {
                self.tracker_lost(
                    &format!(
                        "tracker speaks protocol version {version}, we speak {PROTOCOL_VERSION}"
                    ),
                    now,
                );
            }
            Message::Registered { ttl_secs, .. } => {
                let interval = Duration::from_secs(ttl_secs.clamp(1, 3600)) / HEARTBEATS_PER_TTL;
                self.tracker.state = LinkState::Up {
                    conn,
                    next_heartbeat: now + interval,
                    interval,
                };
                self.tracker.answer_by = None;
                self.tracker.backoff = FIRST_RETRY;
                self.tracker.heartbeat = Some(interval);
                let tracker = self.tracker.addr.to_string();
                let again = self.tracker.registered_before;
                tracing::debug!("registered with tracker {tracker}, heartbeat every {interval:?}");
                self.ui
                    .event(&crate::repl::Event::Registered { tracker, again });
                self.tracker.registered_before = true;
                self.tracker.announced_down = false;
                // Commands start once the first peer list is in (or after a grace period), so
                // a script's first `get PEER FILE` knows PEER.
                if !self.request_peer_list() {
                    self.ready = true;
                }
            }
            Message::Peers { req, peers } => {
                if let Some(p) = self.pending.remove(&req)
                    && matches!(p.purpose, Purpose::PeerList)
                {
                    self.tracker.list_in_flight = false;
                    self.tracker.answer_by = None;
                    self.ready = true;
                    self.set_known_peers(peers, now);
                    self.op_peer_list_arrived(now);
                    self.downloads_peer_event(now);
                }
            }
            Message::Error { code, message, .. } => match code {
                ErrorCode::NameTaken | ErrorCode::BadName => {
                    let name = self.cfg.name.clone();
                    self.ui.error(&format!(
                        "the tracker refused the name '{name}': {}",
                        crate::names::printable(&message)
                    ));
                    self.exit(1);
                }
                ErrorCode::NotRegistered => self.register(conn, now),
                // Full, or too many names from our address: try again later, with backoff.
                ErrorCode::Busy if matches!(self.tracker.state, LinkState::Registering { .. }) => {
                    let text = crate::names::printable(&message);
                    self.tracker_lost(&format!("the tracker is busy: {text}"), now);
                }
                _ => {
                    let text = crate::names::printable(&message);
                    self.ui.warn(&format!("tracker: {text}"));
                }
            },
            _ => {}
        }
    }

    fn register(&mut self, conn: ConnId, now: Instant) {
        self.tracker.state = LinkState::Registering { conn };
        self.tracker.answer_by = Some(now + ANSWER_TIMEOUT);
        let req = self.next_id();
        let name = self.cfg.name.clone();
        let listen_port = self.listen_port;
        self.send(
            conn,
            &Message::Register {
                req,
                name,
                listen_port,
            },
        );
    }

    /// Asks the tracker for the peer list (once at a time). Returns false if there is no
    /// tracker to ask.
    pub(super) fn request_peer_list(&mut self) -> bool {
        let Some(conn) = self.tracker.up() else {
            return false;
        };
        if !self.tracker.list_in_flight {
            self.tracker.list_in_flight = true;
            self.request(conn, Purpose::PeerList, |req| Message::ListPeers { req });
        }
        true
    }

    /// On exit: tell the tracker we are leaving (closing the connection does it too).
    pub(super) fn tracker_goodbye(&mut self) {
        if let Some(conn) = self.tracker.up() {
            self.send(conn, &Message::Unregister);
        }
    }
}
