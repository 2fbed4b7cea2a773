//! `Peers` answers, bounded and built from bytes encoded once per registration.
//!
//! Why: with 10,000 registrations an answer listing everyone was ~520 KB, and building it
//! (formatting every address, two `String`s per entry, then CBOR) capped the tracker at a few
//! hundred answers a second. Like BitTorrent's `numwant`, an answer now holds at most
//! [`MAX_LISTED`] peers: the names the asker wants first, then a uniform random sample of the
//! rest (peers find the others by exchange, PROTOCOL.md §14). Each registration keeps its
//! `PeerInfo` encoded up to the last field (`entry_prefix`), rebuilt only when its name or
//! address changes; an answer copies those bytes and appends the one live number,
//! `last_seen_ms`.
//!
//! The bytes are exactly what `encode_message` writes for the same `Message::Peers` (a test
//! below compares them), so the wire is unchanged for every decoder.

use super::registry::Registry;
use crate::identity::PeerId;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// Most peers in one `Peers` answer, whatever `want` says. 200 entries of at most ~130 bytes
/// keep an answer under 26 KB.
pub const MAX_LISTED: usize = 200;

/// `PeerInfo{name, id, addr, last_seen_ms}` as CBOR, without the value of `last_seen_ms`.
pub fn entry_prefix(name: &str, key: &PeerId, addr: SocketAddr, mapped: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(88 + name.len());
    // map(4), or map(5) with `mapped` (serde leaves a false one out).
    out.push(if mapped { 0xa5 } else { 0xa4 });
    put_text(&mut out, "name");
    put_text(&mut out, name);
    put_text(&mut out, "id");
    put_head(&mut out, 2, 32);
    out.extend_from_slice(key.public_key());
    put_text(&mut out, "addr");
    // Formatting happens once per registration, never per answer. 47 bytes is the longest
    // `[v6%scope]:port` form std writes without a scope name, so one pass nearly always fits.
    let mut text = Vec::with_capacity(48);
    // Writing into a Vec cannot fail.
    let _ = write!(text, "{addr}");
    put_head(&mut out, 3, text.len() as u64);
    out.extend_from_slice(&text);
    if mapped {
        put_text(&mut out, "mapped");
        out.push(0xf5); // true
    }
    put_text(&mut out, "last_seen_ms");
    out
}

/// A CBOR head: major type `major` with argument `n`, in the shortest form (PROTOCOL.md §3.5).
fn put_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// SplitMix64: a tiny, fast generator, plenty for picking a sample (nothing here is secret).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0), by Lemire's multiply-shift; the bias is below 2^-40 for
    /// any table this size.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// What a `ListPeers` asks for.
pub struct Ask<'a> {
    pub req: u64,
    pub want: Option<u32>,
    pub names: &'a [String],
}

/// Builds answers; keeps its buffers between them so an answer allocates only its frame.
#[derive(Debug)]
pub struct Lister {
    rng: Rng,
    /// One bit per registry slot: already in the answer being built. All clear between answers.
    taken: Vec<u64>,
    /// Slots of the answer being built, in answer order.
    chosen: Vec<usize>,
}

impl Lister {
    pub fn new(seed: u64) -> Lister {
        Lister {
            rng: Rng(seed),
            taken: Vec::new(),
            chosen: Vec::new(),
        }
    }

    /// The whole `Peers` frame (length prefix included) answering `ask` at `now`.
    pub fn answer(&mut self, registry: &Registry, ask: &Ask, now: Instant) -> Vec<u8> {
        self.choose(registry, ask);
        let frame = encode(registry, ask.req, &self.chosen, now);
        for &slot in &self.chosen {
            self.taken[slot / 64] &= !(1 << (slot % 64));
        }
        frame
    }

    fn take(&mut self, slot: usize) -> bool {
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if self.taken[word] & bit != 0 {
            return false;
        }
        self.taken[word] |= bit;
        self.chosen.push(slot);
        true
    }

    /// Fills `chosen`: the registered names asked for (at most `MAX_LISTED`, duplicates once),
    /// then others until the answer holds `min(want, MAX_LISTED)` peers: everyone else in name
    /// order if they all fit, a uniform random sample otherwise.
    fn choose(&mut self, registry: &Registry, ask: &Ask) {
        let n = registry.len();
        self.chosen.clear();
        self.taken.resize(n.div_ceil(64), 0);
        let limit = ask.want.map_or(MAX_LISTED, |w| MAX_LISTED.min(w as usize));
        for name in ask.names.iter().take(MAX_LISTED) {
            if let Some(slot) = registry.slot_of(name) {
                self.take(slot);
            }
        }
        let named = self.chosen.len();
        let room = limit.saturating_sub(named);
        let others = n - named;
        if room >= others {
            for slot in registry.slots_by_name() {
                self.take(slot);
            }
            return;
        }
        // Rejection sampling: `room` < `others` and `named` ≤ MAX_LISTED, so the expected
        // number of draws stays a small multiple of n even in the worst case (room = others-1).
        while self.chosen.len() < named + room {
            let slot = self.rng.below(n);
            self.take(slot);
        }
    }
}

