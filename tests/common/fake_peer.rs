//! A peer written against the protocol with the library's codec (`p2p::wire`), for tests that
//! need one that misbehaves: it can corrupt every chunk it sends, or stop answering chunk
//! requests after a number of them until the test releases it. Blocking std sockets under the
//! library's secure links (`p2p::secure::SecureStream`, with a key of its own), one thread per
//! connection; everything stops when the `FakePeer` is dropped.

use p2p::identity::Identity;
use p2p::peer::manifest::{Manifest, manifest_of_reader};
use p2p::secure::{Role, SecureStream};
use p2p::wire::{
    ContentId, FileInfo, FolderEntry, FolderId, FolderInfo, Message, PROTOCOL_VERSION,
    decode_message, encode_message,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Serves the right bytes.
    Honest,
    /// Flips a byte in every chunk it sends (the length stays right).
    CorruptChunks,
    /// Serves this many chunks, then leaves chunk requests unanswered until `release()`.
    StallAfter(u64),
}

pub struct FakePeer {
    pub name: String,
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    /// Chunks sent so far.
    pub served: Arc<AtomicU64>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
}

struct Shared {
    identity: Identity,
    name: String,
    file_name: String,
    content: Vec<u8>,
    manifest: Manifest,
    behaviour: Behaviour,
    /// Folders it lists (`ListFolders`) and whose listings it serves in one page, whatever
    /// they hold: a hostile peer's.
    folders: Vec<(String, FolderId, Vec<FolderEntry>)>,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl FakePeer {
    /// Listens on 127.0.0.1:0, registers NAME with the tracker and serves `file_name`.
    pub fn start(
        name: &str,
        tracker: SocketAddr,
        file_name: &str,
        content: Vec<u8>,
        behaviour: Behaviour,
    ) -> FakePeer {
        FakePeer::start_with_folders(name, tracker, file_name, content, behaviour, Vec::new())
    }

    /// [`FakePeer::start`], listing `folders` too (name, the id it claims, its entries).
    pub fn start_with_folders(
        name: &str,
        tracker: SocketAddr,
        file_name: &str,
        content: Vec<u8>,
        behaviour: Behaviour,
        folders: Vec<(String, FolderId, Vec<FolderEntry>)>,
    ) -> FakePeer {
        let manifest = manifest_of_reader(content.as_slice(), content.len() as u64).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake peer");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            identity: Identity::generate().expect("a key"),
            name: name.to_string(),
            file_name: file_name.to_string(),
            content,
            manifest,
            behaviour,
            folders,
            stop: stop.clone(),
            release: release.clone(),
            served: served.clone(),
            connections: connections.clone(),
        });
        register(&shared, tracker, addr.port());
        let s = shared.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        thread::spawn(move || {
                            let _ = serve(&s, stream);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakePeer {
            name: name.to_string(),
            addr,
            stop,
            release,
            served,
            connections,
        }
    }

    /// Lets a `StallAfter` peer answer again.
    pub fn release(&self) {
        self.release.store(true, Ordering::Relaxed);
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn send(stream: &mut SecureStream, msg: &Message) -> io::Result<()> {
    stream.write_all(&encode_message(msg))
}

/// Reads one frame; `Ok(None)` on a read timeout (to look at the stop flag).
fn recv(stream: &mut SecureStream) -> io::Result<Option<Message>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.get_ref().set_read_timeout(None)?;
    stream.read_exact(&mut body)?;
    stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))?;
    decode_message(&body)
        .map(Some)
        .map_err(|e| io::Error::other(e.to_string()))
}

fn hello(name: &str, port: u16) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        name: name.to_string(),
        listen_port: Some(port),
        agent: "fake-peer/test".into(),
    }
}

