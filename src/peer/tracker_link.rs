//! The peer's link to the tracker: connect, handshake, register, keep the registration alive,
//! ask for the peer list, and come back with jittered exponential backoff whenever the link
//! drops. A tracker that cannot be reached, goes silent, or refuses our name never stops the
//! peer.
//!
//! [`TrackerLink`] is a plain value, in the manner of quinn-proto's `Connection`: no socket, no
//! clock, no screen. The node feeds it what happened (`handle_*`, always with the time) and
//! carries out what it asks (`poll_*`); its rules are tested below with fake time through that
//! API alone. The node's side (`tracker_glue.rs`) only routes.
//!
//! # Driving it
//! - Inputs: [`TrackerLink::handle_connected`], [`TrackerLink::handle_connect_failed`],
//!   [`TrackerLink::handle_frame`] (or [`TrackerLink::handle_message`], already decoded),
//!   [`TrackerLink::handle_closed`], [`TrackerLink::handle_timeout`]; and the node's wishes,
//!   [`TrackerLink::request_peer_list`] and [`TrackerLink::goodbye`].
//! - After every input, drain [`TrackerLink::poll_transmit`] until it is empty, then
//!   [`TrackerLink::poll_event`]. Acting on an event may mean new input (a command that was
//!   waiting for the list asks for it again): drain both again until both are empty.
//! - Then [`TrackerLink::poll_timeout`] says when to call `handle_timeout` next. Its timers
//!   ([`Timer`]) live in one table, one slot per kind.
//!
//! Why keep-alives are `Register`, not `Heartbeat`: the tracker never answers a `Heartbeat`, so
//! a link whose other end vanished (the seeder's address changed, a NAT forgot the mapping)
//! looks exactly like a healthy one and the peer would never come back. A `Register` for the
//! name the connection already holds refreshes it just like a `Heartbeat` (PROTOCOL.md §6.2)
//! and is answered with a small `Registered`, so an unanswered keep-alive is noticed within one
//! interval plus [`ANSWER_TIMEOUT`]. (`ListPeers` would do too, but its answer grows with the
//! swarm: every peer probing with it costs the tracker O(peers²).)
//!
//! The link numbers its own requests (`req`): its answers come on its own connection, so they
//! never meet the ids of requests to peers.

use super::jitter::Jitter;
use crate::names::printable;
use crate::reactor::ConnId;
use crate::wire::{ErrorCode, Message, PROTOCOL_VERSION, PeerInfo, decode_message};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Keep-alives this many times per TTL, so one lost keep-alive does not expire us.
const HEARTBEATS_PER_TTL: u32 = 3;
/// A tracker that accepted our connection must answer `Hello`, every `Register` (keep-alives
/// included) and every `ListPeers` within this long; one that goes silent is dropped and
/// retried like an unreachable one.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before asking again for a name the tracker refused.
const FIRST_NAME_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two requests for a refused name while the tracker's TTL is unknown
/// (we never registered with it): a third of the default TTL of 30 s, like a keep-alive. A
/// stale registration of ours expires within one TTL, so we have the name back at most this
/// long after it is free.
const NAME_RETRY_CAP: Duration = Duration::from_secs(10);

/// Where the link stands. The waits of each state are in the timer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection; [`Timer::Reconnect`] says when to try.
    Down,
    Connecting,
    /// Connected: `Hello` and `Register` went out together (and maybe `ListPeers`).
    Registering {
        conn: ConnId,
    },
    /// Registered; a keep-alive goes out every `interval` ([`Timer::KeepAlive`]).
    Up {
        conn: ConnId,
        interval: Duration,
    },
    /// Connected, but the tracker refused our name (a live registration holds it, or it does
    /// not accept it). The connection stays open: the tracker lists peers to unregistered
    /// connections too, and we ask for the name again on it ([`Timer::NameRetry`]).
    Refused {
        conn: ConnId,
    },
}

/// The link's timers: one slot per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// `Down`: connect again.
    Reconnect,
    /// `Up`: send a keep-alive `Register`.
    KeepAlive,
    /// `Refused`: ask for the name again.
    NameRetry,
    /// The tracker owes an answer (handshake, `Register`, peer list) by then.
    Answer,
}

const TIMERS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct TimerTable([Option<Instant>; TIMERS]);