/// `{"Peers": {"req": req, "peers": [...], "total": n}}` framed, for the given slots.
fn encode(registry: &Registry, req: u64, chosen: &[usize], now: Instant) -> Vec<u8> {
    let slots = registry.slots();
    let entries: usize = chosen.iter().map(|&s| slots[s].wire.len() + 9).sum();
    let mut out = Vec::with_capacity(4 + 48 + entries);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0xa1, 0x65, b'P', b'e', b'e', b'r', b's', 0xa3]);
    put_text(&mut out, "req");
    put_head(&mut out, 0, req);
    put_text(&mut out, "peers");
    put_head(&mut out, 4, chosen.len() as u64);
    for &s in chosen {
        let slot = &slots[s];
        out.extend_from_slice(&slot.wire);
        let ms = now
            .saturating_duration_since(slot.reg.last_seen)
            .as_millis();
        put_head(&mut out, 0, u64::try_from(ms).unwrap_or(u64::MAX));
    }
    put_text(&mut out, "total");
    put_head(&mut out, 0, registry.len() as u64);
    // An answer is at most MAX_LISTED entries of ~130 bytes: far below MAX_FRAME_LEN.
    let body = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&body.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of its own for each test connection.
    fn key_of(conn: crate::reactor::ConnId) -> PeerId {
        PeerId::from_public_key([conn.index as u8; 32])
    }
    use crate::wire::{Message, PeerInfo, encode_message};

    #[test]
    fn heads_are_shortest_form() {
        for (n, want) in [
            (0u64, vec![0x00]),
            (23, vec![0x17]),
            (24, vec![0x18, 24]),
            (1500, vec![0x19, 0x05, 0xdc]),
            (70_000, vec![0x1a, 0, 1, 0x11, 0x70]),
            (
                u64::MAX,
                vec![0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ] {
            let mut out = Vec::new();
            put_head(&mut out, 0, n);
            assert_eq!(out, want, "{n}");
        }
    }

    #[test]
    fn hand_built_entries_match_the_serde_encoding() {
        let t0 = Instant::now();
        let mut r = Registry::new(10, 10);
        let addrs: [SocketAddr; 3] = [
            "192.168.1.2:5000".parse().unwrap(),
            "[2001:db8::5]:65535".parse().unwrap(),
            "10.0.0.1:1".parse().unwrap(),
        ];
        let names = ["Bob", &"x".repeat(32), "Zoë"];
        for (i, (name, addr)) in names.iter().zip(addrs).enumerate() {
            r.register(
                crate::reactor::ConnId::fake(i),
                name.to_string(),
                addr,
                key_of(crate::reactor::ConnId::fake(i)),
                t0,
            )
            .unwrap();
        }
        let now = t0 + std::time::Duration::from_millis(1500);
        for req in [0, 2, 300, u64::MAX] {
            let chosen: Vec<usize> = r.slots_by_name().collect();
            let peers = chosen
                .iter()
                .map(|&s| PeerInfo {
                    name: r.slots()[s].name.clone(),
                    id: r.slots()[s].reg.key,
                    addr: r.slots()[s].reg.addr.to_string(),
                    mapped: false,
                    last_seen_ms: 1500,
                })
                .collect();
            let want = encode_message(&Message::Peers {
                req,
                peers,
                total: Some(3),
            });
            assert_eq!(encode(&r, req, &chosen, now), want);
        }
    }

    /// PROTOCOL.md §13.4 gives these frames byte for byte; an independent implementation
    /// is written from them.
    #[test]
    fn protocol_examples_are_what_we_encode() {
        let hex = |m: &Message| hex::encode(encode_message(m));
        let ask = Message::ListPeers {
            req: 2,
            want: Some(50),
            names: vec!["Bob".into()],
        };
        assert_eq!(
            hex(&ask),
            "00000023a1694c6973745065657273a3637265710264776\
             16e741832656e616d65738163426f62"
        );
        let answer = Message::Peers {
            req: 2,
            peers: vec![PeerInfo {
                name: "Bob".into(),
                id: PeerId::from_public_key([0x42; 32]),
                addr: "192.168.1.2:5000".into(),
                mapped: false,
                last_seen_ms: 1500,
            }],
            total: Some(1),
        };
        assert_eq!(
            hex(&answer),
            "00000070a1655065657273a36372657102657065657273\
             81a4646e616d6563426f62626964582042424242424242\
             4242424242424242424242424242424242424242424242\
             42426461646472703139322e3136382e312e323a353030\
             306c6c6173745f7365656e5f6d731905dc65746f74616c\
             01"
        );
    }
}
