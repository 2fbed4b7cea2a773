//! Tracker load generator: N simulated peers, each a real TCP connection to the tracker that
//! says `Hello`, `Register`s a name and then heartbeats, driven by one mio thread with the
//! crate's own frame codec.
//!
//! Phases:
//! 1. set-up: all N connect, `Hello` and `Register` (at most [`SETUP_IN_FLIGHT`] at a time);
//! 2. `register`: for a fixed time, `concurrency` re-registrations in flight at once, spread
//!    round-robin over the peers (each answered with `Registered`);
//! 3. `list`: the same with `ListPeers` (each answered with at most 200 of the N peers).
//!
//! During phases 2 and 3 every peer heartbeats at the rate a real one would with a 30 s TTL
//! (one heartbeat per peer per 10 s), so the tracker sees the background load of N live peers.
//! Latency is measured per request from the write to the whole answer.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use p2p::identity::Identity;
use p2p::secure::{Link, Role, our_prologue};
use p2p::wire::{FrameDecoder, Message, PROTOCOL_VERSION, decode_message, encode_message};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connections being set up at once (connect + Hello + Register).
const SETUP_IN_FLIGHT: usize = 256;
/// A real peer heartbeats every TTL/3: 10 s with the default TTL of 30 s.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Longest any single phase may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Default)]
pub struct Rate {
    pub requests: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub peers: usize,
    /// Connect + Hello + Register for all peers.
    pub setup: Rate,
    pub register: Rate,
    pub list: Rate,
    /// Entries in a `Peers` answer (should be `peers`).
    pub listed: usize,
    pub heartbeats: u64,
    /// The tracker's resident set (KiB) once every peer is registered, and after the register
    /// phase (before the list answers add their output buffers), if its pid was given.
    pub rss_registered_kib: u64,
    pub rss_after_register_kib: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Register,
    List,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Not connected yet (waiting for a set-up slot).
    Unborn,
    Connecting {
        since: Instant,
    },
    /// Hello and Register sent; waiting for both answers.
    SettingUp {
        since: Instant,
        hello: bool,
    },
    Idle,
    Waiting {
        since: Instant,
        req: u64,
        kind: Kind,
    },
}

struct Peer {
    stream: Option<TcpStream>,
    /// The secure link under its frames (a key of its own per simulated peer).
    link: Option<Box<Link>>,
    /// Plaintext opened from one read, on its way into the decoder.
    opened: Vec<u8>,
    decoder: FrameDecoder,
    out: Vec<u8>,
    out_pos: usize,
    state: State,
    name: String,
    port: u16,
}

pub struct LoadGen {
    poll: Poll,
    peers: Vec<Peer>,
    tracker: SocketAddr,
    next_req: u64,
    read_buf: Vec<u8>,
    /// Latencies (µs) of the current phase.
    latencies: Vec<u32>,
    in_flight: usize,
    listed: usize,
    checked_list: bool,
    heartbeats: u64,
    tracker_pid: Option<u32>,
}

/// `VmRSS` of a process in KiB (0 if unknown).
pub fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn frame(msg: &Message) -> Vec<u8> {
    encode_message(msg)
}

/// `req` of a `Peers` answer without decoding the (large) list: our encoder writes
/// `{"Peers": {"req": N, "peers": [...], ...}}`, so `req` is right after a fixed prefix.
fn peers_req(body: &[u8]) -> Option<u64> {
    // The field map has 2 entries from an older tracker, 3 (with `total`) from ours.
    let rest = body.strip_prefix(b"\xA1\x65Peers")?;
    let (&fields, rest) = rest.split_first()?;
    if !matches!(fields, 0xA2 | 0xA3) {
        return None;
    }
    let rest = rest.strip_prefix(b"\x63req")?;
    let (&first, rest) = rest.split_first()?;
    let n = match first {
        0x00..=0x17 => u64::from(first),
        0x18 => u64::from(*rest.first()?),
        0x19 => u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
        0x1A => u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
        0x1B => u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
        _ => return None,
    };
    Some(n)
}

