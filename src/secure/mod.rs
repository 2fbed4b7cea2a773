//! Encrypted, authenticated links: Noise XX over TCP, below the frame layer
//! (PROTOCOL.md §15). Sans-IO like the rest of the core: these values take bytes
//! and return bytes; the caller owns the socket and the clock (handshake deadlines included).
//!
//! [`Link`] is what a connection's owner drives: a [`Handshake`] (three messages, each a
//! record), then a [`Transport`] that seals the plaintext byte stream (our length-prefixed CBOR
//! frames, any size) into records of at most one Noise transport message, and opens the
//! records coming in. Records ([`record`]) are a 2-byte big-endian length and that many bytes
//! of Noise message.

pub mod blocking;
mod handshake;
mod link;
mod prologue;
pub mod record;
mod transport;

pub use blocking::SecureStream;
pub use handshake::{Established, Handshake, Role};
pub use link::Link;
pub use prologue::Prologue;
pub use transport::Transport;

use crate::identity::PeerId;
use std::fmt;

/// The Noise protocol of every link. AES-256-GCM, not ChaCha20-Poly1305: through snow with
/// ring on a CPU with AES-NI it seals and opens 64 KiB records about 4× faster (3.4 GB/s
/// against 0.8 GB/s, twice SHA-256's speed against half of it; `cargo bench --bench noise`,
/// figures in docs/secure-links.md), and a download already pays SHA-256 per byte.
/// SHA-256 as the hash: sha2 and ring use SHA-NI, and every Noise library has it.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";

/// Where opened records put their plaintext: a `Vec` (appended to), or a frame decoder that
/// chooses a buffer per record (the reactor's assembles large chunks in buffers of their own).
/// A record is opened straight into the `Vec` [`Self::room`] returns, appended after what it
/// holds; [`Self::filled`] follows every record that verified.
pub trait PlaintextSink {
    /// Where the next record's plaintext (at most `len` bytes) goes.
    fn room(&mut self, len: usize) -> &mut Vec<u8>;
    /// A record's plaintext was appended where `room` said.
    fn filled(&mut self);
}

impl PlaintextSink for Vec<u8> {
    fn room(&mut self, _len: usize) -> &mut Vec<u8> {
        self
    }
    fn filled(&mut self) {}
}

/// Noise's limit on one message (handshake or transport), tag included.
pub const MAX_MESSAGE_LEN: usize = 65535;
/// The AEAD tag at the end of every transport message.
pub const TAG_LEN: usize = 16;
/// The most plaintext one transport record carries.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_MESSAGE_LEN - TAG_LEN;

/// The prologue of this build's links: its wire version, no capabilities.
pub fn our_prologue() -> Prologue {
    Prologue {
        version: crate::wire::PROTOCOL_VERSION,
        capabilities: 0,
    }
}

/// Why a link failed. Every one of them ends the link: a Noise session cannot skip a message
/// (the nonces would no longer match), and bytes that fail their tag may be an attack.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// A record's length is impossible (0, or too short to hold a tag).
    BadRecord(usize),
    /// A handshake message did not verify: tampering, another protocol version or other
    /// capabilities (they are in the prologue), or not our protocol at all.
    Handshake(String),
    /// A handshake message carried a payload; version 1 sends none.
    Payload(usize),
    /// The other side proved a static key, but not the one the caller expected.
    WrongKey { expected: PeerId, found: PeerId },
    /// A transport record failed its tag: a byte changed, lost or added on the way.
    Decrypt,
    /// Encrypting failed (nonces exhausted after 2^64 records: never in practice).
    Encrypt(String),
    /// A call after the link had already failed.
    Failed,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::BadRecord(n) => {
                write!(f, "secure link: a record of {n} bytes is impossible")
            }
            LinkError::Handshake(why) => write!(
                f,
                "secure handshake failed ({why}): the other side speaks another protocol \
                 version, or the connection was tampered with"
            ),
            LinkError::Payload(n) => {
                write!(f, "secure handshake: unexpected payload of {n} bytes")
            }
            LinkError::WrongKey { expected, found } => write!(
                f,
                "the other side is peer {found}, not the expected {expected}"
            ),
            LinkError::Decrypt => f.write_str(
                "secure link: a record failed its authentication check (changed on the way)",
            ),
            LinkError::Encrypt(why) => write!(f, "secure link: cannot encrypt: {why}"),
            LinkError::Failed => f.write_str("secure link: used after it failed"),
        }
    }
}

impl std::error::Error for LinkError {}

/// A link failure as the I/O error a socket's owner reports (`InvalidData`); the `LinkError`
/// stays inside, for a caller that wants to tell a wrong key from a broken record.
impl From<LinkError> for std::io::Error {
    fn from(e: LinkError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod transcript;
