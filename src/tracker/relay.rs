//! The relay's sessions (`p2p tracker --relay`, PROTOCOL.md §18), as plain values: who asked
//! for whom, which offers wait for their target to join (and until when), which sessions are
//! spliced, and the limits. No sockets and no clock: the tracker feeds it decoded requests and
//! the time, and carries out what it answers (`state.rs`); the reactor does the splicing.
//!
//! A session: the opener sends `RelayOpen{peer}` on a connection of its own; the target, found
//! by the key it registered with, gets `RelayOffer{session, from}` over its registration's
//! connection and joins on a new connection with `RelayJoin{session}`, whose handshake must
//! prove the target's key (an offer is no ticket for anyone else). Then both get `RelayStart`
//! and the two connections are spliced. An offer not joined within the join timeout fails the
//! opener with `RelayTimeout`.

use crate::identity::PeerId;
use crate::reactor::ConnId;
use crate::wire::ErrorCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long an offer waits for its target to join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Sessions at once, waiting or spliced (`--relay-max-sessions`).
    pub max_sessions: usize,
    /// Sessions one key may be part of at once, either side (`--relay-max-sessions-per-peer`).
    pub max_sessions_per_peer: usize,
    /// Bytes a second each way per session (`--relay-max-rate`); `None`: unlimited.
    pub max_rate: Option<u64>,
    pub join_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_sessions: 64,
            max_sessions_per_peer: 4,
            max_rate: None,
            join_timeout: JOIN_TIMEOUT,
        }
    }
}

/// A refusal: the `Error` the tracker sends (then it closes that connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// An offer waiting for its target.
#[derive(Clone, Debug)]
struct Waiting {
    opener: ConnId,
    /// The `req` of its `RelayOpen`, for the answer.
    req: u64,
    opener_key: PeerId,
    target: PeerId,
    /// Where the opener punches from, if it asked to punch (`RelayOpen.punch`, §18.8).
    opener_punch: Option<SocketAddr>,
    deadline: Instant,
}

/// A session whose two connections are spliced.
#[derive(Clone, Debug)]
struct Spliced {
    conns: [ConnId; 2],
    keys: [PeerId; 2],
}

/// Two connections to splice: the tracker sends each `RelayStart` naming the other's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub session: u64,
    pub opener: ConnId,
    pub req: u64,
    pub opener_key: PeerId,
    pub joiner: ConnId,
    pub joiner_key: PeerId,
    /// When both sides asked to punch (PROTOCOL.md §18.8): where each punches from, the
    /// opener's first. Each side's `RelayStart` names the other's.
    pub punch: Option<(SocketAddr, SocketAddr)>,
}

/// An offer nobody joined in time: the opener gets `RelayTimeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub session: u64,
    pub opener: ConnId,
    pub req: u64,
    pub target: PeerId,
}

pub struct Relay {
    config: RelayConfig,
    next_session: u64,
    waiting: HashMap<u64, Waiting>,
    spliced: HashMap<u64, Spliced>,
    /// Every connection in a session (waiting opener, or either spliced side) → the session.
    by_conn: HashMap<ConnId, u64>,
}

