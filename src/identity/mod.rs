//! Who a peer is: its long-term key pair, the file that keeps it across restarts, and the peer
//! id people read aloud and compare (PROTOCOL.md §15.2 and §15.3).

mod base32;
mod check;
pub mod key_file;
mod keypair;
mod peer_id;

pub use key_file::{KeyFileError, load_or_create};
pub use keypair::Identity;
pub use peer_id::{IdError, PeerId};