impl TimerTable {
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| now >= at)
    }

    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// What the link asks the node to do on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a connection to the tracker; report it with `handle_connected` or
    /// `handle_connect_failed`.
    Connect(SocketAddr),
    /// Send our `Hello` on this connection (the node knows which listen port to name).
    Hello(ConnId),
    Send(ConnId, Message),
    /// Close the connection: the link gave up on it (it is `Down` already).
    Close(ConnId),
}

/// What happened, for the node to act on and the user to hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// We hold our name now (`again`: we had been registered before, then lost it). The peer
    /// list has been asked for.
    Registered { again: bool },
    /// The tracker refused our name (the first refusal since we last held it): we keep the
    /// link, ask for the name again at most `retry` apart, and have asked for the peer list.
    /// `reason` is the tracker's text, unescaped.
    NameRefused { reason: String, retry: Duration },
    /// The link is gone or could not be made; the next attempt is in `retry_in`. `announce`:
    /// the first loss since we were last registered (the one to tell the user of). No peer
    /// list is coming on it.
    Lost {
        reason: String,
        retry_in: Duration,
        announce: bool,
    },
    /// The answer to our `ListPeers`. `sample`: the tracker holds more registrations than it
    /// listed (PROTOCOL.md §6.2), so it says who is there but not who is not.
    PeerList { peers: Vec<PeerInfo>, sample: bool },
    /// An error from the tracker that changes nothing here (unescaped text).
    TrackerError { code: ErrorCode, message: String },
    /// The tracker relays a peer to us (PROTOCOL.md §18): join `session` on a new connection.
    RelayOffer {
        session: u64,
        from: crate::identity::PeerId,
    },
}

pub struct TrackerLink {
    addr: SocketAddr,
    name: String,
    listen_port: u16,
    /// The external address a router maps to our listen port (`port_map.rs`), sent with every
    /// `Register` so the tracker lists it (PROTOCOL.md §19).
    external: Option<SocketAddr>,
    /// What the last `Register` sent carried as `external`.
    sent_external: Option<SocketAddr>,
    state: State,
    timers: TimerTable,
    backoff: Duration,
    jitter: Jitter,
    /// We said once that we work without a tracker; say it again only after it came back.
    announced_down: bool,
    registered_before: bool,
    /// The keep-alive interval of the last registration: retries never wait longer, so a
    /// tracker that restarts empty has every live peer back within one interval.
    heartbeat: Option<Duration>,
    /// The `req` of our peer-list request in flight.
    list: Option<u64>,
    /// The last `Peers` was a sample.
    list_was_sample: bool,
    /// A `Register` (first, retry or keep-alive) is in flight.
    register_in_flight: bool,
    /// Our `Hello` went out with `Register` behind it; the tracker's `Hello` has not come.
    hello_owed: bool,
    /// Next wait before asking again for a refused name.
    name_backoff: Duration,
    /// We said the tracker refused our name; say it again only after we held it again.
    announced_refusal: bool,
    /// The last request id we used.
    last_req: u64,
    /// The tracker said in its last `Registered` that it relays (PROTOCOL.md §18).
    relays: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
}

