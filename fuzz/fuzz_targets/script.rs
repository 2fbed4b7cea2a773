//! The input format of the handler targets: a sequence of records `[op, len_hi, len_lo, body]`
//! (a body shorter than its length just ends the input). Shared with `gen_seeds.rs`.

#![allow(dead_code)]

pub struct Record<'a> {
    pub op: u8,
    pub body: &'a [u8],
}

pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        if data.len() < 3 {
            return None;
        }
        let op = data[0];
        let len = (usize::from(data[1]) << 8 | usize::from(data[2])).min(data.len() - 3);
        let body = &data[3..3 + len];
        data = &data[3 + len..];
        Some(Record { op, body })
    })
}

pub fn record(out: &mut Vec<u8>, op: u8, body: &[u8]) {
    let len = body.len().min(0xFFFF);
    out.push(op);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&body[..len]);
}

/// A frame body (no length prefix) of `msg`.
pub fn body(msg: &p2p::wire::Message) -> Vec<u8> {
    p2p::wire::encode_message(msg)[4..].to_vec()
}

/// The file the fuzzed peer shares as `a.txt`: two chunks (256 KiB + 1 byte).
pub fn shared_content() -> Vec<u8> {
    (0..256 * 1024 + 1)
        .map(|i: u32| (i.wrapping_mul(31) % 251) as u8)
        .collect()
}

/// Sets the `req` of an answer (so a fuzzed answer can match a request the node made).
pub fn with_req(msg: p2p::wire::Message, new: u64) -> p2p::wire::Message {
    use p2p::wire::Message::*;
    match msg {
        Files { files, .. } => Files { req: new, files },
        Manifest {
            id,
            size,
            chunk_size,
            chunk_hashes,
            ..
        } => Manifest {
            req: new,
            id,
            size,
            chunk_size,
            chunk_hashes,
        },
        Chunk { index, data, .. } => Chunk {
            req: new,
            index,
            data,
        },
        ChatOk { .. } => ChatOk { req: new },
        Error { code, message, .. } => Error {
            req: Some(new),
            code,
            message,
        },
        Peers { peers, total, .. } => Peers {
            req: new,
            peers,
            total,
        },
        Registered {
            ttl_secs, relay, ..
        } => Registered {
            req: new,
            ttl_secs,
            relay,
        },
        RelayOpen { peer, .. } => RelayOpen { req: new, peer },
        PeerList { peers, .. } => PeerList { req: new, peers },
        Have {
            complete, bitmap, ..
        } => Have {
            req: new,
            complete,
            bitmap,
        },
        other => other,
    }
}

/// The `req` a message carries, if it is one we answer (requests only).
pub fn request_id(msg: &p2p::wire::Message) -> Option<u64> {
    use p2p::wire::Message::*;
    match msg {
        Register { req, .. }
        | ListPeers { req, .. }
        | ListFiles { req }
        | GetManifest { req, .. }
        | GetChunk { req, .. }
        | Chat { req, .. }
        | GetPeers { req }
        | GetHave { req, .. }
        | ListFolders { req }
        | GetFolder { req, .. } => Some(*req),
        _ => None,
    }
}
