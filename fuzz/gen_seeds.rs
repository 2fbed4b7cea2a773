//! Writes the seed corpus: valid frames and short valid conversations for each target, into
//! `corpus/<target>/seed-*`. Run from `fuzz/`: `cargo run --example gen_seeds`.

#[path = "fuzz_targets/script.rs"]
mod script;

use p2p::wire::{
    ContentId, ErrorCode, FileInfo, Message, PROTOCOL_VERSION, PeerInfo, Sha256, encode_message,
};
use script::{body, record};

fn hello(name: &str) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        listen_port: Some(4001),
        agent: "seed".into(),
    }
}

fn every_message() -> Vec<Message> {
    let sha = Sha256::of(b"x");
    // The content id of the one byte `x` (one chunk of 256 KiB: PROTOCOL.md §8.4).
    let id = ContentId::from_parts(1, 262_144, &[sha]);
    vec![
        hello("Alice"),
        Message::Error {
            req: Some(3),
            code: ErrorCode::NoSuchFile,
            message: "no".into(),
        },
        Message::Register {
            req: 1,
            name: "Alice".into(),
            listen_port: 4001,
            external: None,
        },
        Message::Heartbeat,
        Message::list_peers(2),
        Message::Unregister,
        Message::Registered {
            req: 1,
            ttl_secs: 30,
            relay: false,
        },
        Message::Peers {
            req: 2,
            peers: vec![PeerInfo {
                id: p2p::identity::PeerId::from_public_key([7; 32]),
                name: "Fake".into(),
                addr: "127.0.0.1:4001".into(),
                mapped: false,
                last_seen_ms: 5,
            }],
            total: None,
        },
        Message::ListFiles { req: 4 },
        Message::GetManifest { req: 5, id },
        Message::GetChunk {
            req: 6,
            id,
            index: 0,
        },
        Message::Chat {
            req: 7,
            text: "hi".into(),
        },
        Message::Files {
            req: 4,
            files: vec![FileInfo {
                name: "a.txt".into(),
                size: 1,
                id,
                sha256: sha,
                partial: false,
            }],
        },
        Message::Manifest {
            req: 5,
            id,
            size: 1,
            chunk_size: 262_144,
            chunk_hashes: sha.0.to_vec(),
        },
        Message::Chunk {
            req: 6,
            index: 0,
            data: b"x".to_vec(),
        },
        Message::ChatOk { req: 7 },
        Message::GetPeers { req: 8 },
        Message::PeerList {
            req: 8,
            peers: vec![PeerInfo {
                id: p2p::identity::PeerId::from_public_key([7; 32]),
                name: "Carol".into(),
                addr: "127.0.0.1:4002".into(),
                mapped: false,
                last_seen_ms: 9,
            }],
        },
        Message::GetHave { req: 10, id },
        Message::Have {
            req: 10,
            complete: false,
            bitmap: vec![0b1],
        },
    ]
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    // frame_decoder: each message as a frame, then all of them in one stream, split variously.
    let mut all = vec![7u8];
    for (i, m) in every_message().iter().enumerate() {
        let mut one = vec![(i * 5) as u8];
        one.extend(encode_message(m));
        write("frame_decoder", &format!("{i:02}-{}", m.kind()), &one);
        all.extend(encode_message(m));
    }
    write("frame_decoder", "all", &all);

    // tracker_handler: handshake, register, heartbeat, list, unregister, expiry; a taken name.
    let mut t = Vec::new();
    record(&mut t, 3, b""); // Hello on slot 0
    record(&mut t, 7, b"Alice"); // Register Alice
    record(&mut t, 0, &body(&Message::Heartbeat));
    record(&mut t, 0, &body(&Message::list_peers(9)));
    record(&mut t, 3 | 8, b""); // Hello on slot 1
    record(&mut t, 7 | 8, b"Alice"); // taken
    record(&mut t, 7 | 8, b"Bob");
    record(&mut t, 4, &[200]); // 50 s later: both expire
    record(&mut t, 0 | 8, &body(&Message::Heartbeat));
    record(&mut t, 0, &body(&Message::Unregister));
    record(&mut t, 5, b""); // slot 0 closes
    write("tracker_handler", "conversation", &t);
    for (i, m) in every_message().iter().enumerate() {
        let mut one = Vec::new();
        record(&mut one, 3, b"");
        record(&mut one, 0, &body(m));
        write("tracker_handler", &format!("{i:02}-{}", m.kind()), &one);
    }

    // peer_handler, serving side: a client asks for everything a.txt has.
    let content = script::shared_content();
    let sha = Sha256::of(&content);
    let hashes: Vec<Sha256> = content.chunks(262_144).map(Sha256::of).collect();
    let id = ContentId::from_parts(content.len() as u64, 262_144, &hashes);
    let mut p = Vec::new();
    record(&mut p, 4, b"Client"); // Hello on incoming slot 0
    for m in [
        Message::ListFiles { req: 1 },
        Message::GetManifest { req: 2, id },
        Message::GetChunk {
            req: 3,
            id,
            index: 0,
        },
        Message::GetChunk {
            req: 4,
            id,
            index: 1,
        },
        Message::GetChunk {
            req: 5,
            id,
            index: 2,
        },
        Message::Chat {
            req: 6,
            text: "hello \u{1b}[2J".into(),
        },
        Message::ChatOk { req: 77 },
    ] {
        record(&mut p, 0, &body(&m));
    }
    record(&mut p, 6, b"");
    write("peer_handler", "serve", &p);

    // peer_handler, downloading side: tracker link up, Fake listed, `get Fake a.txt` answered.
    let hashes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
    let mut d = Vec::new();
    record(&mut d, 5, &[1]); // time: the node connects to the tracker
    record(&mut d, 8, b""); // connected: slot 4
    record(&mut d, 4 | 4 << 4, b""); // tracker Hello
    let answer = |m: &Message| body(m);
    record(
        &mut d,
        10 | 4 << 4,
        &answer(&Message::Registered {
            req: 0,
            ttl_secs: 30,
            relay: false,
        }),
    );
    record(
        &mut d,
        10 | 4 << 4,
        &answer(&Message::Peers {
            req: 0,
            peers: vec![PeerInfo {
                id: p2p::identity::PeerId::from_public_key([7; 32]),
                name: "Fake".into(),
                addr: "127.0.0.1:4001".into(),
                mapped: false,
                last_seen_ms: 0,
            }],
            total: None,
        }),
    );
    record(&mut d, 7, b"get Fake a.txt");
    record(&mut d, 8, b""); // connected to Fake: slot 5
    record(&mut d, 4 | 5 << 4, b"Fake");
    record(
        &mut d,
        10 | 5 << 4,
        &answer(&Message::Files {
            req: 0,
            files: vec![FileInfo {
                name: "a.txt".into(),
                size: content.len() as u64,
                id,
                sha256: sha,
                partial: false,
            }],
        }),
    );
    record(
        &mut d,
        10 | 5 << 4,
        &answer(&Message::Manifest {
            req: 0,
            id,
            size: content.len() as u64,
            chunk_size: 262_144,
            chunk_hashes: hashes,
        }),
    );
    // The node asked for both chunks; the last request is chunk 1.
    record(
        &mut d,
        10 | 5 << 4,
        &answer(&Message::Chunk {
            req: 0,
            index: 1,
            data: content[262_144..].to_vec(),
        }),
    );
    record(&mut d, 7, b"msg Fake hi");
    record(&mut d, 5, &[8]);
    write("peer_handler", "download", &d);
    println!("seeds written under corpus/");
}
