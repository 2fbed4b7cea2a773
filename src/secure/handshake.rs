//! The handshake of a secure link: Noise XX, three messages, each one record:
//!
//! ```text
//! initiator (connector)                 responder (acceptor)
//!   -> e                                   (32 bytes)
//!   <- e, ee, s, es                        (32 + 48 + 16 = 96 bytes)
//!   -> s, se                               (48 + 16 = 64 bytes)
//! ```
//!
//! Both sides end holding the other's static key, proved by the DH operations. The initiator
//! may send transport records right after its third message (the link costs it one round
//! trip); the responder's first transport record can follow its second message's reply.
//! Payloads are empty in this version and a non-empty one is refused.
//!
//! Pinning: either side may name the key it expects; the initiator checks it as soon as the
//! second message proves the responder's key, *before* it sends its own (so a wrong peer never
//! learns who dialled it), the responder after the third.
//!
//! Time is the caller's: it starts its handshake deadline when the connection opens and drops
//! this value when the deadline passes.

use super::record::{self, RecordReader};
use super::{LinkError, MAX_MESSAGE_LEN, NOISE_PARAMS, Prologue, Transport};
use crate::identity::{Identity, PeerId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; sends the first message.
    Initiator,
    /// Accepted it.
    Responder,
}

pub struct Handshake {
    noise: snow::HandshakeState,
    reader: RecordReader,
    /// Records to send, in order.
    out: Vec<u8>,
    expected: Option<PeerId>,
    failed: bool,
}

/// A finished handshake: the transport, who is on the other side, and what arrived after the
/// last handshake message (transport records already, to feed to [`Transport::open`]).
pub struct Established {
    pub transport: Transport,
    pub remote: PeerId,
    pub leftover: Vec<u8>,
}

impl Handshake {
    /// Starts a handshake as `role` with our key pair; the initiator's first message is ready
    /// at once in [`Self::poll_transmit`]. `expected`: the peer we must find on the other side.
    pub fn new(
        role: Role,
        identity: &Identity,
        prologue: &Prologue,
        expected: Option<PeerId>,
    ) -> Handshake {
        Self::build(role, identity, prologue, expected, None)
    }

    /// A handshake whose ephemeral key is given: only for the worked transcript in
    /// PROTOCOL.md §15, which must come out the same on every run.
    #[cfg(test)]
    pub(super) fn with_fixed_ephemeral(
        role: Role,
        identity: &Identity,
        prologue: &Prologue,
        ephemeral: &[u8; 32],
    ) -> Handshake {
        Self::build(role, identity, prologue, None, Some(ephemeral))
    }

    fn build(
        role: Role,
        identity: &Identity,
        prologue: &Prologue,
        expected: Option<PeerId>,
        ephemeral: Option<&[u8; 32]>,
    ) -> Handshake {
        let params = NOISE_PARAMS
            .parse()
            .expect("NOISE_PARAMS is a valid Noise name");
        let prologue = prologue.bytes();
        let mut builder = snow::Builder::new(params)
            .local_private_key(identity.private_key())
            .and_then(|b| b.prologue(&prologue))
            .expect("each builder parameter is set once");
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let noise = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .expect("XX with a 32-byte local key needs nothing else, and snow has every primitive");
        let mut handshake = Handshake {
            noise,
            reader: RecordReader::default(),
            out: Vec::new(),
            expected,
            failed: false,
        };
        if role == Role::Initiator {
            handshake
                .write_next()
                .expect("writing the first XX message needs only randomness");
        }
        handshake
    }

    /// Feeds bytes from the connection. Handshake messages are processed as they complete and
    /// answers queued; bytes after the last handshake message are kept for the transport.
    /// An error ends the link.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if self.failed {
            return Err(LinkError::Failed);
        }
        self.reader.push(bytes);
        let result = self.advance();
        self.failed = result.is_err();
        result
    }

    fn advance(&mut self) -> Result<(), LinkError> {
        let mut payload = [0u8; MAX_MESSAGE_LEN];
        while !self.noise.is_handshake_finished() && !self.noise.is_my_turn() {
            let Some(message) = self.reader.next_record(1)? else {
                return Ok(());
            };
            let n = self
                .noise
                .read_message(message, &mut payload)
                .map_err(|e| LinkError::Handshake(e.to_string()))?;
            if n > 0 {
                return Err(LinkError::Payload(n));
            }
            self.check_remote()?;
            if !self.noise.is_handshake_finished() {
                self.write_next()?;
            }
        }
        Ok(())
    }

    /// Refuses the remote static key as soon as it is known, if it is not the expected one.
    fn check_remote(&self) -> Result<(), LinkError> {
        let (Some(expected), Some(key)) = (self.expected, self.noise.get_remote_static()) else {
            return Ok(());
        };
        let found = PeerId::from_slice(key)
            .ok_or_else(|| LinkError::Handshake(format!("a {}-byte static key", key.len())))?;
        if found != expected {
            return Err(LinkError::WrongKey { expected, found });
        }
        Ok(())
    }

    /// Queues our next handshake message (empty payload) as a record.
    fn write_next(&mut self) -> Result<(), LinkError> {
        let mut message = [0u8; MAX_MESSAGE_LEN];
        let n = self
            .noise
            .write_message(&[], &mut message)
            .map_err(|e| LinkError::Handshake(e.to_string()))?;
        record::push_header(&mut self.out, n);
        self.out.extend_from_slice(&message[..n]);
        Ok(())
    }

    /// The Noise handshake hash `h`: both sides hold the same value once the handshake is
    /// finished, and it names this one session (for channel binding, and for comparing two
    /// implementations' transcripts).
    pub fn handshake_hash(&self) -> &[u8] {
        self.noise.get_handshake_hash()
    }

    /// Bytes to send now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Both sides' static keys are proved; [`Self::finish`] gives the transport (after the
    /// last [`Self::poll_transmit`]: the initiator's third message must still go out).
    pub fn is_finished(&self) -> bool {
        !self.failed && self.noise.is_handshake_finished()
    }

    /// The transport of a finished handshake. Call after [`Self::poll_transmit`] returned
    /// `None`; unsent handshake bytes are lost otherwise (a debug assertion says so).
    pub fn finish(mut self) -> Result<Established, LinkError> {
        debug_assert!(
            self.out.is_empty(),
            "the last handshake message was not sent"
        );
        if !self.is_finished() {
            return Err(LinkError::Failed);
        }
        let remote = self
            .noise
            .get_remote_static()
            .and_then(PeerId::from_slice)
            .ok_or_else(|| LinkError::Handshake("no remote static key".to_string()))?;
        let leftover = self.reader.take_rest();
        let noise = self
            .noise
            .into_transport_mode()
            .map_err(|e| LinkError::Handshake(e.to_string()))?;
        Ok(Established {
            transport: Transport::new(noise),
            remote,
            leftover,
        })
    }
}
