//! Two reactor features a relay needs (PROTOCOL.md §18), kept apart from the poll loop:
//!
//! - **Splicing** (`Action::Splice`, the relay's side): two connections whose bytes are copied
//!   to each other unread, never decrypted or decoded: after `RelayStart` the two peers speak
//!   their own secure link through us. Backpressure: a side is not read while the other's
//!   queue is above [`HIGH_WATER`], and is read again once it drained below [`LOW_WATER`].
//!   A session may be held to a rate (a token bucket per direction, woken on the reactor's
//!   timer). Either side ending ends both; the node hears `handle_closed` for each.
//! - **Restarting** (`Action::Restart`, a relayed peer's side): a fresh secure handshake on a
//!   connection's TCP stream, whose end the node hears as a new connection.

use super::conn::Phase;
use super::event_loop::Reactor;
use super::rate::TokenBucket;
use super::{CloseReason, ConnId, ConnectTag, Driver};
use crate::identity::PeerId;
use crate::secure::{Link, Role};
use std::io;
use std::time::{Duration, Instant};

/// A side whose partner has more than this queued is not read (TCP then slows its sender).
const HIGH_WATER: usize = 1024 * 1024;
/// ... and is read again once the partner's queue is below this.
const LOW_WATER: usize = 256 * 1024;
/// Bytes moved per read, and per event before other connections get a turn.
const READ_SIZE: usize = 256 * 1024;
const TURN: usize = 4 * 1024 * 1024;
/// How long the secure handshake on a restarted stream may take.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a restarted connection's handshake makes us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartAs {
    /// We opened the relayed session: initiator, proving `expected` (a wrong key fails like
    /// a dial's handshake, with `handle_connect_failed(tag, ..)`); success is
    /// `handle_connected(conn, tag, ..)`.
    Initiator {
        tag: ConnectTag,
        expected: Option<PeerId>,
    },
    /// We joined it: responder; success is `handle_accepted(conn, ..)`.
    Responder,
}

/// One direction of a splice, as the source connection keeps it.
pub struct Splice {
    pub partner: ConnId,
    /// `--relay-max-rate`: the tokens this direction may still move.
    bucket: Option<TokenBucket>,
}

impl Reactor {
    /// Splices `a` and `b` (both open): from now on each one's bytes go to the other unread.
    pub(super) fn splice(
        &mut self,
        a: ConnId,
        b: ConnId,
        rate: Option<u64>,
        driver: &mut impl Driver,
    ) {
        let open = |r: &Reactor, id: ConnId| r.live(id) && r.conns[id.index].is_open();
        if a == b || !open(self, a) || !open(self, b) {
            // One side left already: the other cannot be used for anything else now.
            for id in [a, b] {
                if open(self, id) {
                    self.end_spliced(id, CloseReason::Local, driver);
                }
            }
            return;
        }
        let now = Instant::now();
        let bucket =
            |rate: Option<u64>| rate.map(|r| TokenBucket::new(r, super::rate::burst_for(r), now));
        self.conns[a.index].start_splice(Splice {
            partner: b,
            bucket: bucket(rate),
        });
        self.conns[b.index].start_splice(Splice {
            partner: a,
            bucket: bucket(rate),
        });
        // Bytes may be waiting already (the other side's first handshake message).
        for id in [a, b] {
            if !self.readable_again.contains(&id) {
                self.readable_again.push_back(id);
            }
        }
    }

