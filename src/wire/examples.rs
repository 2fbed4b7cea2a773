//! PROTOCOL.md §13's worked examples (and §19's), checked against the encoder: every frame printed there
//! on one line must be exactly what `encode_message` writes, so the text an independent
//! implementation is written from cannot drift from the code.

use super::{ContentId, FileInfo, Message, PROTOCOL_VERSION, Sha256, encode_message};

const PROTOCOL: &str = include_str!("../../PROTOCOL.md");

/// Bytes as §13 prints them: lowercase hex pairs separated by one space.
fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `H` of §13: the SHA-256 of the 4 bytes `abcd`, and their content id (one chunk).
fn abcd() -> (Sha256, ContentId) {
    let h = Sha256::of(b"abcd");
    (h, ContentId::from_parts(4, 262_144, &[h]))
}

fn examples() -> Vec<(&'static str, Message)> {
    let (h, id) = abcd();
    vec![
        (
            "13.1 peer Hello",
            Message::Hello {
                version: PROTOCOL_VERSION,
                name: "Alice".into(),
                listen_port: Some(4000),
                agent: "p2p/0.1.0".into(),
            },
        ),
        (
            "13.1 tracker Hello",
            Message::Hello {
                version: PROTOCOL_VERSION,
                name: String::new(),
                listen_port: None,
                agent: "p2p-tracker/0.1.0".into(),
            },
        ),
        ("13.2 Heartbeat", Message::Heartbeat),
        ("13.2 Unregister", Message::Unregister),
        (
            "13.3 Register",
            Message::Register {
                req: 1,
                name: "Alice".into(),
                listen_port: 4000,
                external: None,
            },
        ),
        (
            "19.2 Register with a mapped address",
            Message::Register {
                req: 1,
                name: "Alice".into(),
                listen_port: 7001,
                external: Some("203.0.113.5:40123".into()),
            },
        ),
        (
            "13.3 Registered",
            Message::Registered {
                req: 1,
                ttl_secs: 30,
                relay: false,
            },
        ),
        ("13.4 ListPeers", Message::list_peers(2)),
        ("13.5 ListFiles", Message::ListFiles { req: 3 }),
        (
            "13.5 Files",
            Message::Files {
                req: 3,
                files: vec![FileInfo {
                    name: "a.txt".into(),
                    size: 4,
                    id,
                    sha256: h,
                    partial: false,
                }],
            },
        ),
        ("13.6 GetManifest", Message::GetManifest { req: 4, id }),
        (
            "13.6 Manifest",
            Message::Manifest {
                req: 4,
                id,
                size: 4,
                chunk_size: 262_144,
                chunk_hashes: h.0.to_vec(),
            },
        ),
        (
            "13.7 GetChunk",
            Message::GetChunk {
                req: 5,
                id,
                index: 0,
            },
        ),
        (
            "13.8 Chunk",
            Message::Chunk {
                req: 5,
                index: 0,
                data: b"abcd".to_vec(),
            },
        ),
        (
            "18.7 RelayOpen",
            Message::RelayOpen {
                req: 1,
                peer: super::PeerId::from_public_key([0xbb; 32]),
                punch: None,
            },
        ),
        (
            "18.7 RelayOffer",
            Message::RelayOffer {
                session: 7,
                from: super::PeerId::from_public_key([0xaa; 32]),
            },
        ),
        (
            "18.7 RelayJoin",
            Message::RelayJoin {
                session: 7,
                punch: None,
            },
        ),
        (
            "18.7 RelayStart to the opener",
            Message::RelayStart {
                session: 7,
                peer: super::PeerId::from_public_key([0xbb; 32]),
                addr: None,
            },
        ),
        (
            "18.8 RelayOpen with punch",
            Message::RelayOpen {
                req: 1,
                peer: super::PeerId::from_public_key([0xbb; 32]),
                punch: Some(7001),
            },
        ),
        (
            "18.8 RelayJoin with punch",
            Message::RelayJoin {
                session: 7,
                punch: Some(7002),
            },
        ),
        (
            "18.8 RelayStart with addr",
            Message::RelayStart {
                session: 7,
                peer: super::PeerId::from_public_key([0xbb; 32]),
                addr: Some("203.0.113.9:7002".into()),
            },
        ),
        (
            "18.7 Registered by a relay",
            Message::Registered {
                req: 1,
                ttl_secs: 30,
                relay: true,
            },
        ),
    ]
}

#[test]
fn every_worked_example_is_what_the_encoder_writes() {
    let missing: Vec<String> = examples()
        .into_iter()
        .map(|(name, msg)| (name, spaced_hex(&encode_message(&msg))))
        .filter(|(_, hex)| !PROTOCOL.contains(hex.as_str()))
        .map(|(name, hex)| format!("§{name}: {hex}"))
        .collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md lacks these frames:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_documented_content_id_of_abcd_is_the_one_in_the_examples() {
    let (_, id) = abcd();
    assert_eq!(
        id.to_string(),
        "cid1:0df8cf7640d969053a8766dbb80922068a4904079c1c5d18c53df7db61086ba8"
    );
    assert!(PROTOCOL.contains(&spaced_hex(&id.0)));
}
