//! Byte-level tools for the hardening tests: frames over secure links on std TCP (the
//! library's own `p2p::wire` codec and `p2p::secure::SecureStream`), connections from chosen
//! loopback source addresses, a raised open-file limit, and a misbehaving peer that registers
//! with a real tracker and answers whatever the test scripts.

// Each test binary uses a different subset.
#![allow(dead_code)]

use p2p::identity::Identity;
use p2p::secure::Role;
pub use p2p::secure::SecureStream;
use p2p::wire::{
    ContentId, ErrorCode, FileInfo, FrameDecoder, Message, PROTOCOL_VERSION, decode_message,
    encode_message,
};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Frames over std TCP

/// A byte stream frames go over: a secure link, or (for what a peer must refuse before any
/// handshake, or bytes that are no handshake at all) bare TCP.
pub trait Stream: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Stream for SecureStream {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

/// A secure link to `dst` with a key of its own.
pub fn secure(dst: SocketAddr) -> io::Result<SecureStream> {
    SecureStream::connect(dst)
}

/// A secure link to `dst` from the loopback address `src` (see [`connect_from`]).
pub fn secure_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<SecureStream> {
    let identity = Identity::generate().map_err(io::Error::other)?;
    SecureStream::handshake(connect_from(src, dst)?, Role::Initiator, &identity, None)
}

/// A client past both handshakes with a peer, as "Probe", reads bounded by 10 s.
pub fn probe(addr: SocketAddr) -> SecureStream {
    let mut s = secure(addr).unwrap();
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send(&mut s, &hello("Probe")).unwrap();
    assert!(matches!(recv(&mut s).unwrap(), Message::Hello { .. }));
    s
}

pub fn send(s: &mut impl Write, msg: &Message) -> io::Result<()> {
    s.write_all(&encode_message(msg))
}

/// Reads one whole frame and decodes it. `UnexpectedEof` when the other side closed.
pub fn recv(s: &mut impl Read) -> io::Result<Message> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > p2p::wire::MAX_FRAME_LEN {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    decode_message(&body).map_err(|e| io::Error::other(e.to_string()))
}

/// Reads frames until one matches `pred` (bounded by the stream's read timeout).
pub fn recv_until(s: &mut impl Read, pred: impl Fn(&Message) -> bool) -> io::Result<Message> {
    loop {
        let msg = recv(s)?;
        if pred(&msg) {
            return Ok(msg);
        }
    }
}

pub fn hello(name: &str) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        name: name.to_string(),
        listen_port: None,
        agent: "hardening-test".to_string(),
    }
}

/// What happened to a connection the other side was supposed to close (or keep open).
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// It sent an `Error` with this code, then closed.
    ErrorThenClosed(ErrorCode),
    /// Closed with no frame (EOF or reset).
    Closed,
    /// Still open after the wait.
    Open,
}

/// Reads until the other side closes, up to `wait`; reports the last `Error` code seen.
pub fn ending(s: &mut impl Stream, wait: Duration) -> Ending {
    let deadline = Instant::now() + wait;
    let mut dec = FrameDecoder::new();
    let mut code = None;
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ending::Open;
        }
        s.tcp()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                dec.extend(&buf[..n]);
                while let Ok(Some(body)) = dec.next_frame() {
                    if let Ok(Message::Error { code: c, .. }) = decode_message(body) {
                        code = Some(c);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ending::Open;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    match code {
        Some(c) => Ending::ErrorThenClosed(c),
        None => Ending::Closed,
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets and descriptors

/// Raises this process's open-file soft limit to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    p2p::reactor::limits::raise_fd_limit().expect("getrlimit")
}

/// A TCP connection to `dst` from the loopback address `src` (any of 127.0.0.0/8 works on
/// Linux without configuration), so one test can look like many hosts.
pub fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        return Err(io::Error::other("IPv4 only"));
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we create and immediately hand to TcpStream,
    // which owns (and closes) it from then on; the sockaddr structs live on our stack.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let src = sockaddr(src, 0);
        if libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let dst = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// The `i`-th source address of a pool spread over 127.1.x.y, `per_ip` connections each.
pub fn source_ip(i: usize, per_ip: usize) -> Ipv4Addr {
    let host = i / per_ip;
    Ipv4Addr::new(127, 1, (host / 250) as u8, (host % 250 + 1) as u8)
}

/// Resident memory of a process in KiB (from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// A misbehaving peer

/// What the fake peer answers to one `GetChunk`.
pub enum ChunkReply {
    /// These bytes as the chunk.
    Data(Vec<u8>),
    /// These bytes, then close the connection (gracefully: see `serve`).
    DataThenClose(Vec<u8>),
    /// Close without answering.
    Close,
}

/// What the fake peer does; every field may be changed by the test before a download.
pub struct Script {
    pub files: Vec<FileInfo>,
    /// `GetManifest` answers by content id (the `req` is filled in); others get `NoSuchFile`.
    pub manifests: HashMap<ContentId, Message>,
    /// `GetChunk(content id, index)` → answer.
    pub chunks: Box<dyn Fn(ContentId, u64) -> ChunkReply + Send>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            files: Vec::new(),
            manifests: HashMap::new(),
            chunks: Box::new(|_, _| ChunkReply::Close),
        }
    }
}

