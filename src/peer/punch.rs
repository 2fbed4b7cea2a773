//! One TCP hole-punching attempt (PROTOCOL.md §18.8) as a plain value: after a relay's
//! `RelayStart` named the other side's public address, we dial it from our listen port while
//! the other side dials us (a TCP simultaneous open through both NATs). A dial that fails
//! before [`TCP_TIMEOUT`] (the other NAT refused our SYN before its own went out) is tried
//! again after [`RETRY`]; the attempt ends with the first connection whose handshake proved
//! the expected key, or fails at [`TCP_TIMEOUT`] without TCP, or at [`GIVE_UP`] in all.
//! Connect tags, connections and time come in; dials to make and the outcome go out. No
//! sockets, no clock.

use crate::identity::PeerId;
use crate::reactor::{ConnId, ConnectTag};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// TCP must be up this long after the attempt began, or it failed.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// A refused or reset dial is made again this much later (while TCP may still come up).
pub const RETRY: Duration = Duration::from_millis(200);
/// The whole attempt, the secure handshake on the punched connection included (which the
/// reactor bounds to 10 s after TCP is up).
pub const GIVE_UP: Duration = Duration::from_secs(16);

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `conn` is a secure link to the expected key, made by punching.
    Punched(ConnId),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// The next dial is due at this instant.
    Due(Instant),
    /// A dial with this tag runs (TCP or its handshake).
    Dialing(ConnectTag),
    Done,
}

/// A dial the node is to make now: from our listen port to `to`, TCP within `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    pub to: SocketAddr,
    pub expected: PeerId,
    /// Whether we are the secure handshake's initiator on the punched link: the side with
    /// the lower key is (PROTOCOL.md §18.8).
    pub initiator: bool,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Punch {
    to: SocketAddr,
    expected: PeerId,
    initiator: bool,
    started: Instant,
    state: State,
    /// Dials made so far (for the log).
    dials: u32,
    last_error: Option<String>,
}

impl Punch {
    /// An attempt towards `expected` at `to`, by us (`ours`), starting `now`.
    pub fn new(to: SocketAddr, expected: PeerId, ours: PeerId, now: Instant) -> Punch {
        Punch {
            to,
            expected,
            initiator: ours.public_key() < expected.public_key(),
            started: now,
            state: State::Due(now),
            dials: 0,
            last_error: None,
        }
    }

    pub fn to(&self) -> SocketAddr {
        self.to
    }