    /// Copies what `id`'s socket has to its partner, as far as backpressure, the rate and the
    /// turn allow.
    pub(super) fn splice_readable(&mut self, id: ConnId, driver: &mut impl Driver) {
        let mut moved = 0;
        while moved < TURN {
            let Some(partner) = self.conns[id.index].splice.as_ref().map(|s| s.partner) else {
                return;
            };
            if !self.live(partner) {
                return self.end_spliced(id, CloseReason::RemoteClosed, driver);
            }
            if self.conns[partner.index].queued() > HIGH_WATER {
                return; // read again when the partner drains (`splice_drained`)
            }
            let now = Instant::now();
            let mut want = READ_SIZE;
            let splice = self.conns[id.index].splice.as_mut();
            if let Some(bucket) = splice.and_then(|s| s.bucket.as_mut()) {
                let allowed = bucket.available(now) as usize;
                if allowed == 0 {
                    let at = bucket.next_refill(16 * 1024, now);
                    self.splice_parked.push((at, id));
                    return;
                }
                want = want.min(allowed);
            }
            let mut buf = crate::wire::pooled_buffer(want);
            match self.conns[id.index].read_raw(&mut buf, want) {
                Ok(0) => return self.end_spliced(id, CloseReason::RemoteClosed, driver),
                Ok(n) => {
                    moved += n;
                    if let Some(bucket) = self.conns[id.index]
                        .splice
                        .as_mut()
                        .and_then(|s| s.bucket.as_mut())
                    {
                        bucket.take(n as u64, now);
                    }
                    // Traffic is what keeps a spliced pair from the idle timeout.
                    self.limits.frame_seen(id.index, now);
                    self.limits.frame_seen(partner.index, now);
                    self.conns[partner.index].queue_raw(buf);
                    self.budget.add(partner.index, n);
                    if let Err(e) = self.flush_conn(partner.index) {
                        return self.end_spliced(partner, CloseReason::Io(e), driver);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.end_spliced(id, CloseReason::Io(e), driver),
            }
        }
        self.readable_again.push_back(id);
    }

    /// `index` wrote some of its queue: if it is spliced and drained enough, its partner may
    /// be read again.
    pub(super) fn splice_drained(&mut self, index: usize) {
        let Some(conn) = self.conns.get(index) else {
            return;
        };
        let Some(partner) = conn.splice.as_ref().map(|s| s.partner) else {
            return;
        };
        if conn.queued() < LOW_WATER
            && self.live(partner)
            && !self.readable_again.contains(&partner)
        {
            self.readable_again.push_back(partner);
        }
    }

    /// Rate-limited sides whose tokens are back go on the read queue.
    pub(super) fn wake_spliced(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.splice_parked.len() {
            if self.splice_parked[i].0 <= now {
                let (_, id) = self.splice_parked.swap_remove(i);
                if self.live(id) && !self.readable_again.contains(&id) {
                    self.readable_again.push_back(id);
                }
            } else {
                i += 1;
            }
        }
    }

    /// The earliest rate-limited side's wake-up.
    pub(super) fn next_splice_wake(&self) -> Option<Instant> {
        self.splice_parked.iter().map(|(at, _)| *at).min()
    }

    /// Ends a spliced pair from `id`'s side: `id` goes now, its partner once what is queued
    /// for it left (the other peer's last records), within the close linger. The node hears
    /// of both.
    pub(super) fn end_spliced(
        &mut self,
        id: ConnId,
        reason: CloseReason,
        driver: &mut impl Driver,
    ) {
        if !self.live(id) {
            return;
        }
        let partner = self.conns[id.index].splice.take().map(|s| s.partner);
        let was_open = self.conns[id.index].is_open();
        self.drop_conn(id.index);
        if was_open {
            driver.handle_closed(id, reason, Instant::now());
        }
        let Some(partner) = partner.filter(|p| self.live(*p)) else {
            return;
        };
        let conn = &mut self.conns[partner.index];
        conn.splice = None;
        let was_open = conn.is_open();
        if conn.queued() == 0 {
            self.drop_conn(partner.index);
        } else {
            conn.phase = Phase::Closing {
                deadline: Instant::now() + super::event_loop::CLOSE_LINGER,
            };
        }
        if was_open {
            driver.handle_closed(partner, CloseReason::RemoteClosed, Instant::now());
        }
    }

    /// Starts a fresh secure handshake on `id`'s stream (see [`RestartAs`]).
    pub(super) fn restart(&mut self, id: ConnId, role: RestartAs, driver: &mut impl Driver) {
        if !self.live(id) || !self.conns[id.index].is_open() {
            if let RestartAs::Initiator { tag, .. } = role {
                let gone = io::Error::new(io::ErrorKind::NotConnected, "relay connection gone");
                driver.handle_connect_failed(tag, gone, Instant::now());
            }
            return;
        }
        let (link, tag) = match role {
            RestartAs::Initiator { tag, expected } => (
                Link::new(Role::Initiator, &self.identity, &self.prologue, expected),
                Some(tag),
            ),
            RestartAs::Responder => (
                Link::new(Role::Responder, &self.identity, &self.prologue, None),
                None,
            ),
        };
        let conn = &mut self.conns[id.index];
        let before = conn.queued();
        conn.restart(link);
        conn.phase = Phase::Securing {
            tag,
            deadline: Instant::now() + RESTART_TIMEOUT,
        };
        let added = conn.queued() - before;
        self.budget.add(id.index, added);
        if let Err(e) = self.flush_conn(id.index) {
            return self.fail(id, CloseReason::Io(e), driver);
        }
        // Bytes of the other side's handshake may have come behind the relay's last frame.
        if !self.readable_again.contains(&id) {
            self.readable_again.push_back(id);
        }
    }
}
