//! Every message of the protocol, tracker and peer alike (PROTOCOL.md describes each one).
//!
//! Serialized with serde's default externally tagged form: a unit variant is a CBOR text string
//! (`"Heartbeat"`), any other variant a one-entry map `{"Name": {fields...}}`. That form streams
//! (no buffering of bulk data, unlike internally tagged enums). Every byte field goes through
//! `serde_bytes` so it is a CBOR byte string, not an array of integers.

pub use crate::identity::PeerId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Version carried in `Hello`. A peer that speaks another version gets `Error{VersionMismatch}`.
pub const PROTOCOL_VERSION: u32 = 3;

/// A SHA-256 digest. Serialized as a 32-byte CBOR byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sha256(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl Sha256 {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(bytes).into())
    }
}

/// A file's content id (PROTOCOL.md §8.4): SHA-256 over the file's size, chunk size and the
/// Merkle root of its chunk hashes, so it commits to the manifest. Serialized as a 32-byte CBOR
/// byte string. How it is computed, its text form and its checks: `peer::content_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentId(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a request failed. Serialized as a text string (the variant name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The other side speaks another protocol version.
    VersionMismatch,
    /// A message arrived that is not allowed in this state (e.g. before `Hello`).
    UnexpectedMessage,
    /// The tracker already has a live peer with this name.
    NameTaken,
    /// The name breaks the naming rules (empty, too long, control characters).
    BadName,
    /// A heartbeat or unregister from a connection that holds no registration.
    NotRegistered,
    /// No shared file has this SHA-256.
    NoSuchFile,
    /// The chunk index is outside the file.
    BadChunkIndex,
    /// The file could not be read (it vanished, shrank or changed).
    Unavailable,
    /// Too many requests or connections.
    Busy,
    /// The tracker does not relay (started without `--relay`): `RelayOpen` or `RelayJoin`
    /// sent to it (PROTOCOL.md §18).
    NotRelaying,
    /// `RelayOpen` named a peer that holds no registration on this tracker.
    NoSuchPeer,
    /// `RelayJoin` named a session that is not waiting for this key (never offered, taken,
    /// or expired).
    NoSuchSession,
    /// The target never joined the relayed session in time.
    RelayTimeout,
    /// Anything else; see the text.
    Other,
}

/// One peer as the tracker lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub name: String,
    /// The peer's key (its peer id) as whoever lists it knows it: the tracker from the
    /// registration's handshake, a peer from its own connections or whoever told it. A dial to
    /// `addr` must reach this key (unless the name is pinned to another: then that one).
    pub id: PeerId,
    /// `ip:port` where the peer accepts connections (IP as the tracker saw it).
    pub addr: String,
    /// `addr` is a port mapping on the peer's router (PROTOCOL.md §19), not its own listener.
    /// Absent means false (what older implementations send).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mapped: bool,
    /// Milliseconds since the tracker last heard from the peer.
    pub last_seen_ms: u64,
}

/// One shared file as a peer lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    /// The content id: what `GetManifest`, `GetChunk` and `GetHave` name the file by, and
    /// what the manifest is checked against.
    pub id: ContentId,
    /// The SHA-256 of the whole file as the lister states it. A content id proves the chunks;
    /// this is proved only by hashing the file (a receiver does when asked by it).
    pub sha256: Sha256,
    /// The file is still being downloaded by the lister, which serves the chunks it has
    /// (ask `GetHave`). Absent means false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
}

/// A shared folder's id (PROTOCOL.md §8.5): SHA-256 over its sorted entries (relative paths,
/// sizes, content ids), so it commits to the whole tree but not to the folder's name.
/// Serialized as a 32-byte CBOR byte string. How it is computed: `peer::folder::manifest`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FolderId(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// One top-level shared folder as a peer lists it (`Folders`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInfo {
    /// The folder's name in the lister's shared/ (a display hint, checked as a file name).
    pub name: String,
    pub id: FolderId,
    /// Entries in its listing (files and empty folders): what `GetFolder` pages through.
    pub entries: u64,
    /// Files in the tree, and their total size in bytes.
    pub files: u64,
    pub size: u64,
}

