//! One secure link as a connection's owner drives it: the handshake, then the transport, behind
//! one value. Bytes from the socket go in and plaintext comes out; plaintext goes in and bytes
//! for the socket come out. What the caller sends before the handshake is done waits here and
//! is sealed the moment the keys exist, so a connector can queue its first frame at once.

use super::{Handshake, LinkError, PlaintextSink, Prologue, Role, Transport};
use crate::identity::{Identity, PeerId};

enum State {
    Handshaking(Box<Handshake>),
    Open {
        transport: Transport,
        remote: PeerId,
    },
    Failed,
}

pub struct Link {
    state: State,
    /// Plaintext sent before the handshake finished.
    early: Vec<u8>,
    /// Bytes for the socket, in order.
    out: Vec<u8>,
}

impl Link {
    /// Starts a link as `role`; see [`Handshake::new`] for `expected`.
    pub fn new(
        role: Role,
        identity: &Identity,
        prologue: &Prologue,
        expected: Option<PeerId>,
    ) -> Link {
        let mut handshake = Handshake::new(role, identity, prologue, expected);
        let out = handshake.poll_transmit().unwrap_or_default();
        Link {
            state: State::Handshaking(Box::new(handshake)),
            early: Vec::new(),
            out,
        }
    }

    /// Who is on the other side, once the handshake proved it.
    pub fn remote(&self) -> Option<PeerId> {
        match &self.state {
            State::Open { remote, .. } => Some(*remote),
            _ => None,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Feeds bytes from the socket; appends to `plaintext` what verified records carry. An
    /// error ends the link: every later call fails too.
    pub fn handle_input(
        &mut self,
        bytes: &[u8],
        plaintext: &mut impl PlaintextSink,
    ) -> Result<(), LinkError> {
        let result = self.input(bytes, plaintext);
        if result.is_err() {
            self.state = State::Failed;
            self.early = Vec::new();
        }
        result
    }

    fn input(&mut self, bytes: &[u8], plaintext: &mut impl PlaintextSink) -> Result<(), LinkError> {
        if let State::Open { transport, .. } = &mut self.state {
            return transport.open(bytes, plaintext);
        }
        // Handshaking (or failed): taken out, put back unless it finished.
        let State::Handshaking(mut handshake) = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(LinkError::Failed);
        };
        handshake.handle_input(bytes)?;
        if let Some(reply) = handshake.poll_transmit() {
            self.out.extend_from_slice(&reply);
        }
        if !handshake.is_finished() {
            self.state = State::Handshaking(handshake);
            return Ok(());
        }
        let done = handshake.finish()?;
        let mut transport = done.transport;
        transport.seal(&std::mem::take(&mut self.early), &mut self.out)?;
        transport.open(&done.leftover, plaintext)?;
        self.state = State::Open {
            transport,
            remote: done.remote,
        };
        Ok(())
    }

    /// Sends `plaintext` (frames): sealed now, or as soon as the handshake is done.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), LinkError> {
        match &mut self.state {
            State::Failed => Err(LinkError::Failed),
            State::Handshaking(_) => {
                self.early.extend_from_slice(plaintext);
                Ok(())
            }
            State::Open { transport, .. } => {
                let result = transport.seal(plaintext, &mut self.out);
                if result.is_err() {
                    self.state = State::Failed;
                }
                result
            }
        }
    }

