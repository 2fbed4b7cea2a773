//! Scripted nodes: a closure sees each input as a decoded message and answers through
//! [`Io`], like a misbehaving peer or tracker written at the byte level in a process test, but
//! in fake time. [`FakePeer`] is the usual impostor: it registers a name with a tracker and
//! serves files (or lies about them) as its [`Script`] fields say.

use crate::identity::PeerId;
use crate::peer::manifest::manifest_of_reader;
use crate::reactor::{Action, CloseReason, ConnId, ConnectTag, Control, Driver};
use crate::wire::{
    ContentId, ErrorCode, FileInfo, Message, PROTOCOL_VERSION, decode_message, encode_message,
};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// What a scripted node is told.
#[derive(Debug)]
pub enum Seen<'a> {
    /// Connection number `nth` (from 0) was accepted.
    Accepted {
        conn: ConnId,
        remote: SocketAddr,
        nth: usize,
    },
    Connected {
        conn: ConnId,
        tag: ConnectTag,
    },
    ConnectFailed {
        tag: ConnectTag,
        error: &'a io::Error,
    },
    Message {
        conn: ConnId,
        msg: Message,
    },
    /// A frame that does not decode.
    Garbage {
        conn: ConnId,
        body: &'a [u8],
    },
    Closed {
        conn: ConnId,
        reason: &'a CloseReason,
    },
    /// The time asked for with [`Io::wake_at`] has come.
    Timeout,
    Control(Control),
}

/// How a scripted node acts.
#[derive(Default)]
pub struct Io {
    now: Option<Instant>,
    actions: VecDeque<Action>,
    wake: Option<Instant>,
    next_tag: u64,
}

impl Io {
    /// The fake time of the input being handled.
    pub fn now(&self) -> Instant {
        self.now.expect("set before every input")
    }

    pub fn send(&mut self, conn: ConnId, msg: &Message) {
        self.actions
            .push_back(Action::Send(conn, encode_message(msg)));
    }

    /// Bytes as they are (a broken frame, a lying length prefix).
    pub fn send_raw(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.actions.push_back(Action::Send(conn, bytes));
    }

    pub fn close(&mut self, conn: ConnId) {
        self.actions.push_back(Action::Close(conn));
    }

    pub fn connect(&mut self, addr: SocketAddr) -> ConnectTag {
        self.next_tag += 1;
        let tag = ConnectTag(self.next_tag);
        self.actions.push_back(Action::Connect(addr, tag, None));
        tag
    }

    /// Asks for a [`Seen::Timeout`] at `at` (replacing any earlier request).
    pub fn wake_at(&mut self, at: Instant) {
        self.wake = Some(at);
    }
}

/// A node driven by a closure.
pub struct Script<F: FnMut(&mut Io, Seen)> {
    f: F,
    io: Io,
    accepted: usize,
}

impl<F: FnMut(&mut Io, Seen)> Script<F> {
    pub fn new(f: F) -> Script<F> {
        Script {
            f,
            io: Io::default(),
            accepted: 0,
        }
    }

    /// A first [`Seen::Timeout`] at `at` (to start something of its own: connect, register).
    pub fn waking_at(mut self, at: Instant) -> Script<F> {
        self.io.wake = Some(at);
        self
    }

    fn call(&mut self, now: Instant, seen: Seen) {
        self.io.now = Some(now);
        (self.f)(&mut self.io, seen);
    }
}

impl<F: FnMut(&mut Io, Seen)> Driver for Script<F> {
    fn handle_accepted(&mut self, conn: ConnId, remote: SocketAddr, _: PeerId, now: Instant) {
        let nth = self.accepted;
        self.accepted += 1;
        self.call(now, Seen::Accepted { conn, remote, nth });
    }

    fn handle_connected(
        &mut self,
        conn: ConnId,
        tag: ConnectTag,
        _: SocketAddr,
        _: PeerId,
        now: Instant,
    ) {
        self.call(now, Seen::Connected { conn, tag });
    }

    fn handle_connect_failed(&mut self, tag: ConnectTag, error: io::Error, now: Instant) {
        self.call(now, Seen::ConnectFailed { tag, error: &error });
    }

    fn handle_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        match decode_message(body) {
            Ok(msg) => self.call(now, Seen::Message { conn, msg }),
            Err(_) => self.call(now, Seen::Garbage { conn, body }),
        }
    }

    fn handle_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant) {
        self.call(
            now,
            Seen::Closed {
                conn,
                reason: &reason,
            },
        );
    }

    fn handle_control(&mut self, ctl: Control, now: Instant) {
        self.call(now, Seen::Control(ctl));
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.io.wake.is_some_and(|t| t <= now) {
            self.io.wake = None;
            self.call(now, Seen::Timeout);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.io.wake
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.io.actions.pop_front()
    }
}

/// A `Hello` as a tracker or a scripted peer sends it.
pub fn hello(name: &str, listen_port: Option<u16>) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        name: name.to_string(),
        listen_port,
        agent: "sim-script".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A peer that lies