impl Relay {
    pub fn new(config: RelayConfig) -> Relay {
        Relay {
            config,
            next_session: 1,
            waiting: HashMap::new(),
            spliced: HashMap::new(),
            by_conn: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Sessions waiting or spliced.
    pub fn sessions(&self) -> usize {
        self.waiting.len() + self.spliced.len()
    }

    /// Whether `conn` belongs to a session (it then carries no other request).
    pub fn holds(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    fn sessions_of(&self, key: PeerId) -> usize {
        let waiting = self
            .waiting
            .values()
            .filter(|w| w.opener_key == key || w.target == key);
        let spliced = self.spliced.values().filter(|s| s.keys.contains(&key));
        waiting.count() + spliced.count()
    }

    /// `RelayOpen{peer: target}` from `conn` (which proved `opener_key`); `target_conn` is the
    /// connection the target is registered on, if it is. `Ok`: the session, to offer to the
    /// target on `target_conn`.
    pub fn open(
        &mut self,
        conn: ConnId,
        req: u64,
        opener_key: PeerId,
        target: PeerId,
        target_conn: Option<ConnId>,
        now: Instant,
    ) -> Result<u64, Refusal> {
        if self.holds(conn) {
            return Err(refuse(
                ErrorCode::UnexpectedMessage,
                "this connection is in a relayed session already",
            ));
        }
        if target == opener_key {
            return Err(refuse(ErrorCode::Other, "a peer cannot relay to itself"));
        }
        if target_conn.is_none() {
            return Err(refuse(
                ErrorCode::NoSuchPeer,
                format!("no peer with id {target} is registered here"),
            ));
        }
        let max = self.config.max_sessions;
        if self.sessions() >= max {
            return Err(refuse(
                ErrorCode::Busy,
                format!("the relay holds {max} sessions, its limit; try again later"),
            ));
        }
        let per_peer = self.config.max_sessions_per_peer;
        for key in [opener_key, target] {
            if self.sessions_of(key) >= per_peer {
                return Err(refuse(
                    ErrorCode::Busy,
                    format!(
                        "peer {} is in {per_peer} relayed sessions, the limit",
                        key.short()
                    ),
                ));
            }
        }
        let session = self.next_session;
        self.next_session += 1;
        self.waiting.insert(
            session,
            Waiting {
                opener: conn,
                req,
                opener_key,
                target,
                opener_punch: None,
                deadline: now + self.config.join_timeout,
            },
        );
        self.by_conn.insert(conn, session);
        Ok(session)
    }

    /// The opener of `session` (still waiting) asked to punch from `addr` (§18.8).
    pub fn opener_punches(&mut self, session: u64, addr: SocketAddr) {
        if let Some(w) = self.waiting.get_mut(&session) {
            w.opener_punch = Some(addr);
        }
    }

    /// `RelayJoin{session}` from `conn`, which proved `joiner_key`; `joiner_punch`: where it
    /// punches from, if it asked to.
    pub fn join(
        &mut self,
        conn: ConnId,
        joiner_key: PeerId,
        session: u64,
        joiner_punch: Option<SocketAddr>,
        now: Instant,
    ) -> Result<Start, Refusal> {
        if self.holds(conn) {
            return Err(refuse(
                ErrorCode::UnexpectedMessage,
                "this connection is in a relayed session already",
            ));
        }
        let fits = self
            .waiting
            .get(&session)
            .is_some_and(|w| w.target == joiner_key && w.deadline > now);
        let Some(w) = fits.then(|| self.waiting.remove(&session)).flatten() else {
            return Err(refuse(
                ErrorCode::NoSuchSession,
                format!("no relayed session {session} waits for this key"),
            ));
        };
        self.by_conn.insert(conn, session);
        self.spliced.insert(
            session,
            Spliced {
                conns: [w.opener, conn],
                keys: [w.opener_key, joiner_key],
            },
        );
        Ok(Start {
            session,
            opener: w.opener,
            req: w.req,
            opener_key: w.opener_key,
            joiner: conn,
            joiner_key,
            punch: w.opener_punch.zip(joiner_punch),
        })
    }

    /// `conn` closed: its session ends (the reactor ends a spliced partner by itself).
    pub fn closed(&mut self, conn: ConnId) {
        let Some(session) = self.by_conn.remove(&conn) else {
            return;
        };
        self.waiting.remove(&session);
        if let Some(s) = self.spliced.remove(&session) {
            for c in s.conns {
                self.by_conn.remove(&c);
            }
        }
    }

    /// Offers whose join timeout has passed by `now`, forgotten.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        let mut expired = Vec::new();
        for session in due {
            if let Some(w) = self.waiting.remove(&session) {
                self.by_conn.remove(&w.opener);
                expired.push(Expired {
                    session,
                    opener: w.opener,
                    req: w.req,
                    target: w.target,
                });
            }
        }
        expired
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PeerId {
        PeerId::from_public_key([n; 32])
    }

    fn conn(n: usize) -> ConnId {
        ConnId::fake(n)
    }

    fn relay(max_sessions: usize, per_peer: usize) -> Relay {
        Relay::new(RelayConfig {
            max_sessions,
            max_sessions_per_peer: per_peer,
            ..RelayConfig::default()
        })
    }

    #[test]
    fn an_offer_joined_by_the_target_becomes_a_spliced_session() {
        let t0 = Instant::now();
        let mut r = relay(8, 8);
        let s = r
            .open(conn(1), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        assert!(r.holds(conn(1)));
        let start = r
            .join(conn(2), key(2), s, None, t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            start,
            Start {
                session: s,
                opener: conn(1),
                req: 7,
                opener_key: key(1),
                joiner: conn(2),
                joiner_key: key(2),
                punch: None,
            }
        );
        assert_eq!(r.next_deadline(), None, "nothing waits any more");
        r.closed(conn(2));
        assert_eq!(r.sessions(), 0);
        assert!(!r.holds(conn(1)), "both sides forgotten when one closes");
    }

    /// An offer is no ticket: only the key it was made for joins, once, before the timeout.
    #[test]
    fn only_the_target_key_joins_once_and_in_time() {
        let t0 = Instant::now();
        let mut r = relay(8, 8);
        let s = r
            .open(conn(1), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        let wrong = r.join(conn(3), key(3), s, None, t0).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::NoSuchSession);
        assert_eq!(
            r.join(conn(4), key(2), s + 1, None, t0).unwrap_err().code,
            ErrorCode::NoSuchSession
        );
        r.join(conn(2), key(2), s, None, t0).unwrap();
        let again = r.join(conn(5), key(2), s, None, t0).unwrap_err();
        assert_eq!(again.code, ErrorCode::NoSuchSession);

        let s = r
            .open(conn(6), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        let late = t0 + JOIN_TIMEOUT;
        assert_eq!(
            r.join(conn(7), key(2), s, None, late).unwrap_err().code,
            ErrorCode::NoSuchSession
        );
        assert_eq!(r.next_deadline(), Some(late));
        assert_eq!(
            r.expire(late),
            [Expired {
                session: s,
                opener: conn(6),
                req: 7,
                target: key(2),
            }]
        );
        assert!(r.expire(late).is_empty(), "reported once");
        assert!(!r.holds(conn(6)));
    }

    #[test]
    fn unknown_targets_ourselves_and_the_limits_are_refused() {
        let t0 = Instant::now();
        let mut r = relay(3, 2);
        let code = |r: Result<u64, Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(r.open(conn(1), 7, key(1), key(2), None, t0)),
            ErrorCode::NoSuchPeer
        );
        assert_eq!(
            code(r.open(conn(1), 7, key(1), key(1), Some(conn(9)), t0)),
            ErrorCode::Other
        );
        r.open(conn(1), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        assert_eq!(
            code(r.open(conn(1), 7, key(1), key(3), Some(conn(9)), t0)),
            ErrorCode::UnexpectedMessage,
            "one session per connection"
        );
        r.open(conn(2), 7, key(1), key(3), Some(conn(9)), t0)
            .unwrap();
        // Key 1 is in two sessions: its limit, as opener or as target.
        assert_eq!(
            code(r.open(conn(3), 7, key(1), key(4), Some(conn(9)), t0)),
            ErrorCode::Busy
        );
        assert_eq!(
            code(r.open(conn(3), 7, key(4), key(1), Some(conn(9)), t0)),
            ErrorCode::Busy
        );
        r.open(conn(3), 7, key(4), key(5), Some(conn(9)), t0)
            .unwrap();
        // Three sessions: the relay's limit.
        assert_eq!(
            code(r.open(conn(4), 7, key(6), key(7), Some(conn(9)), t0)),
            ErrorCode::Busy
        );
        r.closed(conn(3));
        r.open(conn(4), 7, key(6), key(7), Some(conn(9)), t0)
            .unwrap();
    }

    /// Both sides' punching addresses reach the `Start` only when both asked (§18.8).
    #[test]
    fn a_session_punches_only_when_both_sides_ask() {
        let t0 = Instant::now();
        let a = SocketAddr::from(([203, 0, 113, 1], 7001));
        let b = SocketAddr::from(([198, 51, 100, 2], 7002));
        let mut r = relay(8, 4);
        let s = r
            .open(conn(1), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        r.opener_punches(s, a);
        let start = r.join(conn(2), key(2), s, Some(b), t0).unwrap();
        assert_eq!(start.punch, Some((a, b)));

        let s = r
            .open(conn(3), 7, key(1), key(2), Some(conn(9)), t0)
            .unwrap();
        r.opener_punches(s, a);
        let start = r.join(conn(4), key(2), s, None, t0).unwrap();
        assert_eq!(start.punch, None);
    }
}