impl Script {
    /// Offers `content` under `name` honestly (listing, manifest, chunks of 256 KiB).
    pub fn share(&mut self, name: &str, content: &[u8]) -> ContentId {
        let m = p2p::peer::manifest::manifest_of_reader(content, content.len() as u64).unwrap();
        let id = ContentId::of(&m);
        self.files.push(FileInfo {
            name: name.to_string(),
            size: m.size,
            id,
            sha256: m.sha256,
            partial: false,
        });
        self.manifests.insert(
            id,
            Message::Manifest {
                req: 0,
                id,
                size: m.size,
                chunk_size: m.chunk_size,
                chunk_hashes: m.hashes_to_wire(),
            },
        );
        id
    }
}

/// Events the fake peer reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeEvent {
    /// Connection number n was accepted.
    Accepted(usize),
    /// Request `kind` arrived on connection n.
    Request(usize, String),
    /// The downloader closed connection n (EOF or reset).
    ClosedByRemote(usize),
    /// We closed connection n as scripted.
    ClosedByUs(usize),
}

/// A peer written against the wire format by hand: registers `name` with a real tracker,
/// accepts connections on 127.0.0.1 and answers as its [`Script`] says.
pub struct FakePeer {
    pub addr: SocketAddr,
    pub script: Arc<Mutex<Script>>,
    pub events: Receiver<FakeEvent>,
    _tracker_conn: SecureStream,
}

impl FakePeer {
    pub fn start(tracker: SocketAddr, name: &str, script: Script) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let identity = Arc::new(Identity::generate().unwrap());
        let tcp = TcpStream::connect(tracker).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut t = SecureStream::handshake(tcp, Role::Initiator, &identity, None).unwrap();
        send(&mut t, &hello(name)).unwrap();
        recv_until(&mut t, |m| matches!(m, Message::Hello { .. })).unwrap();
        send(
            &mut t,
            &Message::Register {
                req: 1,
                name: name.to_string(),
                listen_port: addr.port(),
                external: None,
            },
        )
        .unwrap();
        let reply = recv(&mut t).unwrap();
        assert!(
            matches!(reply, Message::Registered { .. }),
            "fake peer not registered: {reply:?}"
        );
        let script = Arc::new(Mutex::new(script));
        let (tx, events) = channel();
        let shared = Arc::clone(&script);
        let name = name.to_string();
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let _ = tx.send(FakeEvent::Accepted(n));
                let (script, tx, name) = (Arc::clone(&shared), tx.clone(), name.clone());
                let identity = Arc::clone(&identity);
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                    match SecureStream::handshake(stream, Role::Responder, &identity, None) {
                        Ok(s) => serve(n, s, &name, &script, &tx),
                        Err(_) => {
                            let _ = tx.send(FakeEvent::ClosedByRemote(n));
                        }
                    }
                });
            }
        });
        FakePeer {
            addr,
            script,
            events,
            _tracker_conn: t,
        }
    }

    /// Waits for an event matching `pred`, returning every event seen up to it.
    pub fn wait_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&FakeEvent) -> bool,
    ) -> Vec<FakeEvent> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    let hit = pred(&e);
                    seen.push(e);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("fake peer: no matching event within {timeout:?}; saw {seen:?}"),
            }
        }
    }

    /// Every event so far, without waiting.
    pub fn events_so_far(&self) -> Vec<FakeEvent> {
        self.events.try_iter().collect()
    }
}

fn serve(
    n: usize,
    mut s: SecureStream,
    name: &str,
    script: &Mutex<Script>,
    tx: &Sender<FakeEvent>,
) {
    let closed_by_remote = |tx: &Sender<FakeEvent>| {
        let _ = tx.send(FakeEvent::ClosedByRemote(n));
    };
    loop {
        let msg = match recv(&mut s) {
            Ok(m) => m,
            Err(_) => return closed_by_remote(tx),
        };
        let _ = tx.send(FakeEvent::Request(n, msg.kind().to_string()));
        let reply = match msg {
            Message::Hello { .. } => hello(name),
            Message::ListFiles { req } => Message::Files {
                req,
                files: script.lock().unwrap().files.clone(),
            },
            Message::GetManifest { req, id } => {
                match script.lock().unwrap().manifests.get(&id).cloned() {
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
                }
            }
            Message::GetChunk { req, id, index } => {
                let answer = (script.lock().unwrap().chunks)(id, index);
                match answer {
                    ChunkReply::Data(data) => Message::Chunk { req, index, data },
                    ChunkReply::DataThenClose(data) => {
                        let _ = send(&mut s, &Message::Chunk { req, index, data });
                        let _ = s.flush();
                        // A hang-up that delivers what was sent: the end of our stream goes
                        // out after the chunk, and the requests already sent to us are read
                        // (until the downloader closes too) instead of left unread, which
                        // makes the kernel answer with a reset that can discard the chunk on
                        // the downloader's side before it is read. (The test then failed now
                        // and then on a loaded machine: every reconnect lost its only chunk.)
                        let _ = s.get_ref().shutdown(std::net::Shutdown::Write);
                        let _ = tx.send(FakeEvent::ClosedByUs(n));
                        let _ = s.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
                        let mut sink = [0u8; 4096];
                        while matches!(s.read(&mut sink), Ok(1..)) {}
                        return;
                    }
                    ChunkReply::Close => {
                        let _ = s.get_ref().shutdown(std::net::Shutdown::Both);
                        let _ = tx.send(FakeEvent::ClosedByUs(n));
                        return;
                    }
                }
            }
            Message::Chat { req, .. } => Message::ChatOk { req },
            Message::GetHave { req, .. } => Message::Have {
                req,
                complete: true,
                bitmap: Vec::new(),
            },
            Message::ListFolders { req } => Message::Folders {
                req,
                folders: Vec::new(),
            },
            _ => continue,
        };
        if send(&mut s, &reply).is_err() {
            return closed_by_remote(tx);
        }
    }
}