/// What the fake peer answers to one `GetChunk`.
pub enum ChunkReply {
    /// These bytes as the chunk.
    Data(Vec<u8>),
    /// These bytes, then close the connection.
    DataThenClose(Vec<u8>),
    /// Close without answering.
    Close,
    /// Say nothing (the request is swallowed).
    Nothing,
    /// These bytes as they are, instead of a frame (garbage, a length prefix that lies).
    Raw(Vec<u8>),
    /// An `Error` answer with this code (a chunk index past the file's end, ...).
    Refuse(ErrorCode),
}

/// What the fake peer does to a connection, by its number (from 0), before any answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConnection {
    /// Answers as the script says.
    Serve,
    /// Reads everything and answers nothing (a frozen peer whose kernel accepted).
    Mute,
}

/// What the fake peer answers; every field may be changed by the test while it runs.
pub struct FakeScript {
    pub files: Vec<FileInfo>,
    /// `GetManifest` answers by content id (the `req` is filled in); others get `NoSuchFile`.
    pub manifests: HashMap<ContentId, Message>,
    /// `GetChunk(connection number, content id, index)` → answer.
    pub chunks: Box<dyn FnMut(usize, ContentId, u64) -> ChunkReply>,
    /// Connection number → how it is treated.
    pub connections: Box<dyn FnMut(usize) -> OnConnection>,
}

impl Default for FakeScript {
    fn default() -> Self {
        FakeScript {
            files: Vec::new(),
            manifests: HashMap::new(),
            chunks: Box::new(|_, _, _| ChunkReply::Close),
            connections: Box::new(|_| OnConnection::Serve),
        }
    }
}

impl FakeScript {
    /// Offers `content` under `name` (listing and manifest); returns its content id.
    pub fn share(&mut self, name: &str, content: &[u8]) -> ContentId {
        let m = manifest_of_reader(content, content.len() as u64)
            .expect("a manifest of bytes in memory");
        let id = ContentId::of(&m);
        self.files.push(FileInfo {
            name: name.to_string(),
            size: m.size,
            id,
            sha256: m.sha256,
            partial: false,
        });
        self.manifests.insert(id, manifest_message(&m));
        id
    }

    /// The lying seeder of issue 13: lists `content` under `name` with its true size, content
    /// id and SHA-256, but answers `GetManifest` with the chunk hashes of `forged` (bytes of the
    /// same length), whose chunks it then serves. Returns the true content id.
    pub fn share_forged(&mut self, name: &str, content: &[u8], forged: &[u8]) -> ContentId {
        assert_eq!(content.len(), forged.len(), "a forgery of the same size");
        let id = self.share(name, content);
        let m =
            manifest_of_reader(forged, forged.len() as u64).expect("a manifest of bytes in memory");
        self.manifests.insert(id, manifest_message(&m));
        id
    }

    /// Answers every chunk of `content` honestly (chunk geometry from its manifest).
    pub fn honest(content: Vec<u8>) -> impl FnMut(usize, ContentId, u64) -> ChunkReply {
        let m = manifest_of_reader(content.as_slice(), content.len() as u64)
            .expect("a manifest of bytes in memory");
        move |_, _, index| {
            let off = m.chunk_offset(index) as usize;
            let len = m.chunk_len(index).unwrap_or(0) as usize;
            ChunkReply::Data(content[off..off + len].to_vec())
        }
    }
}

/// The `Manifest` answer (its `req` filled in when sent) for `m`.
fn manifest_message(m: &crate::peer::manifest::Manifest) -> Message {
    Message::Manifest {
        req: 0,
        id: ContentId::of(m),
        size: m.size,
        chunk_size: m.chunk_size,
        chunk_hashes: m.hashes_to_wire(),
    }
}

/// Things the fake peer saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeEvent {
    /// Connection n was accepted.
    Accepted(usize),
    /// A request of this kind arrived on connection n.
    Request(usize, String),
    /// The other side closed connection n.
    ClosedByRemote(usize),
    /// We closed connection n as scripted.
    ClosedByUs(usize),
}

/// A scripted peer that registers `name` with a tracker (and heartbeats) and answers on its
/// listening address as its [`FakeScript`] says. The script and the events are shared with the
/// test.
pub struct FakePeer {
    pub script: Rc<RefCell<FakeScript>>,
    pub events: Rc<RefCell<Vec<(Instant, FakeEvent)>>>,
}

