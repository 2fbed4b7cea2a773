//! A whole peer (`PeerNode`) driven like the reactor drives it: up to four incoming
//! connections, the outgoing ones it asks for (tracker, other peers), arbitrary frames,
//! answers patched to match its real request ids, user commands and clock jumps (input format
//! in `script.rs`). It shares `a.txt` and downloads into a fresh folder per input.
//!
//! Nothing may panic; everything it sends must be whole, decodable frames within the size
//! limit; nothing may appear in the downloads folder but plain names and its own state.
#![no_main]

mod script;

use libfuzzer_sys::fuzz_target;
use p2p::peer::index::SharedIndex;
use p2p::peer::{Mode, PeerConfig, PeerNode};
use p2p::reactor::{Action, CloseReason, ConnId, Control, Driver};
use p2p::repl::Ui;
use p2p::wire::{FrameDecoder, MAX_FRAME_LEN, Message, PROTOCOL_VERSION, decode_message};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SLOTS: usize = 8; // 0..4 incoming, 4..8 outgoing

/// Folders go to tmpfs where there is one: the peer fsyncs its hash cache and resume records,
/// and a disk fsync per input would cap the rate at a few dozen inputs a second.
fn scratch() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

fn shared_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().keep();
        std::fs::write(dir.join("a.txt"), script::shared_content()).unwrap();
        std::fs::write(dir.join("b.txt"), b"bee\n").unwrap();
        dir
    })
}

struct Harness {
    node: PeerNode,
    now: Instant,
    conns: [Option<ConnId>; SLOTS],
    generation: u64,
    /// The last request id the node sent on each connection.
    last_req: HashMap<ConnId, u64>,
    connects: VecDeque<(SocketAddr, p2p::reactor::ConnectTag)>,
    exited: bool,
}

impl Harness {
    fn incoming(&mut self, slot: usize) -> Option<ConnId> {
        if let Some(c) = self.conns[slot] {
            return Some(c);
        }
        if slot >= 4 {
            return None;
        }
        self.generation += 1;
        let c = ConnId {
            index: slot,
            generation: self.generation,
        };
        let remote = SocketAddr::from(([10, 0, 0, slot as u8 + 1], 6000));
        // Each fuzzed connection proves a key of its own (slot-numbered).
        let key = p2p::identity::PeerId::from_public_key([slot as u8 + 1; 32]);
        self.node.handle_accepted(c, remote, key, self.now);
        self.conns[slot] = Some(c);
        Some(c)
    }

    fn drain(&mut self) {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Send(c, bytes) => {
                    let mut dec = FrameDecoder::new();
                    dec.extend(&bytes);
                    while let Some(body) = dec.next_frame().expect("peer sent a bad frame") {
                        assert!(body.len() <= MAX_FRAME_LEN);
                        let msg = decode_message(body).expect("peer sent an undecodable message");
                        if let Some(req) = script::request_id(&msg) {
                            self.last_req.insert(c, req);
                        }
                    }
                    assert_eq!(dec.buffered(), 0, "peer sent a partial frame");
                }
                Action::Close(c) => {
                    if let Some(slot) = self.conns.iter().position(|s| *s == Some(c)) {
                        self.conns[slot] = None;
                        self.node.handle_closed(c, CloseReason::Local, self.now);
                    }
                }
                Action::Connect(addr, tag, _) => self.connects.push_back((addr, tag)),
                Action::Exit(_) => self.exited = true,
                // Datagrams and whatever else the reactor learns later: nothing to check here.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let downloads = scratch();
    // The hash cache lives beside the shared folder, so only the first input hashes a.txt.
    let cache = shared_dir().with_extension("hash-cache");
    let (index, _) = SharedIndex::scan(shared_dir(), &cache).unwrap();
    let cfg = PeerConfig {
        name: "Me".into(),
        tracker: SocketAddr::from(([127, 0, 0, 1], 9000)),
        tracker_id: None,
        shared_dir: shared_dir().clone(),
        downloads_dir: downloads.path().to_path_buf(),
        mode: Mode::Serve,
        retry_for: Duration::from_secs(2),
        bootstrap: Vec::new(),
        lan: None,
        resume_on_start: false,
        rate_limits: Default::default(),
        dht: None,
    };
    let now = Instant::now();
    let mut h = Harness {
        node: {
            let mut node = PeerNode::new(
                cfg,
                p2p::identity::PeerId::from_public_key([0xee; 32]),
                index,
                4000,
                Ui::new(false),
                now,
            );
            node.set_parser(p2p::repl::parse);
            node
        },
        now,
        conns: [None; SLOTS],
        generation: 0,
        last_req: HashMap::new(),
        connects: VecDeque::new(),
        exited: false,
    };
    for r in script::records(data) {
        if h.exited {
            break;
        }
        let slot = usize::from(r.op >> 4) % SLOTS;
        match r.op & 15 {
            4 => {
                if let Some(c) = h.incoming(slot) {
                    let hello = script::body(&Message::Hello {
                        version: PROTOCOL_VERSION,
                        name: String::from_utf8_lossy(r.body).into_owned(),
                        listen_port: Some(4001),
                        agent: "fuzz".into(),
                    });
                    h.node.handle_frame(c, &hello, h.now);
                }
            }
            5 => {
                let steps = r.body.first().copied().unwrap_or(1);
                h.now += Duration::from_millis(u64::from(steps) * 250);
                h.node.handle_timeout(h.now);
            }
            6 => {
                if let Some(c) = h.conns[slot].take() {
                    h.node.handle_closed(c, CloseReason::RemoteClosed, h.now);
                }
            }
            7 => {
                let line = String::from_utf8_lossy(r.body).into_owned();
                h.node.handle_control(Control::Line(line), h.now);
            }
            8 => {
                let free = (4..SLOTS).find(|&s| h.conns[s].is_none());
                if let (Some(slot), Some((addr, tag))) = (free, h.connects.pop_front()) {
                    h.generation += 1;
                    let c = ConnId {
                        index: slot,
                        generation: h.generation,
                    };
                    h.conns[slot] = Some(c);
                    let key = p2p::identity::PeerId::from_public_key([0x77; 32]);
                    h.node.handle_connected(c, tag, addr, key, h.now);
                }
            }
            9 => {
                if let Some((_, tag)) = h.connects.pop_front() {
                    let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    h.node.handle_connect_failed(tag, e, h.now);
                }
            }
            10 => {
                if let (Some(c), Ok(msg)) = (h.conns[slot], decode_message(r.body)) {
                    let req = h.last_req.get(&c).copied().unwrap_or(0);
                    let body = script::body(&script::with_req(msg, req));
                    h.node.handle_frame(c, &body, h.now);
                }
            }
            _ => {
                if let Some(c) = h.incoming(slot) {
                    h.node.handle_frame(c, r.body, h.now);
                }
            }
        }
        h.drain();
    }
    // Only plain names and our own state folder in downloads/.
    for entry in std::fs::read_dir(downloads.path()).unwrap() {
        let name = entry
            .unwrap()
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        assert!(
            name == ".p2p"
                || p2p::names::check_file_name(
                    name.trim_start_matches('.')
                        .trim_end_matches(p2p::names::PARTIAL_SUFFIX)
                )
                .is_ok(),
            "unexpected entry {name:?} in downloads/"
        );
    }
});
