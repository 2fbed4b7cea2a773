//! The wire format: length-prefixed CBOR frames and the messages they carry.
//!
//! Every frame is a 4-byte big-endian length followed by exactly that many bytes of one CBOR item
//! (see PROTOCOL.md). This module has no sockets: it turns bytes into messages and back.

mod chunk;
mod frame;
mod message;

#[cfg(test)]
mod examples;

pub use chunk::{ChunkRef, chunk_frame_head, parse_chunk, pooled_buffer, recycle_chunk_buffer};
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_LEN, decode_message, encode_message};
pub use message::{
    ContentId, ErrorCode, FileInfo, FolderEntry, FolderId, FolderInfo, Message, PROTOCOL_VERSION,
    PeerId, PeerInfo, Sha256,
};