/// Registers with the tracker and keeps heartbeating on a thread until stopped.
fn register(s: &Arc<Shared>, tracker: SocketAddr, port: u16) {
    let tcp = TcpStream::connect(tracker).expect("fake peer: connect to tracker");
    let mut stream = SecureStream::handshake(tcp, Role::Initiator, &s.identity, None)
        .expect("fake peer: handshake with the tracker");
    stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    send(&mut stream, &hello(&s.name, port)).unwrap();
    send(
        &mut stream,
        &Message::Register {
            req: 1,
            name: s.name.clone(),
            listen_port: port,
            external: None,
        },
    )
    .unwrap();
    let mut registered = false;
    for _ in 0..100 {
        if let Some(Message::Registered { .. }) = recv(&mut stream).expect("tracker answers") {
            registered = true;
            break;
        }
    }
    assert!(registered, "fake peer {} was not registered", s.name);
    let s = s.clone();
    thread::spawn(move || {
        while !s.stop.load(Ordering::Relaxed) {
            if send(&mut stream, &Message::Heartbeat).is_err() {
                return;
            }
            for _ in 0..5 {
                let _ = recv(&mut stream);
            }
        }
        let _ = send(&mut stream, &Message::Unregister);
    });
}

fn serve(s: &Shared, tcp: TcpStream) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    // Without it, Nagle's algorithm and delayed ACKs add ~40 ms to each small answer.
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = SecureStream::handshake(tcp, Role::Responder, &s.identity, None)?;
    stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))?;
    let port = stream.get_ref().local_addr()?.port();
    s.connections.fetch_add(1, Ordering::Relaxed);
    while !s.stop.load(Ordering::Relaxed) {
        let Some(msg) = recv(&mut stream)? else {
            continue;
        };
        let reply = match msg {
            Message::Hello { .. } => hello(&s.name, port),
            Message::ListFiles { req } => Message::Files {
                req,
                files: vec![FileInfo {
                    name: s.file_name.clone(),
                    size: s.manifest.size,
                    id: ContentId::of(&s.manifest),
                    sha256: s.manifest.sha256,
                    partial: false,
                }],
            },
            Message::GetManifest { req, id } => Message::Manifest {
                req,
                id,
                size: s.manifest.size,
                chunk_size: s.manifest.chunk_size,
                chunk_hashes: s.manifest.hashes_to_wire(),
            },
            Message::GetHave { req, .. } => Message::Have {
                req,
                complete: true,
                bitmap: Vec::new(),
            },
            Message::GetChunk { req, index, .. } => {
                if let Behaviour::StallAfter(n) = s.behaviour {
                    while s.served.load(Ordering::Relaxed) >= n
                        && !s.release.load(Ordering::Relaxed)
                    {
                        if s.stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                let off = s.manifest.chunk_offset(index) as usize;
                let len = s.manifest.chunk_len(index).unwrap_or(0) as usize;
                let mut data = s.content[off..off + len].to_vec();
                if let Behaviour::CorruptChunks = s.behaviour {
                    data[len / 2] ^= 0x55;
                }
                s.served.fetch_add(1, Ordering::Relaxed);
                Message::Chunk { req, index, data }
            }
            Message::Chat { req, .. } => Message::ChatOk { req },
            Message::ListFolders { req } => Message::Folders {
                req,
                folders: (s.folders.iter())
                    .map(|(name, id, entries)| FolderInfo {
                        name: name.clone(),
                        id: *id,
                        entries: entries.len() as u64,
                        files: entries.iter().filter(|e| e.id.is_some()).count() as u64,
                        size: entries.iter().map(|e| e.size).sum(),
                    })
                    .collect(),
            },
            Message::GetFolder { req, id, start } => match s.folders.iter().find(|f| f.1 == id) {
                Some((_, id, entries)) => Message::Folder {
                    req,
                    id: *id,
                    total: entries.len() as u64,
                    start,
                    entries: entries.iter().skip(start as usize).cloned().collect(),
                },
                None => continue,
            },
            Message::GetPeers { req } => Message::PeerList {
                req,
                peers: Vec::new(),
            },
            _ => continue,
        };
        send(&mut stream, &reply)?;
    }
    Ok(())
}
