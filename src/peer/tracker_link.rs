//! The peer's link to the tracker: connect, handshake, register, keep the registration alive,
//! ask for the peer list, and come back with jittered exponential backoff whenever the link
//! drops. A tracker that cannot be reached, goes silent, or refuses our name never stops the
//! peer.
//!
//! [`TrackerLink`] is the link's state and timers as a plain value: it is told what arrived
//! and what time it is, and says what to do ([`Due`], [`Registration`]), so its rules are
//! tested below with a fake clock. The `impl PeerNode` block at the end is the glue: it builds
//! and sends the messages and tells the user.
//!
//! Why keep-alives are `Register`, not `Heartbeat`: the tracker never answers a `Heartbeat`, so
//! a link whose other end vanished (the seeder's address changed, a NAT forgot the mapping)
//! looks exactly like a healthy one and the peer would never come back. A `Register` for the
//! name the connection already holds refreshes it just like a `Heartbeat` (PROTOCOL.md §6.2)
//! and is answered with a small `Registered`, so an unanswered keep-alive is noticed within one
//! interval plus [`ANSWER_TIMEOUT`]. (`ListPeers` would do too, but its answer grows with the
//! swarm: every peer probing with it costs the tracker O(peers²).)

use super::event::{Event, Warning};
use super::node::{ConnectPurpose, PeerNode, Purpose};
use super::peer_table::{Source, ago, parse_addr};
use crate::reactor::ConnId;
use crate::wire::{ErrorCode, Message, PROTOCOL_VERSION, PeerInfo, decode_message};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Keep-alives this many times per TTL, so one lost keep-alive does not expire us.
const HEARTBEATS_PER_TTL: u32 = 3;
/// A tracker that accepted our connection must answer `Hello`, every `Register` (keep-alives
/// included) and every `ListPeers` within this long; one that goes silent is dropped and
/// retried like an unreachable one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before asking again for a name the tracker refused.
const FIRST_NAME_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two requests for a refused name while the tracker's TTL is unknown
/// (we never registered with it): a third of the default TTL of 30 s, like a keep-alive. A
/// stale registration of ours expires within one TTL, so we have the name back at most this
/// long after it is free.
const NAME_RETRY_CAP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        next_keepalive: Instant,
        interval: Duration,
    },
    /// Connected, but the tracker refused our name (a live registration holds it, or it does
    /// not accept it). The connection stays open: the tracker lists peers to unregistered
    /// connections too, and we ask for the name again on it at `retry_at`.
    Refused {
        conn: ConnId,
        retry_at: Instant,
    },
}

/// What a timer tick asks the node to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Open a connection to the tracker.
    Connect,
    /// Send `Register` on this connection: a keep-alive, or asking for a refused name again.
    Register(ConnId),
    /// Drop the link: the tracker owes an answer it did not give in time.
    Lost(String),
}

/// What a `Registered` from the tracker meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// We hold the name now (`again`: we had been registered before, then lost it).
    New { again: bool },
    /// The answer to a keep-alive: nothing changed.
    KeptAlive,
}