impl FakePeer {
    /// The driver to add to a `Sim` (listening on `port`), and the handles the test keeps.
    /// `now`: the sim's time (the first thing it does, at once, is to call the tracker).
    pub fn new(
        name: &str,
        tracker: SocketAddr,
        port: u16,
        script: FakeScript,
        now: Instant,
    ) -> (FakePeer, Box<dyn Driver>) {
        let script = Rc::new(RefCell::new(script));
        let events = Rc::new(RefCell::new(Vec::new()));
        let handles = FakePeer {
            script: script.clone(),
            events: events.clone(),
        };
        let name = name.to_string();
        let mut tracker_tag = None;
        let mut tracker_conn = None;
        let mut numbers: HashMap<ConnId, (usize, OnConnection)> = HashMap::new();
        let driver = Script::new(move |io: &mut Io, seen: Seen| {
            let note = |e: FakeEvent, now: Instant| events.borrow_mut().push((now, e));
            match seen {
                Seen::Control(_) => {}
                Seen::Timeout => {
                    if let Some(conn) = tracker_conn {
                        io.send(conn, &Message::Heartbeat);
                        io.wake_at(io.now() + std::time::Duration::from_secs(1));
                    } else if tracker_tag.is_none() {
                        tracker_tag = Some(io.connect(tracker));
                    }
                }
                Seen::Connected { conn, tag } if Some(tag) == tracker_tag => {
                    tracker_conn = Some(conn);
                    io.send(conn, &hello(&name, Some(port)));
                    let register = Message::Register {
                        req: 1,
                        name: name.clone(),
                        listen_port: port,
                        external: None,
                    };
                    io.send(conn, &register);
                    io.wake_at(io.now() + std::time::Duration::from_secs(1));
                }
                Seen::ConnectFailed { .. } | Seen::Connected { .. } => {}
                Seen::Accepted { conn, nth, .. } => {
                    let how = (script.borrow_mut().connections)(nth);
                    numbers.insert(conn, (nth, how));
                    note(FakeEvent::Accepted(nth), io.now());
                }
                Seen::Closed { conn, .. } => {
                    if let Some((n, _)) = numbers.remove(&conn) {
                        note(FakeEvent::ClosedByRemote(n), io.now());
                    }
                }
                Seen::Garbage { .. } => {}
                Seen::Message { conn, msg } => {
                    if Some(conn) == tracker_conn {
                        return;
                    }
                    let Some(&(n, how)) = numbers.get(&conn) else {
                        return;
                    };
                    note(FakeEvent::Request(n, msg.kind().to_string()), io.now());
                    if how == OnConnection::Mute {
                        return;
                    }
                    let mut close = false;
                    let reply = answer(&mut script.borrow_mut(), &name, port, n, msg, io, conn);
                    match reply {
                        Answer::Reply(m) => io.send(conn, &m),
                        Answer::ReplyThenClose(m) => {
                            io.send(conn, &m);
                            close = true;
                        }
                        Answer::Close => close = true,
                        Answer::Nothing => {}
                    }
                    if close {
                        numbers.remove(&conn);
                        io.close(conn);
                        note(FakeEvent::ClosedByUs(n), io.now());
                    }
                }
            }
        });
        // The first timeout (at once) connects to the tracker.
        (handles, Box::new(driver.waking_at(now)))
    }

    /// Events so far.
    pub fn events(&self) -> Vec<FakeEvent> {
        self.events
            .borrow()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
}

enum Answer {
    Reply(Message),
    ReplyThenClose(Message),
    Close,
    Nothing,
}

fn answer(
    s: &mut FakeScript,
    name: &str,
    port: u16,
    n: usize,
    msg: Message,
    io: &mut Io,
    conn: ConnId,
) -> Answer {
    let reply = match msg {
        Message::Hello { .. } => hello(name, Some(port)),
        Message::ListFiles { req } => Message::Files {
            req,
            files: s.files.clone(),
        },
        Message::GetManifest { req, id } => match s.manifests.get(&id).cloned() {
            Some(Message::Manifest {
                size,
                chunk_size,
                chunk_hashes,
                ..
            }) => Message::Manifest {
                req,
                id,
                size,
                chunk_size,
                chunk_hashes,
            },
            _ => Message::Error {
                req: Some(req),
                code: ErrorCode::NoSuchFile,
                message: "no such file".into(),
            },
        },
        Message::GetChunk { req, id, index } => match (s.chunks)(n, id, index) {
            ChunkReply::Data(data) => Message::Chunk { req, index, data },
            ChunkReply::DataThenClose(data) => {
                return Answer::ReplyThenClose(Message::Chunk { req, index, data });
            }
            ChunkReply::Close => return Answer::Close,
            ChunkReply::Nothing => return Answer::Nothing,
            ChunkReply::Raw(bytes) => {
                io.send_raw(conn, bytes);
                return Answer::Nothing;
            }
            ChunkReply::Refuse(code) => Message::Error {
                req: Some(req),
                code,
                message: format!("refused chunk {index}"),
            },
        },
        Message::Chat { req, .. } => Message::ChatOk { req },
        Message::GetHave { req, .. } => Message::Have {
            req,
            complete: true,
            bitmap: Vec::new(),
        },
        Message::GetPeers { req } => Message::PeerList {
            req,
            peers: Vec::new(),
        },
        Message::ListFolders { req } => Message::Folders {
            req,
            folders: Vec::new(),
        },
        _ => return Answer::Nothing,
    };
    Answer::Reply(reply)
}
