//! The wire format: length-prefixed CBOR frames and the messages they carry.
//!
//! Every frame is a 4-byte big-endian length followed by exactly that many bytes of one CBOR item
//! (see PROTOCOL.md). This module has no sockets: it turns bytes into messages and back.

mod chunk;
mod frame;
mod message;

#[cfg(test)]
mod examples;
#[cfg(test)]
mod whole_chunk_tests;

pub use chunk::{
    ChunkHead, ChunkRef, chunk_frame_head, chunk_head_cut, parse_chunk, parse_chunk_head,
    pooled_buffer, recycle_chunk_buffer,
};
pub use frame::{
    Frame, FrameDecoder, FrameError, MAX_FRAME_LEN, WHOLE_CHUNK_FROM, decode_message,
    encode_message,
};
pub use message::{
    ContentId, ErrorCode, FileInfo, FolderEntry, FolderId, FolderInfo, Message, PROTOCOL_VERSION,
    PeerId, PeerInfo, Sha256,
};