fn summarize(latencies: &mut [u32], requests: u64, secs: f64) -> Rate {
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    Rate {
        requests,
        per_sec: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Raises this process's open-file limit to its hard limit (N peers need N descriptors).
pub fn raise_nofile() -> (u64, u64) {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            if lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            }
            return (lim.rlim_cur as u64, lim.rlim_max as u64);
        }
    }
    (0, 0)
}

impl LoadGen {
    pub fn new(tracker: SocketAddr, peers: usize) -> io::Result<LoadGen> {
        let (soft, _) = raise_nofile();
        if soft != 0 && (soft as usize) < peers + 64 {
            return Err(io::Error::other(format!(
                "{peers} simulated peers need {peers}+ open files; the limit is {soft}"
            )));
        }
        let peers = (0..peers)
            .map(|i| Peer {
                stream: None,
                link: None,
                opened: Vec::new(),
                decoder: FrameDecoder::new(),
                out: Vec::new(),
                out_pos: 0,
                state: State::Unborn,
                name: format!("lg{i}"),
                port: 1024 + (i % 60_000) as u16,
            })
            .collect();
        Ok(LoadGen {
            poll: Poll::new()?,
            peers,
            tracker,
            next_req: 1,
            read_buf: vec![0; 256 * 1024],
            latencies: Vec::new(),
            in_flight: 0,
            listed: 0,
            checked_list: false,
            heartbeats: 0,
            tracker_pid: None,
        })
    }

    /// Samples the tracker's RSS between the phases.
    pub fn watch(mut self, tracker_pid: u32) -> LoadGen {
        self.tracker_pid = Some(tracker_pid);
        self
    }

    fn tracker_rss(&self) -> u64 {
        self.tracker_pid.map_or(0, vm_rss_kib)
    }

    /// Runs the three phases; `phase` is the length of the register and list phases.
    pub fn run(mut self, phase: Duration, concurrency: usize) -> Result<LoadResult, String> {
        let n = self.peers.len();
        let setup = self.setup().map_err(|e| format!("set-up: {e}"))?;
        let rss_registered_kib = self.tracker_rss();
        let register = self
            .load(Kind::Register, phase, concurrency)
            .map_err(|e| format!("register phase: {e}"))?;
        let rss_after_register_kib = self.tracker_rss();
        let list = self
            .load(Kind::List, phase, concurrency)
            .map_err(|e| format!("list phase: {e}"))?;
        Ok(LoadResult {
            peers: n,
            setup,
            register,
            list,
            listed: self.listed,
            heartbeats: self.heartbeats,
            rss_registered_kib,
            rss_after_register_kib,
        })
    }