/// One entry of a folder's listing (`Folder`): a file, or a folder with nothing in it (a
/// folder with entries is implied by their paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderEntry {
    /// Relative path, components joined by `/` (PROTOCOL.md §9.3 says which are allowed).
    pub path: String,
    /// The file's size; 0 for an empty folder.
    pub size: u64,
    /// The file's content id; absent for an empty folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ContentId>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    // ---- both links -------------------------------------------------------------------------
    /// First frame on every connection, in both directions.
    Hello {
        version: u32,
        /// The sender's peer name ("" for a tracker or an anonymous client).
        name: String,
        /// The port the sender accepts peer connections on, if any.
        listen_port: Option<u16>,
        /// Free text naming the implementation, e.g. "p2p/0.1.0".
        agent: String,
    },
    /// A request failed (`req` names it), or the connection is about to be closed (`req` null).
    Error {
        req: Option<u64>,
        code: ErrorCode,
        message: String,
    },

    // ---- peer -> tracker --------------------------------------------------------------------
    Register {
        req: u64,
        name: String,
        listen_port: u16,
        /// `ip:port` a router maps to `listen_port` (PCP or NAT-PMP, PROTOCOL.md §19), if any.
        /// The tracker lists it, marked `mapped`, only when its IP is the one the
        /// connection comes from; absent (what older peers send): the direct address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external: Option<String>,
    },
    Heartbeat,
    /// Asks for registered peers. Both extra fields are optional and omitted when unused, so a
    /// plain `{"req": n}` (what older clients send) is still a complete request.
    ListPeers {
        req: u64,
        /// How many peers the answer should hold at most (the tracker caps it, PROTOCOL.md §6.2).
        /// Absent: the tracker's cap.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        want: Option<u32>,
        /// Peers wanted by name: those registered come first in the answer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    Unregister,

    // ---- tracker -> peer --------------------------------------------------------------------
    Registered {
        req: u64,
        /// Heartbeat at least this often (seconds) or be forgotten.
        ttl_secs: u64,
        /// The tracker relays (`RelayOpen`, PROTOCOL.md §18). Absent means false, so older
        /// peers and trackers are unaffected.
        #[serde(default, skip_serializing_if = "is_false")]
        relay: bool,
    },
    Peers {
        req: u64,
        peers: Vec<PeerInfo>,
        /// How many registrations the tracker holds. More than `peers.len()` means the answer
        /// is a sample, not everyone. Absent (a tracker that always lists everyone): everyone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },

    // ---- peer -> peer requests ----------------------------------------------------------------
    ListFiles {
        req: u64,
    },
    GetManifest {
        req: u64,
        id: ContentId,
    },
    GetChunk {
        req: u64,
        id: ContentId,
        index: u64,
    },
    Chat {
        req: u64,
        text: String,
    },

    // ---- peer -> peer answers -----------------------------------------------------------------
    Files {
        req: u64,
        files: Vec<FileInfo>,
    },
    /// Exactly what the content id commits to: a receiver recomputes the id from these fields
    /// and refuses the manifest if it differs from `id` (PROTOCOL.md §8.2).
    Manifest {
        req: u64,
        id: ContentId,
        size: u64,
        chunk_size: u32,
        /// SHA-256 of every chunk, concatenated: 32 bytes per chunk, in order.
        #[serde(with = "serde_bytes")]
        chunk_hashes: Vec<u8>,
    },
    Chunk {
        req: u64,
        index: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    ChatOk {
        req: u64,
    },

    // ---- peer exchange (peer -> peer) ---------------------------------------------------------
    /// Asks for the peers the other side knows.
    GetPeers {
        req: u64,
    },
    /// The answer to `GetPeers`: at most 64 peers, newest first. `last_seen_ms` is how long
    /// ago the sender (or whoever told it) last heard from each.
    PeerList {
        req: u64,
        peers: Vec<PeerInfo>,
    },

    // ---- swarm downloads (peer -> peer) -------------------------------------------------------
    /// Which chunks of this file the other side can serve now.
    GetHave {
        req: u64,
        id: ContentId,
    },
    /// The answer to `GetHave`. `complete`: every chunk (then `bitmap` is empty); otherwise bit
    /// `i % 8` of byte `i / 8` of `bitmap` is set when chunk `i` can be served.
    Have {
        req: u64,
        complete: bool,
        #[serde(with = "serde_bytes")]
        bitmap: Vec<u8>,
    },

    // ---- shared folders (peer -> peer, PROTOCOL.md §8.5) ----------------------------------------
    /// Asks for the top-level folders the other side shares.
    ListFolders {
        req: u64,
    },
    /// The answer to `ListFolders`.
    Folders {
        req: u64,
        folders: Vec<FolderInfo>,
    },
    /// Asks for a folder's listing from entry `start` on (a listing larger than one frame is
    /// fetched in pages).
    GetFolder {
        req: u64,
        id: FolderId,
        start: u64,
    },
    /// One page of a folder's listing: entries `start` to `start + entries.len() - 1` of
    /// `total`, in the listing's order.
    Folder {
        req: u64,
        id: FolderId,
        total: u64,
        start: u64,
        entries: Vec<FolderEntry>,
    },

    // ---- relays (PROTOCOL.md §18) ---------------------------------------------------------------
    /// Peer -> relay, on a connection of its own (after `Hello`): connect me to `peer`. Answered
    /// with `RelayStart` once the target joined, or an `Error` naming `req`.
    RelayOpen {
        req: u64,
        peer: PeerId,
        /// We would punch (PROTOCOL.md §18.8): the TCP port we listen on and punch from.
        /// Absent: no punching (older peers, `--no-punch`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        punch: Option<u16>,
    },
    /// Relay -> target peer, over its registered tracker link: `from` wants a link with you;
    /// join session `session` on a new connection.
    RelayOffer {
        session: u64,
        from: PeerId,
    },
    /// Target -> relay, on a new connection (after `Hello`): I take session `session`.
    RelayJoin {
        session: u64,
        /// As in `RelayOpen`: the port we punch from, if we would punch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        punch: Option<u16>,
    },
    /// Relay -> both sides: the last frame of the relay on this connection. Every byte after
    /// it is the other side's, copied unread: both start a fresh secure handshake (the opener
    /// as initiator) straight on the TCP stream. `peer`: who is on the other side.
    RelayStart {
        session: u64,
        peer: PeerId,
        /// When both sides sent `punch`: the other side's address to punch to, its
        /// connection's IP as the relay sees it and its `punch` port, as text
        /// (`"203.0.113.5:7001"`, PROTOCOL.md §18.8). Absent: no punching.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
    },
}

impl Message {
    /// A `ListPeers` without the optional fields: the tracker's default answer.
    pub fn list_peers(req: u64) -> Message {
        Message::ListPeers {
            req,
            want: None,
            names: Vec::new(),
        }
    }

    /// Size of the bulk payload, to size the encode buffer once.
    pub fn bulk_len(&self) -> usize {
        match self {
            Message::Chunk { data, .. } => data.len(),
            Message::Manifest { chunk_hashes, .. } => chunk_hashes.len(),
            _ => 0,
        }
    }

    /// The request id a request carries or an answer echoes (`None` for `Hello`, `Heartbeat`,
    /// `Unregister` and an `Error` about the whole connection).
    pub fn req(&self) -> Option<u64> {
        match self {
            Message::Register { req, .. }
            | Message::ListPeers { req, .. }
            | Message::Registered { req, .. }
            | Message::Peers { req, .. }
            | Message::ListFiles { req }
            | Message::GetManifest { req, .. }
            | Message::GetChunk { req, .. }
            | Message::Chat { req, .. }
            | Message::Files { req, .. }
            | Message::Manifest { req, .. }
            | Message::Chunk { req, .. }
            | Message::ChatOk { req }
            | Message::GetPeers { req }
            | Message::PeerList { req, .. }
            | Message::GetHave { req, .. }
            | Message::Have { req, .. }
            | Message::ListFolders { req }
            | Message::Folders { req, .. }
            | Message::GetFolder { req, .. }
            | Message::Folder { req, .. }
            | Message::RelayOpen { req, .. } => Some(*req),
            Message::Error { req, .. } => *req,
            Message::Hello { .. }
            | Message::Heartbeat
            | Message::Unregister
            | Message::RelayOffer { .. }
            | Message::RelayJoin { .. }
            | Message::RelayStart { .. } => None,
        }
    }

    /// The variant name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Error { .. } => "Error",
            Message::Register { .. } => "Register",
            Message::Heartbeat => "Heartbeat",
            Message::ListPeers { .. } => "ListPeers",
            Message::Unregister => "Unregister",
            Message::Registered { .. } => "Registered",
            Message::Peers { .. } => "Peers",
            Message::ListFiles { .. } => "ListFiles",
            Message::GetManifest { .. } => "GetManifest",
            Message::GetChunk { .. } => "GetChunk",
            Message::Chat { .. } => "Chat",
            Message::Files { .. } => "Files",
            Message::Manifest { .. } => "Manifest",
            Message::Chunk { .. } => "Chunk",
            Message::ChatOk { .. } => "ChatOk",
            Message::GetPeers { .. } => "GetPeers",
            Message::PeerList { .. } => "PeerList",
            Message::GetHave { .. } => "GetHave",
            Message::Have { .. } => "Have",
            Message::ListFolders { .. } => "ListFolders",
            Message::Folders { .. } => "Folders",
            Message::GetFolder { .. } => "GetFolder",
            Message::Folder { .. } => "Folder",
            Message::RelayOpen { .. } => "RelayOpen",
            Message::RelayOffer { .. } => "RelayOffer",
            Message::RelayJoin { .. } => "RelayJoin",
            Message::RelayStart { .. } => "RelayStart",
        }
    }
}