    pub fn expected(&self) -> PeerId {
        self.expected
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the dial with `tag` is this attempt's current one.
    pub fn owns(&self, tag: ConnectTag) -> bool {
        self.state == State::Dialing(tag)
    }

    /// The dial to make now, if one is due; the node makes it and says with which tag
    /// ([`Self::dialing`]).
    pub fn poll_dial(&self, now: Instant) -> Option<Dial> {
        let tcp_deadline = self.started + TCP_TIMEOUT;
        match self.state {
            State::Due(at) if at <= now && now < tcp_deadline => Some(Dial {
                to: self.to,
                expected: self.expected,
                initiator: self.initiator,
                timeout: tcp_deadline - now,
            }),
            _ => None,
        }
    }

    pub fn dialing(&mut self, tag: ConnectTag) {
        self.dials += 1;
        self.state = State::Dialing(tag);
    }

    /// The dial `tag` made a secure link that proved `peer`.
    pub fn connected(&mut self, tag: ConnectTag, conn: ConnId, peer: PeerId) -> Option<Outcome> {
        if !self.owns(tag) {
            return None;
        }
        self.state = State::Done;
        Some(if peer == self.expected {
            Outcome::Punched(conn)
        } else {
            Outcome::Failed(format!("the punched link proved {}", peer.short()))
        })
    }

    /// The dial `tag` failed (TCP, or its handshake): again a little later while TCP may
    /// still come up, else the attempt failed.
    pub fn connect_failed(&mut self, tag: ConnectTag, why: &str, now: Instant) -> Option<Outcome> {
        if !self.owns(tag) {
            return None;
        }
        self.last_error = Some(why.to_string());
        let again = now + RETRY;
        if again < self.started + TCP_TIMEOUT {
            self.state = State::Due(again);
            return None;
        }
        self.state = State::Done;
        Some(self.failure())
    }

    /// A connection from `remote` that proved `peer` was accepted on our listener while we
    /// punch: the other side's SYN found our listener rather than our dialling socket (a NAT
    /// let it through between two of our dials). It is the punched link if it is the peer
    /// we punch to, from the address we punch to.
    pub fn accepted(&mut self, conn: ConnId, remote: SocketAddr, peer: PeerId) -> Option<Outcome> {
        let ours = peer == self.expected && remote.ip() == self.to.ip();
        if self.is_done() || !ours {
            return None;
        }
        self.state = State::Done;
        Some(Outcome::Punched(conn))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<Outcome> {
        let failed = match self.state {
            State::Due(_) => now >= self.started + TCP_TIMEOUT,
            State::Dialing(_) => now >= self.started + GIVE_UP,
            State::Done => false,
        };
        if !failed {
            return None;
        }
        self.state = State::Done;
        Some(self.failure())
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Due(at) => Some(at.min(self.started + TCP_TIMEOUT)),
            State::Dialing(_) => Some(self.started + GIVE_UP),
            State::Done => None,
        }
    }

    fn failure(&self) -> Outcome {
        let last = self.last_error.as_deref().unwrap_or("no answer");
        Outcome::Failed(format!(
            "no punched link to {} after {} dial(s) ({last})",
            self.to, self.dials
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PeerId {
        PeerId::from_public_key([n; 32])
    }

    fn to() -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 9], 7002))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_lower_key_initiates_and_a_connection_proving_the_key_is_punched() {
        let t0 = Instant::now();
        let mut low = Punch::new(to(), key(2), key(1), t0);
        let dial = low.poll_dial(t0).expect("a dial at once");
        assert!(dial.initiator);
        assert_eq!(
            (dial.to, dial.expected, dial.timeout),
            (to(), key(2), TCP_TIMEOUT)
        );
        let high = Punch::new(to(), key(1), key(2), t0);
        assert!(!high.poll_dial(t0).unwrap().initiator);

        low.dialing(ConnectTag(7));
        assert!(low.poll_dial(t0).is_none(), "one dial at a time");
        assert_eq!(low.connected(ConnectTag(6), ConnId::fake(1), key(2)), None);
        let out = low.connected(ConnectTag(7), ConnId::fake(1), key(2));
        assert_eq!(out, Some(Outcome::Punched(ConnId::fake(1))));
        assert!(low.is_done() && low.poll_timeout().is_none());
    }

    #[test]
    fn refused_dials_are_made_again_until_tcp_times_out() {
        let t0 = Instant::now();
        let mut p = Punch::new(to(), key(2), key(1), t0);
        let mut now = t0;
        let mut tag = 0;
        loop {
            let Some(dial) = p.poll_dial(now) else {
                // Waiting for the next dial, or over.
                match p.handle_timeout(now) {
                    Some(Outcome::Failed(why)) => {
                        assert!(why.contains("refused"), "{why}");
                        break;
                    }
                    Some(other) => panic!("{other:?}"),
                    None => now = p.poll_timeout().expect("a deadline"),
                }
                continue;
            };
            assert!(dial.timeout <= TCP_TIMEOUT - (now - t0));
            tag += 1;
            p.dialing(ConnectTag(tag));
            now += ms(1);
            if let Some(out) = p.connect_failed(ConnectTag(tag), "refused", now) {
                assert!(matches!(out, Outcome::Failed(_)));
                break;
            }
            assert_eq!(p.poll_timeout(), Some(now + RETRY));
            assert!(p.poll_dial(now).is_none(), "not before the retry");
        }
        assert!(now <= t0 + TCP_TIMEOUT, "gave up at {:?}", now - t0);
        assert!(tag >= 20, "dialled {tag} times in 5 s");
        assert!(p.is_done());
    }

    #[test]
    fn a_dial_that_hangs_fails_at_the_total_deadline_and_a_wrong_key_fails() {
        let t0 = Instant::now();
        let mut p = Punch::new(to(), key(2), key(1), t0);
        p.dialing(ConnectTag(1));
        assert_eq!(p.poll_timeout(), Some(t0 + GIVE_UP));
        assert_eq!(p.handle_timeout(t0 + GIVE_UP - ms(1)), None);
        assert!(matches!(
            p.handle_timeout(t0 + GIVE_UP),
            Some(Outcome::Failed(_))
        ));
        // What the dial reports later is no longer the attempt's.
        assert_eq!(p.connected(ConnectTag(1), ConnId::fake(1), key(2)), None);

        let mut p = Punch::new(to(), key(2), key(1), t0);
        p.dialing(ConnectTag(2));
        let out = p.connected(ConnectTag(2), ConnId::fake(2), key(9));
        assert!(matches!(out, Some(Outcome::Failed(why)) if why.contains("proved")));
    }

    #[test]
    fn a_connection_accepted_from_the_peer_is_the_punched_link() {
        let t0 = Instant::now();
        let mut p = Punch::new(to(), key(2), key(1), t0);
        p.dialing(ConnectTag(1));
        let elsewhere = SocketAddr::from(([198, 51, 100, 1], 7002));
        assert_eq!(p.accepted(ConnId::fake(3), elsewhere, key(2)), None);
        assert_eq!(p.accepted(ConnId::fake(3), to(), key(5)), None);
        let from = SocketAddr::from(([203, 0, 113, 9], 40000));
        assert_eq!(
            p.accepted(ConnId::fake(3), from, key(2)),
            Some(Outcome::Punched(ConnId::fake(3)))
        );
        assert_eq!(p.accepted(ConnId::fake(4), from, key(2)), None, "once");
    }
}