pub struct TrackerLink {
    pub addr: SocketAddr,
    pub state: LinkState,
    backoff: Duration,
    /// We said once that we work without a tracker; say it again only after it came back.
    announced_down: bool,
    registered_before: bool,
    /// The keep-alive interval of the last registration: retries never wait longer, so a
    /// tracker that restarts empty has every live peer back within one interval.
    heartbeat: Option<Duration>,
    /// A peer-list request is in flight.
    pub list_in_flight: bool,
    /// The last `Peers` was a sample (the tracker holds more registrations than it listed,
    /// PROTOCOL.md §6.2), so it says who is there but not who is not.
    pub list_was_sample: bool,
    /// A `Register` (first, retry or keep-alive) is in flight.
    register_in_flight: bool,
    /// While the tracker owes an answer (handshake, `Register`, peer list): the tracker must
    /// have answered by then.
    answer_by: Option<Instant>,
    /// Next wait before asking again for a refused name.
    name_backoff: Duration,
    /// We said the tracker refused our name; say it again only after we held it again.
    announced_refusal: bool,
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
            list_was_sample: false,
            register_in_flight: false,
            answer_by: None,
            name_backoff: FIRST_NAME_RETRY,
            announced_refusal: false,
        }
    }

    pub fn conn(&self) -> Option<ConnId> {
        match self.state {
            LinkState::Handshaking { conn }
            | LinkState::Registering { conn }
            | LinkState::Up { conn, .. }
            | LinkState::Refused { conn, .. } => Some(conn),
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

    /// The connection to ask for the peer list on: registered, or past the handshake with our
    /// name refused (a tracker lists peers to any connection past `Hello`).
    pub fn listing(&self) -> Option<ConnId> {
        match self.state {
            LinkState::Up { conn, .. } | LinkState::Refused { conn, .. } => Some(conn),
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        let timer = match self.state {
            LinkState::Down { retry_at } | LinkState::Refused { retry_at, .. } => Some(retry_at),
            LinkState::Up { next_keepalive, .. } => Some(next_keepalive),
            _ => None,
        };
        timer.into_iter().chain(self.answer_by).min()
    }

    /// We lost the tracker (or never reached it) and said so: peers are found and reached
    /// without it until it registers us again.
    pub fn working_without(&self) -> bool {
        self.announced_down
    }

    /// Whether the tracker owes us an answer.
    fn owed(&self) -> bool {
        matches!(self.state, LinkState::Handshaking { .. })
            || self.register_in_flight
            || self.list_in_flight
    }

    /// After an answer: whatever is still owed gets a fresh clock (the tracker answers in
    /// order, so it is alive and the rest is behind what just came).
    fn answered(&mut self, now: Instant) {
        self.answer_by = self.owed().then_some(now + ANSWER_TIMEOUT);
    }

    fn expect_register(&mut self, now: Instant) {
        self.register_in_flight = true;
        self.answer_by.get_or_insert(now + ANSWER_TIMEOUT);
    }

    /// Fires whatever timer is due: a missed answer, a reconnect, a keep-alive, a retry for a
    /// refused name.
    pub fn tick(&mut self, now: Instant) -> Option<Due> {
        if self.owed() {
            // A peer-list request went out since the last tick: its clock starts now.
            let by = *self.answer_by.get_or_insert(now + ANSWER_TIMEOUT);
            if now >= by {
                let why = format!("no answer within {}s", ANSWER_TIMEOUT.as_secs());
                return Some(Due::Lost(why));
            }
        }
        match self.state {
            LinkState::Down { retry_at } if now >= retry_at => {
                self.state = LinkState::Connecting;
                Some(Due::Connect)
            }
            LinkState::Up {
                conn,
                next_keepalive,
                interval,
            } if now >= next_keepalive => {
                self.state = LinkState::Up {
                    conn,
                    next_keepalive: now + interval,
                    interval,
                };
                // One keep-alive in flight is enough: its answer clock is running.
                if self.register_in_flight {
                    return None;
                }
                self.expect_register(now);
                Some(Due::Register(conn))
            }
            LinkState::Refused { conn, retry_at } if now >= retry_at => {
                // The answer (or the answer timeout) comes before this timer fires again.
                self.state = LinkState::Refused {
                    conn,
                    retry_at: now + ANSWER_TIMEOUT,
                };
                self.expect_register(now);
                Some(Due::Register(conn))
            }
            _ => None,
        }
    }

    pub fn connected(&mut self, conn: ConnId, now: Instant) {
        self.state = LinkState::Handshaking { conn };
        self.answer_by = Some(now + ANSWER_TIMEOUT);
    }

    /// The tracker's `Hello` (our version) arrived: returns the connection to send `Register`
    /// on, unless we were not waiting for it.
    pub fn hello_accepted(&mut self, now: Instant) -> Option<ConnId> {
        let LinkState::Handshaking { conn } = self.state else {
            return None;
        };
        self.state = LinkState::Registering { conn };
        self.register_in_flight = true;
        self.answered(now);
        Some(conn)
    }

    /// `Registered` arrived on `conn`. `None`: we were not registering (ignored).
    pub fn registered(
        &mut self,
        conn: ConnId,
        ttl_secs: u64,
        now: Instant,
    ) -> Option<Registration> {
        let was = self.state;
        if !matches!(
            was,
            LinkState::Registering { .. } | LinkState::Up { .. } | LinkState::Refused { .. }
        ) || self.conn() != Some(conn)
        {
            return None;
        }
        let interval = Duration::from_secs(ttl_secs.clamp(1, 3600)) / HEARTBEATS_PER_TTL;
        let next_keepalive = match was {
            // A keep-alive's answer: keep the schedule (a shorter TTL pulls it in).
            LinkState::Up { next_keepalive, .. } => next_keepalive.min(now + interval),
            _ => now + interval,
        };
        self.state = LinkState::Up {
            conn,
            next_keepalive,
            interval,
        };
        self.register_in_flight = false;
        self.answered(now);
        self.backoff = FIRST_RETRY;
        self.name_backoff = FIRST_NAME_RETRY;
        self.heartbeat = Some(interval);
        if matches!(was, LinkState::Up { .. }) {
            return Some(Registration::KeptAlive);
        }
        let again = self.registered_before;
        self.registered_before = true;
        self.announced_down = false;
        self.announced_refusal = false;
        Some(Registration::New { again })
    }

    /// The tracker refused our name (`NameTaken` or `BadName` in answer to a `Register`): we
    /// keep the connection and ask again later, waiting 1 s and doubling up to the cap
    /// ([`Self::name_retry_cap`]). Returns the cap if the user is to be told (the first refusal
    /// since we last held the name).
    pub fn refused(&mut self, now: Instant) -> Option<Duration> {
        let conn = match self.state {
            LinkState::Registering { conn }
            | LinkState::Up { conn, .. }
            | LinkState::Refused { conn, .. } => conn,
            _ => return None,
        };
        let cap = self.name_retry_cap();
        let wait = self.name_backoff.min(cap);
        self.name_backoff = (self.name_backoff * 2).min(cap);
        self.state = LinkState::Refused {
            conn,
            retry_at: now + wait,
        };
        self.register_in_flight = false;
        self.answered(now);
        if self.announced_refusal {
            return None;
        }
        self.announced_refusal = true;
        Some(cap)
    }

    /// Longest wait between two requests for a refused name: one keep-alive interval (a third
    /// of the tracker's TTL) once we know it, else [`NAME_RETRY_CAP`]; at least 1 s.
    fn name_retry_cap(&self) -> Duration {
        self.heartbeat
            .unwrap_or(NAME_RETRY_CAP)
            .max(FIRST_NAME_RETRY)
    }

    /// `NotRegistered`: the tracker forgot us (expired) though the link lives. Returns the
    /// connection to register on again, unless a `Register` is already on its way.
    pub fn not_registered(&mut self, now: Instant) -> Option<ConnId> {
        let LinkState::Up { conn, .. } = self.state else {
            return None;
        };
        if self.register_in_flight {
            return None;
        }
        self.state = LinkState::Registering { conn };
        self.expect_register(now);
        Some(conn)
    }

    /// Whether a `Busy` answers one of our `Register`s (the tracker is full, or our address
    /// holds too many names): the link is dropped and tried again later.
    pub fn busy_for_register(&self) -> bool {
        self.register_in_flight
    }

    /// Our peer-list request was answered.
    pub fn peers_answered(&mut self, now: Instant) {
        self.list_in_flight = false;
        self.answered(now);
    }

    /// The link is gone (or could not be made). Returns how long to wait before connecting
    /// again, and whether to tell the user (the first loss since we were last registered).
    pub fn lost(&mut self, now: Instant) -> (Duration, bool) {
        self.list_in_flight = false;
        self.register_in_flight = false;
        self.answer_by = None;
        let delay = self.next_backoff();
        self.state = LinkState::Down {
            retry_at: now + delay,
        };
        let announce = !self.announced_down;
        self.announced_down = true;
        (delay, announce)
    }

    /// Next retry delay: doubles up to a cap (30 s, or the keep-alive interval once we had
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
        match self.tracker.tick(now) {
            Some(Due::Connect) => {
                let addr = self.tracker.addr;
                self.connect(addr, ConnectPurpose::Tracker);
            }
            Some(Due::Register(conn)) => self.send_register(conn),
            Some(Due::Lost(why)) => self.tracker_lost(&why, now),
            None => {}
        }
    }

    pub(super) fn tracker_connected(&mut self, conn: ConnId, now: Instant) {
        tracing::debug!("connected to tracker {}", self.tracker.addr);
        self.tracker.connected(conn, now);
        self.send_hello(conn);
    }

    pub(super) fn tracker_lost(&mut self, why: &str, now: Instant) {
        if let Some(conn) = self.tracker.conn() {
            self.close(conn);
            self.pending.retain(|_, p| p.conn != conn);
        }
        let (delay, announce) = self.tracker.lost(now);
        tracing::info!(
            "tracker {} lost ({why}); next attempt in {delay:?}",
            self.tracker.addr
        );
        if announce && !self.exiting {
            let event = Event::TrackerUnreachable {
                tracker: self.tracker.addr.to_string(),
                reason: why.to_string(),
            };
            self.ui.event(&event);
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
                if let Some(conn) = self.tracker.hello_accepted(now) {
                    self.send_register(conn);
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
                if let Some(Registration::New { again }) =
                    self.tracker.registered(conn, ttl_secs, now)
                {
                    self.tracker_registered(again);
                }
            }
            Message::Peers { req, peers, total } => {
                if let Some(p) = self.pending.remove(&req)
                    && matches!(p.purpose, Purpose::PeerList)
                {
                    self.tracker.peers_answered(now);
                    self.ready = true;
                    self.merge_tracker_list(peers, total, now);
                    self.op_peer_list_arrived(now);
                    self.downloads_peer_event(now);
                }
            }
            Message::Error { code, message, .. } => self.tracker_error(code, &message, now),
            _ => {}
        }
    }

    /// A complete list is a snapshot of who is registered (entries it lacks are dropped,
    /// §14.2); a sample only adds and refreshes, or every answer would forget the peers the
    /// previous one happened to list.
    fn merge_tracker_list(&mut self, peers: Vec<PeerInfo>, total: Option<u64>, now: Instant) {
        let sample = total.is_some_and(|t| t > peers.len() as u64);
        self.tracker.list_was_sample = sample;
        if !sample {
            self.set_known_peers(peers, now);
            return;
        }
        for p in &peers {
            if let Some(addr) = parse_addr(&p.addr) {
                let seen = ago(now, p.last_seen_ms);
                self.known.offer(&p.name, addr, Source::Tracker, seen, now);
            }
        }
    }

    fn tracker_registered(&mut self, again: bool) {
        let tracker = self.tracker.addr.to_string();
        tracing::debug!("registered with tracker {tracker}");
        self.ui.event(&Event::Registered { tracker, again });
        // Commands start once the first peer list is in (or after a grace period), so a
        // script's first `get PEER FILE` knows PEER.
        if !self.request_peer_list() {
            self.ready = true;
        }
    }

    fn tracker_error(&mut self, code: ErrorCode, message: &str, now: Instant) {
        let text = crate::names::printable(message);
        match code {
            ErrorCode::NameTaken | ErrorCode::BadName => self.tracker_refused_name(message, now),
            ErrorCode::NotRegistered => {
                if let Some(conn) = self.tracker.not_registered(now) {
                    self.send_register(conn);
                }
            }
            // Full, or too many names from our address: try again later, with backoff.
            ErrorCode::Busy if self.tracker.busy_for_register() => {
                self.tracker_lost(&format!("the tracker is busy: {text}"), now);
            }
            _ => {
                let message = message.to_string();
                self.ui.event(&Event::Warning(Warning::Tracker { message }));
            }
        }
    }

    /// The tracker gave our name to someone else (or does not accept it). The peer goes on
    /// without a registration: peers that know it still reach it, and it still gets the peer
    /// list. It says so once and asks for the name again until it has it (a stale registration
    /// of ours expires within the tracker's TTL). `reason` is the tracker's text, unescaped: the
    /// event escapes it for people and keeps it for `--json`.
    fn tracker_refused_name(&mut self, reason: &str, now: Instant) {
        let Some(cap) = self.tracker.refused(now) else {
            let reason = crate::names::printable(reason);
            tracing::debug!("tracker still refuses our name: {reason}");
            return;
        };
        self.ui.event(&Event::NameRefused {
            tracker: self.tracker.addr.to_string(),
            name: self.cfg.name.clone(),
            reason: reason.to_string(),
            retry_secs: cap.as_secs().max(1),
        });
        if !self.request_peer_list() {
            self.ready = true;
        }
    }

    fn send_register(&mut self, conn: ConnId) {
        let req = self.next_request_id();
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
        self.request_peer_list_naming(None)
    }

    /// [`Self::request_peer_list`], asking for `name` by name: a tracker with more peers than
    /// one answer holds lists it first (PROTOCOL.md §6.2), so looking a peer up works whatever
    /// the swarm's size.
    pub(super) fn request_peer_list_naming(&mut self, name: Option<&str>) -> bool {
        let Some(conn) = self.tracker.listing() else {
            return false;
        };
        if !self.tracker.list_in_flight {
            self.tracker.list_in_flight = true;
            let names: Vec<String> = name.into_iter().map(str::to_string).collect();
            self.request(conn, Purpose::PeerList, |req| Message::ListPeers {
                req,
                want: None,
                names,
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn addr() -> SocketAddr {
        "127.0.0.1:7000".parse().unwrap()
    }

    /// A link registered over `conn` at `t0` with a 30 s TTL (keep-alive every 10 s).
    fn registered_link(conn: ConnId, t0: Instant) -> TrackerLink {
        let mut link = TrackerLink::new(addr(), t0);
        assert_eq!(link.tick(t0), Some(Due::Connect));
        link.connected(conn, t0);
        assert_eq!(link.hello_accepted(t0), Some(conn));
        assert_eq!(
            link.registered(conn, 30, t0),
            Some(Registration::New { again: false })
        );
        link
    }

    /// Ticks every 100 ms from `from` until `until`; returns the first thing due, with when.
    fn first_due(link: &mut TrackerLink, from: Instant, until: Instant) -> Option<(Instant, Due)> {
        let mut now = from;
        while now <= until {
            if let Some(due) = link.tick(now) {
                return Some((now, due));
            }
            now += Duration::from_millis(100);
        }
        None
    }

    #[test]
    fn keepalives_are_registers_every_interval_and_their_answers_are_quiet() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = registered_link(c, t0);
        assert_eq!(link.deadline(), Some(t0 + 10 * SEC));
        assert_eq!(link.tick(t0 + 9 * SEC), None);
        assert_eq!(link.tick(t0 + 10 * SEC), Some(Due::Register(c)));
        assert_eq!(
            link.registered(c, 30, t0 + 10 * SEC),
            Some(Registration::KeptAlive)
        );
        assert_eq!(link.up(), Some(c));
        assert_eq!(link.deadline(), Some(t0 + 20 * SEC), "no answer owed");
        assert_eq!(link.tick(t0 + 20 * SEC), Some(Due::Register(c)));
    }

    /// The whole point of issue 11 item 3: a link that went silently dead is noticed within
    /// one keep-alive interval + ANSWER_TIMEOUT of its last answer.
    #[test]
    fn a_silent_link_is_lost_within_one_interval_plus_the_answer_timeout() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = registered_link(c, t0);
        let bound = t0 + 10 * SEC + ANSWER_TIMEOUT;
        let (keepalive, due) = first_due(&mut link, t0, bound).expect("a keep-alive");
        assert_eq!(due, Due::Register(c));
        // No second keep-alive while the first is unanswered, only the loss.
        let (at, due) = first_due(&mut link, keepalive, bound).expect("the link is lost");
        assert!(
            matches!(due, Due::Lost(ref why) if why.contains("no answer")),
            "{due:?}"
        );
        assert_eq!(at, bound);
        let (delay, announce) = link.lost(at);
        assert!(announce);
        assert!(delay >= Duration::from_millis(250) && delay <= Duration::from_millis(500));
        assert_eq!(link.conn(), None);
        assert_eq!(link.tick(at + delay), Some(Due::Connect));
    }

    #[test]
    fn a_refused_name_keeps_the_link_and_is_asked_for_again_with_backoff() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = TrackerLink::new(addr(), t0);
        link.tick(t0);
        link.connected(c, t0);
        link.hello_accepted(t0);
        // Never registered: the TTL is unknown, retries are capped at 10 s.
        assert_eq!(link.refused(t0), Some(NAME_RETRY_CAP));
        assert_eq!(link.conn(), Some(c), "the connection stays open");
        assert_eq!(link.listing(), Some(c), "the peer list is still asked for");
        assert_eq!(link.up(), None);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let (at, due) = first_due(&mut link, now, now + 20 * SEC).expect("a retry");
            assert_eq!(due, Due::Register(c));
            waits.push((at - now).as_secs());
            now = at;
            assert_eq!(link.refused(now), None, "said once");
        }
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            link.registered(c, 30, now),
            Some(Registration::New { again: false })
        );
        assert_eq!(link.up(), Some(c));
    }

    #[test]
    fn an_unanswered_retry_for_a_refused_name_loses_the_link() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = TrackerLink::new(addr(), t0);
        link.tick(t0);
        link.connected(c, t0);
        link.hello_accepted(t0);
        link.refused(t0);
        assert_eq!(link.tick(t0 + SEC), Some(Due::Register(c)));
        let due = first_due(&mut link, t0 + SEC, t0 + SEC + ANSWER_TIMEOUT);
        assert!(matches!(due, Some((_, Due::Lost(_)))), "{due:?}");
    }

    /// Issue 11 item 4: after a stall the keep-alive finds the name taken. The peer is told
    /// once, retries at most one keep-alive interval apart, and is registered "again".
    #[test]
    fn a_name_taken_after_a_stall_is_retried_within_the_ttl_and_comes_back() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = TrackerLink::new(addr(), t0);
        link.tick(t0);
        link.connected(c, t0);
        link.hello_accepted(t0);
        link.registered(c, 6, t0); // keep-alive every 2 s
        let stall_end = t0 + 60 * SEC;
        assert_eq!(link.tick(stall_end), Some(Due::Register(c)));
        assert_eq!(link.refused(stall_end), Some(2 * SEC));
        let mut now = stall_end;
        for want in [1, 2, 2] {
            let (at, _) = first_due(&mut link, now, now + 10 * SEC).expect("a retry");
            assert_eq!((at - now).as_secs(), want);
            now = at;
            link.refused(now);
        }
        link.tick(now + 2 * SEC);
        assert_eq!(
            link.registered(c, 6, now + 2 * SEC),
            Some(Registration::New { again: true })
        );
        // Told again the next time it happens.
        link.tick(now + 4 * SEC);
        assert_eq!(link.refused(now + 4 * SEC), Some(2 * SEC));
    }

    #[test]
    fn a_refusal_on_a_new_link_continues_the_backoff_and_a_registration_resets_it() {
        let (c1, c2, t0) = (ConnId::fake(1), ConnId::fake(2), Instant::now());
        let mut link = registered_link(c1, t0);
        let (delay, _) = link.lost(t0 + SEC);
        assert_eq!(link.tick(t0 + SEC + delay), Some(Due::Connect));
        link.connected(c2, t0 + 2 * SEC);
        link.hello_accepted(t0 + 2 * SEC);
        assert_eq!(link.refused(t0 + 2 * SEC), Some(10 * SEC));
        assert_eq!(link.deadline(), Some(t0 + 3 * SEC));
        assert_eq!(link.tick(t0 + 3 * SEC), Some(Due::Register(c2)));
        assert_eq!(
            link.registered(c2, 30, t0 + 3 * SEC),
            Some(Registration::New { again: true })
        );
        assert_eq!(link.name_backoff, FIRST_NAME_RETRY);
    }

    #[test]
    fn a_registered_out_of_turn_or_on_another_connection_is_ignored() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = TrackerLink::new(addr(), t0);
        link.tick(t0);
        link.connected(c, t0);
        assert_eq!(
            link.registered(c, 30, t0),
            None,
            "before the tracker's Hello"
        );
        link.hello_accepted(t0);
        assert_eq!(link.registered(ConnId::fake(9), 30, t0), None);
        assert!(link.refused(t0 + SEC).is_some());
        assert_eq!(link.not_registered(t0 + SEC), None, "not registered anyway");
    }

    #[test]
    fn not_registered_re_registers_once() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = registered_link(c, t0);
        assert_eq!(link.not_registered(t0 + SEC), Some(c));
        assert_eq!(link.not_registered(t0 + SEC), None);
        assert!(link.busy_for_register());
        assert_eq!(
            link.registered(c, 30, t0 + SEC),
            Some(Registration::New { again: true })
        );
    }

    #[test]
    fn the_peer_list_clock_restarts_behind_an_answer() {
        let (c, t0) = (ConnId::fake(1), Instant::now());
        let mut link = registered_link(c, t0);
        link.list_in_flight = true;
        assert_eq!(link.tick(t0), None);
        assert_eq!(link.deadline(), Some(t0 + ANSWER_TIMEOUT));
        link.peers_answered(t0 + SEC);
        assert_eq!(
            link.deadline(),
            Some(t0 + 10 * SEC),
            "only the keep-alive left"
        );
        // A list owed while a keep-alive is answered keeps a running clock.
        link.list_in_flight = true;
        assert_eq!(link.tick(t0 + 10 * SEC), Some(Due::Register(c)));
        link.registered(c, 30, t0 + 11 * SEC);
        assert_eq!(link.answer_by, Some(t0 + 11 * SEC + ANSWER_TIMEOUT));
    }
}