    /// [`Link::send`], the sealed records appended to `out` rather than to the link's own
    /// output (a caller with a recycled buffer saves an allocation per frame). Bytes the link
    /// had for the socket already (a handshake message) go first, so the order holds.
    pub fn send_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
        out.append(&mut self.out);
        match &mut self.state {
            State::Open { transport, .. } => {
                let result = transport.seal(plaintext, out);
                if result.is_err() {
                    self.state = State::Failed;
                }
                result
            }
            _ => self.send(plaintext),
        }
    }

    /// Bytes to write to the socket now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROLOGUE: Prologue = Prologue {
        version: 2,
        capabilities: 0,
    };

    /// Moves bytes between the two links (in pieces of `step` bytes) until both are quiet;
    /// returns what each received.
    fn pump(a: &mut Link, b: &mut Link, step: usize) -> Result<(Vec<u8>, Vec<u8>), LinkError> {
        let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
        loop {
            let (x, y) = (a.poll_transmit(), b.poll_transmit());
            if x.is_none() && y.is_none() {
                return Ok((to_a, to_b));
            }
            for piece in x.unwrap_or_default().chunks(step) {
                b.handle_input(piece, &mut to_b)?;
            }
            for piece in y.unwrap_or_default().chunks(step) {
                a.handle_input(piece, &mut to_a)?;
            }
        }
    }

    #[test]
    fn early_data_both_ways_arrives_after_the_handshake() {
        for step in [1, 7, 100_000] {
            let (ka, kb) = (Identity::generate().unwrap(), Identity::generate().unwrap());
            let mut a = Link::new(Role::Initiator, &ka, &PROLOGUE, Some(kb.peer_id()));
            let mut b = Link::new(Role::Responder, &kb, &PROLOGUE, None);
            a.send(b"from a, early").unwrap();
            b.send(b"from b, early").unwrap();
            assert!(a.remote().is_none() && !b.is_open());
            let (to_a, to_b) = pump(&mut a, &mut b, step).unwrap();
            assert_eq!(to_b, b"from a, early", "step {step}");
            assert_eq!(to_a, b"from b, early", "step {step}");
            assert_eq!(a.remote(), Some(kb.peer_id()));
            assert_eq!(b.remote(), Some(ka.peer_id()));
            let big = vec![7u8; 200_000];
            a.send(&big).unwrap();
            let (_, to_b) = pump(&mut a, &mut b, step.max(1000)).unwrap();
            assert!(to_b == big);
        }
    }

    /// The handshake costs the connector one round trip: its first frame, sent when its link
    /// opens (as the reactor's node sends `Hello` on `handle_connected`), leaves in the same
    /// flight as the third handshake message, and the acceptor has it from that flight alone.
    /// Flights: a→b (msg 1), b→a (msg 2), a→b (msg 3 + frame): the frame arrives one round
    /// trip later than on a bare TCP connection, where it would be the first flight.
    #[test]
    fn the_handshake_adds_one_round_trip_before_the_first_frame() {
        let (ka, kb) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let mut a = Link::new(Role::Initiator, &ka, &PROLOGUE, None);
        let mut b = Link::new(Role::Responder, &kb, &PROLOGUE, None);
        let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
        let flight1 = a.poll_transmit().expect("message 1 at once");
        b.handle_input(&flight1, &mut to_b).unwrap();
        let flight2 = b.poll_transmit().expect("message 2 answers it");
        a.handle_input(&flight2, &mut to_a).unwrap();
        assert!(
            a.is_open(),
            "the initiator has its keys after one round trip"
        );
        a.send(b"Hello").unwrap();
        let flight3 = a.poll_transmit().expect("message 3 and the frame");
        assert!(a.poll_transmit().is_none(), "one flight, nothing held back");
        b.handle_input(&flight3, &mut to_b).unwrap();
        assert!(b.is_open());
        assert_eq!(to_b, b"Hello", "the frame came with message 3");
    }

    #[test]
    fn a_failed_link_stays_failed_and_sends_nothing_more() {
        let (ka, kb) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let stranger = Identity::generate().unwrap().peer_id();
        let mut a = Link::new(Role::Initiator, &ka, &PROLOGUE, Some(stranger));
        let mut b = Link::new(Role::Responder, &kb, &PROLOGUE, None);
        a.send(b"secret").unwrap();
        let err = pump(&mut a, &mut b, 1000).unwrap_err();
        assert!(matches!(err, LinkError::WrongKey { .. }), "{err}");
        assert!(a.poll_transmit().is_none(), "the wrong peer got more bytes");
        assert_eq!(a.send(b"more"), Err(LinkError::Failed));
        assert_eq!(a.handle_input(&[], &mut Vec::new()), Err(LinkError::Failed));
        assert!(a.remote().is_none());
    }
}