impl TrackerLink {
    /// A link to the tracker at `addr` that registers `name` with `listen_port`, and connects
    /// at the first `handle_timeout`. `seed` seeds the reconnect jitter.
    pub fn new(
        addr: SocketAddr,
        name: &str,
        listen_port: u16,
        seed: u64,
        now: Instant,
    ) -> TrackerLink {
        let mut timers = TimerTable::default();
        timers.set(Timer::Reconnect, now);
        TrackerLink {
            addr,
            name: name.to_string(),
            listen_port,
            external: None,
            sent_external: None,
            state: State::Down,
            timers,
            backoff: FIRST_RETRY,
            jitter: Jitter::new(seed),
            announced_down: false,
            registered_before: false,
            heartbeat: None,
            list: None,
            list_was_sample: false,
            register_in_flight: false,
            hello_owed: false,
            name_backoff: FIRST_NAME_RETRY,
            announced_refusal: false,
            last_req: 0,
            relays: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The link's connection, once connected.
    /// Whether the tracker relays, as far as we know now (registered with it, and it said so).
    pub fn relays(&self) -> bool {
        self.relays && self.up().is_some()
    }

    pub fn conn(&self) -> Option<ConnId> {
        match self.state {
            State::Registering { conn } | State::Up { conn, .. } | State::Refused { conn } => {
                Some(conn)
            }
            State::Down | State::Connecting => None,
        }
    }

    /// The connection, if we are registered over it.
    pub fn up(&self) -> Option<ConnId> {
        match self.state {
            State::Up { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// The connection to ask for the peer list on: registered, or past the handshake with our
    /// name refused (a tracker lists peers to any connection past `Hello`).
    pub fn listing(&self) -> Option<ConnId> {
        match self.state {
            // While registering too: `ListPeers` needs no registration, and right behind
            // `Register` it saves a round trip; the tracker answers both in order.
            State::Up { conn, .. } | State::Refused { conn } | State::Registering { conn } => {
                Some(conn)
            }
            _ => None,
        }
    }

    /// We lost the tracker (or never reached it) and said so: peers are found and reached
    /// without it until it registers us again.
    pub fn working_without(&self) -> bool {
        self.announced_down
    }

    /// A peer-list request is in flight.
    pub fn list_in_flight(&self) -> bool {
        self.list.is_some()
    }

    /// We are registered and the last peer list named everyone registered (not a sample).
    pub fn list_is_complete(&self) -> bool {
        self.up().is_some() && !self.list_was_sample
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Fires whatever timer is due: a missed answer, a reconnect, a keep-alive, a retry for a
    /// refused name.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.owed() {
            // A peer-list request went out since the last call: its clock starts now.
            let by = self
                .timers
                .get(Timer::Answer)
                .unwrap_or(now + ANSWER_TIMEOUT);
            self.timers.set(Timer::Answer, by);
            if now >= by {
                let why = format!("no answer within {}s", ANSWER_TIMEOUT.as_secs());
                return self.lose(why, now);
            }
        }
        match self.state {
            State::Down if self.timers.expired(Timer::Reconnect, now) => {
                self.timers.stop(Timer::Reconnect);
                self.state = State::Connecting;
                self.transmits.push_back(Transmit::Connect(self.addr));
            }
            State::Up { conn, interval } if self.timers.expired(Timer::KeepAlive, now) => {
                self.timers.set(Timer::KeepAlive, now + interval);
                // One keep-alive in flight is enough: its answer clock is running.
                if !self.register_in_flight {
                    self.send_register(conn, now);
                }
            }
            State::Refused { conn } if self.timers.expired(Timer::NameRetry, now) => {
                // The answer (or the answer timeout) comes before this timer is set again.
                self.timers.stop(Timer::NameRetry);
                self.send_register(conn, now);
            }
            _ => {}
        }
    }

    /// The connection asked for with [`Transmit::Connect`] is open.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        tracing::debug!("connected to tracker {}", self.addr);
        self.timers.set(Timer::Answer, now + ANSWER_TIMEOUT);
        self.transmits.push_back(Transmit::Hello(conn));
        // `Register` right behind `Hello`, without waiting for the tracker's: it handles the
        // frames of a connection in order, so one round trip fewer (PROTOCOL.md §6.1). A
        // tracker that refuses our `Hello` closes the connection and ignores the rest.
        self.state = State::Registering { conn };
        self.hello_owed = true;
        self.send_register(conn, now);
        // And the peer list right behind (it needs no registration): commands wait for it.
        self.request_peer_list(None);
    }

    /// The connection asked for could not be made.
    pub fn handle_connect_failed(&mut self, why: &str, now: Instant) {
        self.lose(why.to_string(), now);
    }

    /// A connection closed; ignored unless it is the link's.
    pub fn handle_closed(&mut self, conn: ConnId, why: &str, now: Instant) {
        if self.conn() == Some(conn) {
            // Closed already: nothing to ask the node to close.
            self.state = State::Down;
            self.lose(why.to_string(), now);
        }
    }

    /// A frame arrived on the link's connection (ignored on any other).
    pub fn handle_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        if self.conn() != Some(conn) {
            return;
        }
        match decode_message(body) {
            Ok(msg) => self.handle_message(conn, msg, now),
            Err(e) => self.lose(format!("tracker sent {e}"), now),
        }
    }

    /// A message arrived on the link's connection (ignored on any other).
    pub fn handle_message(&mut self, conn: ConnId, msg: Message, now: Instant) {
        if self.conn() != Some(conn) {
            return;
        }
        match msg {
            Message::Hello { version, .. } if version == PROTOCOL_VERSION => {
                self.hello_accepted(now)
            }
            Message::Hello { version, .. } => self.lose(
                format!("tracker speaks protocol version {version}, we speak {PROTOCOL_VERSION}"),
                now,
            ),
            Message::Registered {
                ttl_secs, relay, ..
            } => {
                self.relays = relay;
                self.registered(conn, ttl_secs, now)
            }
            Message::RelayOffer { session, from } => {
                self.events
                    .push_back(LinkEvent::RelayOffer { session, from });
            }
            Message::Peers { req, peers, total } if self.list == Some(req) => {
                self.list = None;
                self.answered(now);
                let sample = total.is_some_and(|t| t > peers.len() as u64);
                self.list_was_sample = sample;
                self.events.push_back(LinkEvent::PeerList { peers, sample });
            }
            Message::Error { code, message, .. } => self.error(code, message, now),
            _ => {}
        }
    }

    /// Asks the tracker for the peer list (one request at a time), naming `name` if given: a
    /// tracker with more peers than one answer holds lists it first (PROTOCOL.md §6.2), so
    /// looking a peer up works whatever the swarm's size. False if there is no tracker to ask.
    /// The answer's clock starts at the next `handle_timeout`.
    pub fn request_peer_list(&mut self, name: Option<&str>) -> bool {
        let Some(conn) = self.listing() else {
            return false;
        };
        if self.list.is_none() {
            let req = self.next_req();
            self.list = Some(req);
            let names = name.into_iter().map(str::to_string).collect();
            let msg = Message::ListPeers {
                req,
                want: None,
                names,
            };
            self.transmits.push_back(Transmit::Send(conn, msg));
        }
        true
    }

    /// On exit: tell the tracker we are leaving (closing the connection does it too).
    /// The router now maps `external` to our listen port (or nothing). A registered link
    /// registers again at once (or as soon as the `Register` on its way is answered), so the
    /// tracker lists the new address without waiting for the next keep-alive.
    pub fn set_external(&mut self, external: Option<SocketAddr>, now: Instant) {
        if self.external == external {
            return;
        }
        self.external = external;
        if let State::Up { conn, .. } = self.state
            && !self.register_in_flight
        {
            self.send_register(conn, now);
        }
    }

    pub fn goodbye(&mut self) {
        if let Some(conn) = self.up() {
            self.transmits
                .push_back(Transmit::Send(conn, Message::Unregister));
        }
    }

    fn next_req(&mut self) -> u64 {
        self.last_req += 1;
        self.last_req
    }

    fn send_register(&mut self, conn: ConnId, now: Instant) {
        self.register_in_flight = true;
        if self.timers.get(Timer::Answer).is_none() {
            self.timers.set(Timer::Answer, now + ANSWER_TIMEOUT);
        }
        let msg = Message::Register {
            req: self.next_req(),
            name: self.name.clone(),
            listen_port: self.listen_port,
            external: self.external.map(|a| a.to_string()),
        };
        self.sent_external = self.external;
        self.transmits.push_back(Transmit::Send(conn, msg));
    }

    /// Whether the tracker owes us an answer.
    fn owed(&self) -> bool {
        self.hello_owed || self.register_in_flight || self.list.is_some()
    }

    /// After an answer: whatever is still owed gets a fresh clock (the tracker answers in
    /// order, so it is alive and the rest is behind what just came).
    fn answered(&mut self, now: Instant) {
        match self.owed() {
            true => self.timers.set(Timer::Answer, now + ANSWER_TIMEOUT),
            false => self.timers.stop(Timer::Answer),
        }
    }

    /// The tracker's `Hello` (our version): register, unless we were not waiting for it.
    fn hello_accepted(&mut self, now: Instant) {
        if matches!(self.state, State::Registering { .. }) && self.hello_owed {
            self.hello_owed = false;
            self.answered(now);
        }
    }

    /// `Registered` arrived on `conn`: ignored unless we were registering.
    fn registered(&mut self, conn: ConnId, ttl_secs: u64, now: Instant) {
        let was = self.state;
        // Before the tracker's `Hello`, an answer is out of turn (PROTOCOL.md §5).
        if self.hello_owed
            || !matches!(
                was,
                State::Registering { .. } | State::Up { .. } | State::Refused { .. }
            )
        {
            return;
        }
        let interval = Duration::from_secs(ttl_secs.clamp(1, 3600)) / HEARTBEATS_PER_TTL;
        let next_keepalive = match (was, self.timers.get(Timer::KeepAlive)) {
            // A keep-alive's answer: keep the schedule (a shorter TTL pulls it in).
            (State::Up { .. }, Some(at)) => at.min(now + interval),
            _ => now + interval,
        };
        self.state = State::Up { conn, interval };
        self.timers.set(Timer::KeepAlive, next_keepalive);
        if self.sent_external != self.external {
            // The mapping changed while this `Register` was on its way: register again now.
            self.timers.set(Timer::KeepAlive, now);
        }
        self.timers.stop(Timer::NameRetry);
        self.register_in_flight = false;
        self.answered(now);
        self.backoff = FIRST_RETRY;
        self.name_backoff = FIRST_NAME_RETRY;
        self.heartbeat = Some(interval);
        if matches!(was, State::Up { .. }) {
            return; // the answer to a keep-alive: nothing changed
        }
        tracing::debug!("registered with tracker {}", self.addr);
        let again = self.registered_before;
        self.registered_before = true;
        self.announced_down = false;
        self.announced_refusal = false;
        self.events.push_back(LinkEvent::Registered { again });
        // Commands start once the first peer list is in (or after a grace period), so a
        // script's first `get PEER FILE` knows PEER. Usually it went out right behind
        // `Register` and is on its way (then this asks nothing).
        self.request_peer_list(None);
    }

    fn error(&mut self, code: ErrorCode, message: String, now: Instant) {
        match code {
            ErrorCode::NameTaken | ErrorCode::BadName => self.refused(message, now),
            ErrorCode::NotRegistered => self.not_registered(now),
            // Full, or too many names from our address: try again later, with backoff.
            ErrorCode::Busy if self.register_in_flight => {
                self.lose(format!("the tracker is busy: {}", printable(&message)), now)
            }
            _ => self
                .events
                .push_back(LinkEvent::TrackerError { code, message }),
        }
    }

    /// The tracker refused our name (`NameTaken` or `BadName` in answer to a `Register`). The
    /// peer goes on without a registration: peers that know it still reach it, and it still
    /// gets the peer list. We keep the connection and ask for the name again later, waiting
    /// 1 s and doubling up to the cap ([`Self::name_retry_cap`]); said once per refusal since
    /// we last held the name (a stale registration of ours expires within the tracker's TTL).
    fn refused(&mut self, reason: String, now: Instant) {
        let conn = match self.state {
            State::Registering { conn } | State::Up { conn, .. } | State::Refused { conn } => conn,
            _ => return,
        };
        let cap = self.name_retry_cap();
        let wait = self.name_backoff.min(cap);
        self.name_backoff = (self.name_backoff * 2).min(cap);
        self.state = State::Refused { conn };
        self.timers.stop(Timer::KeepAlive);
        self.timers.set(Timer::NameRetry, now + wait);
        self.register_in_flight = false;
        self.answered(now);
        if self.announced_refusal {
            tracing::debug!("tracker still refuses our name: {}", printable(&reason));
            return;
        }
        self.announced_refusal = true;
        self.events
            .push_back(LinkEvent::NameRefused { reason, retry: cap });
        self.request_peer_list(None);
    }

    /// Longest wait between two requests for a refused name: one keep-alive interval (a third
    /// of the tracker's TTL) once we know it, else [`NAME_RETRY_CAP`]; at least 1 s.
    fn name_retry_cap(&self) -> Duration {
        self.heartbeat
            .unwrap_or(NAME_RETRY_CAP)
            .max(FIRST_NAME_RETRY)
    }

    /// `NotRegistered`: the tracker forgot us (expired) though the link lives. Register again,
    /// unless a `Register` is already on its way.
    fn not_registered(&mut self, now: Instant) {
        let State::Up { conn, .. } = self.state else {
            return;
        };
        if self.register_in_flight {
            return;
        }
        self.state = State::Registering { conn };
        self.timers.stop(Timer::KeepAlive);
        self.send_register(conn, now);
    }

    /// The link is gone (or could not be made): close what is left of it, wait, connect again.
    fn lose(&mut self, reason: String, now: Instant) {
        if let Some(conn) = self.conn() {
            self.transmits.push_back(Transmit::Close(conn));
        }
        self.list = None;
        self.register_in_flight = false;
        self.hello_owed = false;
        self.timers = TimerTable::default();
        let delay = self.next_backoff();
        self.state = State::Down;
        self.timers.set(Timer::Reconnect, now + delay);
        tracing::info!(
            "tracker {} lost ({reason}); next attempt in {delay:?}",
            self.addr
        );
        let announce = !self.announced_down;
        self.announced_down = true;
        self.events.push_back(LinkEvent::Lost {
            reason,
            retry_in: delay,
            announce,
        });
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
        let noise = self.jitter.per_mille();
        base.mul_f64(0.5 + noise as f64 / 2000.0)
    }
}

#[cfg(test)]
mod tests;