    fn setup(&mut self) -> Result<Rate, String> {
        let started = Instant::now();
        let mut born = 0;
        let mut done = 0;
        let mut events = Events::with_capacity(1024);
        self.latencies.clear();
        while done < self.peers.len() {
            if started.elapsed() > STUCK {
                return Err(format!("only {done} of {} peers set up", self.peers.len()));
            }
            while born < self.peers.len() && born - done < SETUP_IN_FLIGHT {
                self.connect(born).map_err(|e| format!("connect: {e}"))?;
                born += 1;
            }
            self.poll
                .poll(&mut events, Some(Duration::from_millis(5)))
                .map_err(|e| e.to_string())?;
            let tokens: Vec<(usize, bool, bool)> = events
                .iter()
                .map(|e| {
                    (
                        e.token().0,
                        e.is_writable(),
                        e.is_readable() || e.is_error(),
                    )
                })
                .collect();
            for (i, writable, readable) in tokens {
                done += self.on_event(i, writable, readable)?;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut self.latencies);
        Ok(summarize(&mut lat, self.peers.len() as u64, secs))
    }

    fn load(&mut self, kind: Kind, length: Duration, concurrency: usize) -> Result<Rate, String> {
        let n = self.peers.len();
        let concurrency = concurrency.clamp(1, n);
        self.latencies.clear();
        let mut events = Events::with_capacity(1024);
        let started = Instant::now();
        let end = started + length;
        let mut next = 0usize;
        let mut hb_next = 0usize;
        let mut hb_sent_phase = 0u64;
        let mut completed = 0u64;
        let hb_per_sec = n as f64 / HEARTBEAT_EVERY.as_secs_f64();
        loop {
            let now = Instant::now();
            let sending = now < end;
            if !sending && self.in_flight == 0 {
                break;
            }
            if now > end + STUCK {
                return Err(format!("{} answers never came", self.in_flight));
            }
            // Keep `concurrency` requests in flight, round-robin over idle peers.
            let mut scanned = 0;
            while sending && self.in_flight < concurrency && scanned < n {
                let i = next;
                next = (next + 1) % n;
                scanned += 1;
                if self.peers[i].state == State::Idle {
                    self.request(i, kind).map_err(|e| e.to_string())?;
                }
            }
            // Background heartbeats at the rate N real peers would send them.
            let due = (now.duration_since(started).as_secs_f64() * hb_per_sec) as u64;
            while sending && hb_sent_phase < due {
                let i = hb_next;
                hb_next = (hb_next + 1) % n;
                self.send(i, &frame(&Message::Heartbeat))
                    .map_err(|e| e.to_string())?;
                hb_sent_phase += 1;
                self.heartbeats += 1;
            }
            self.poll
                .poll(&mut events, Some(Duration::from_millis(1)))
                .map_err(|e| e.to_string())?;
            let tokens: Vec<(usize, bool, bool)> = events
                .iter()
                .map(|e| {
                    (
                        e.token().0,
                        e.is_writable(),
                        e.is_readable() || e.is_error(),
                    )
                })
                .collect();
            for (i, writable, readable) in tokens {
                completed += self.on_event(i, writable, readable)? as u64;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut self.latencies);
        Ok(summarize(&mut lat, completed, secs))
    }

    fn connect(&mut self, i: usize) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.tracker)?;
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let p = &mut self.peers[i];
        let identity = Identity::generate().map_err(io::Error::other)?;
        let mut link = Link::new(Role::Initiator, &identity, &our_prologue(), None);
        // The first handshake message waits in `out` until the connect completes.
        p.out.extend(link.poll_transmit().unwrap_or_default());
        p.link = Some(Box::new(link));
        p.stream = Some(stream);
        p.state = State::Connecting {
            since: Instant::now(),
        };
        Ok(())
    }

    fn request(&mut self, i: usize, kind: Kind) -> io::Result<()> {
        let req = self.next_req;
        self.next_req += 1;
        let msg = match kind {
            Kind::Register => Message::Register {
                req,
                name: self.peers[i].name.clone(),
                listen_port: self.peers[i].port,
                external: None,
            },
            Kind::List => Message::list_peers(req),
        };
        self.peers[i].state = State::Waiting {
            since: Instant::now(),
            req,
            kind,
        };
        self.in_flight += 1;
        self.send(i, &frame(&msg))
    }

    fn send(&mut self, i: usize, bytes: &[u8]) -> io::Result<()> {
        let p = &mut self.peers[i];
        seal(p, bytes)?;
        flush(p)
    }

