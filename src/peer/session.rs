//! One connection to another peer, as the node keeps it (`Session`), and the limits of the
//! handshake and of chat. Plain values: the node's side of connections is `sessions.rs`.

use crate::identity::PeerId;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A connection that has not completed its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest chat message accepted or sent, in bytes.
pub const MAX_CHAT_LEN: usize = 4096;

pub struct Session {
    pub remote: SocketAddr,
    /// Who the secure handshake proved is on the other side: the key its `Hello` name must be
    /// pinned to (`pins.rs`), and who its messages are from.
    pub peer: PeerId,
    /// Its name was pinned to its key by this connection's `Hello` (first contact), and no
    /// message came over it yet: the first one shows the short id beside the name.
    pub first_contact: bool,
    /// For connections we opened: the peer we meant to reach.
    pub expected: Option<String>,
    /// The remote's name, once its `Hello` arrived.
    pub name: Option<String>,
    pub hello_deadline: Instant,
    /// We asked the reactor to close it: no new request may start on it.
    pub closing: bool,
    /// The remote refused it as busy (its connection cap) in place of `Hello`.
    pub refused_busy: bool,
}

impl Session {
    pub fn incoming(remote: SocketAddr, peer: PeerId, now: Instant) -> Session {
        Session {
            remote,
            peer,
            first_contact: false,
            expected: None,
            name: None,
            hello_deadline: now + HANDSHAKE_TIMEOUT,
            closing: false,
            refused_busy: false,
        }
    }

    pub fn outgoing(name: String, remote: SocketAddr, peer: PeerId, now: Instant) -> Session {
        Session {
            expected: Some(name),
            ..Session::incoming(remote, peer, now)
        }
    }

    pub fn ready(&self) -> bool {
        self.name.is_some()
    }
}