    /// Handles one readiness event; returns how many requests (or set-ups) it completed.
    fn on_event(&mut self, i: usize, writable: bool, readable: bool) -> Result<usize, String> {
        let Some(p) = self.peers.get_mut(i) else {
            return Ok(0);
        };
        let who = p.name.clone();
        if let State::Connecting { since } = p.state {
            if !writable && !readable {
                return Ok(0);
            }
            let stream = p.stream.as_ref().expect("connecting peers have a stream");
            if let Ok(Some(e)) | Err(e) = stream.take_error() {
                return Err(format!("{who}: connect failed: {e}"));
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(0),
                Err(e) => return Err(format!("{who}: connect failed: {e}")),
            }
            let _ = stream.set_nodelay(true);
            p.state = State::SettingUp {
                since,
                hello: false,
            };
            let hello = frame(&Message::Hello {
                version: PROTOCOL_VERSION,
                name: who.clone(),
                listen_port: Some(p.port),
                agent: "p2p-loadgen".into(),
            });
            let register = frame(&Message::Register {
                req: 0,
                name: who.clone(),
                listen_port: p.port,
                external: None,
            });
            // Sent at once: the link keeps them until its handshake is done.
            seal(p, &hello).map_err(|e| format!("{who}: {e}"))?;
            seal(p, &register).map_err(|e| format!("{who}: {e}"))?;
            flush(p).map_err(|e| format!("{who}: write: {e}"))?;
        } else if writable {
            flush(p).map_err(|e| format!("{who}: write: {e}"))?;
        }
        if !readable {
            return Ok(0);
        }
        // Read until WouldBlock, then handle every whole frame.
        let mut eof = false;
        let stream = p.stream.as_mut().expect("connected peers have a stream");
        loop {
            match stream.read(&mut self.read_buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let link = p.link.as_mut().expect("connected peers have a link");
                    link.handle_input(&self.read_buf[..n], &mut p.opened)
                        .map_err(|e| format!("{who}: {e}"))?;
                    p.decoder.extend(&p.opened);
                    p.opened.clear();
                    // The handshake's last message, and frames sealed once it is done.
                    p.out.extend(link.poll_transmit().unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("{who}: read: {e}")),
            }
        }
        // What the link answered (its last handshake message, frames it kept until then).
        flush(p).map_err(|e| format!("{who}: write: {e}"))?;
        let mut completed = 0;
        loop {
            let p = &mut self.peers[i];
            let body = match p.decoder.next_frame() {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(e) => return Err(format!("{who}: bad frame from the tracker: {e}")),
            };
            let now = Instant::now();
            match p.state {
                State::SettingUp { since, hello } => {
                    let msg = decode_message(body).map_err(|e| format!("{who}: {e}"))?;
                    match msg {
                        Message::Hello { .. } if !hello => {
                            p.state = State::SettingUp { since, hello: true };
                        }
                        Message::Registered { req: 0, .. } if hello => {
                            p.state = State::Idle;
                            self.latencies.push(micros(now - since));
                            completed += 1;
                        }
                        other => return Err(format!("{who}: unexpected {other:?} in set-up")),
                    }
                }
                State::Waiting { since, req, kind } => {
                    let answered = match kind {
                        Kind::List => match peers_req(body) {
                            Some(got) if self.checked_list => got == req,
                            _ => {
                                // Decode the first list fully to check it is the real thing.
                                match decode_message(body).map_err(|e| format!("{who}: {e}"))? {
                                    Message::Peers {
                                        req: got, peers, ..
                                    } => {
                                        self.listed = peers.len();
                                        self.checked_list = true;
                                        got == req
                                    }
                                    other => {
                                        return Err(format!("{who}: list answered with {other:?}"));
                                    }
                                }
                            }
                        },
                        Kind::Register => {
                            match decode_message(body).map_err(|e| format!("{who}: {e}"))? {
                                Message::Registered { req: got, .. } => got == req,
                                other => {
                                    return Err(format!("{who}: register answered with {other:?}"));
                                }
                            }
                        }
                    };
                    if !answered {
                        return Err(format!("{who}: answer to another request than {req}"));
                    }
                    let p = &mut self.peers[i];
                    p.state = State::Idle;
                    self.in_flight -= 1;
                    self.latencies.push(micros(now - since));
                    completed += 1;
                }
                _ => {
                    let msg = decode_message(body).map_err(|e| format!("{who}: {e}"))?;
                    return Err(format!("{who}: unasked-for {msg:?}"));
                }
            }
        }
        if eof {
            return Err(format!("{who}: the tracker closed the connection"));
        }
        Ok(completed)
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Queues one frame on `p`'s link (sealed now, or once its handshake is done).
fn seal(p: &mut Peer, frame: &[u8]) -> io::Result<()> {
    let link = p.link.as_mut().expect("connected peers have a link");
    link.send(frame)?;
    p.out.extend(link.poll_transmit().unwrap_or_default());
    Ok(())
}

fn flush(p: &mut Peer) -> io::Result<()> {
    let Some(stream) = p.stream.as_mut() else {
        return Ok(());
    };
    if matches!(p.state, State::Connecting { .. }) {
        return Ok(());
    }
    while p.out_pos < p.out.len() {
        match stream.write(&p.out[p.out_pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => p.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    p.out.clear();
    p.out_pos = 0;
    Ok(())
}
