//! Row 5, in process (issue 17: "100,000 simulated peers < 500 MiB"): the real [`Tracker`]
//! state machine driven through its [`Driver`] methods with fake connection ids, as the
//! reactor drives it, but with no sockets: 100,000 TCP connections cannot be opened on one
//! machine here (a hard limit of 20,000 open files, about 28,000 ports per source IP).
//!
//! Each simulated peer is accepted (its own IP and key, as a handshake would prove),
//! says `Hello` and `Register`s a name, then in two timed phases the peers, round-robin,
//! re-`Register` (a heartbeat) and send `ListPeers`. Every answer is taken from
//! `poll_action` and dropped (a socket tracker would queue it until written). Measured: the
//! process's `VmRSS` (`/proc/self/status`) and glibc's heap in use (`mallinfo2`) before and
//! after each step, and requests handled per second by the state machine alone, on one
//! thread. This is not the socket figure of the other row 5 lines: no reactor, no secure
//! link, no system calls.

use p2p::identity::PeerId;
use p2p::reactor::{Action, ConnId, Driver};
use p2p::tracker::{Tracker, TrackerConfig};
use p2p::wire::{Message, PROTOCOL_VERSION, decode_message, encode_message};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Memory at one point: the process's resident set and glibc's heap in use, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub heap_kib: u64,
}

/// Requests of one kind handled in a timed loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct InProcessRate {
    pub requests: u64,
    pub per_sec: f64,
}

#[derive(Clone, Debug, Default)]
pub struct ScaleRow {
    pub peers: usize,
    /// Before the tracker exists (after `malloc_trim`), then after every peer was accepted,
    /// said `Hello`, registered, after the register phase and after the list phase.
    pub before: Mem,
    pub accepted: Mem,
    pub hello: Mem,
    pub registered: Mem,
    pub after_load: Mem,
    /// `VmHWM` at the end (the process's peak, whatever ran before in it).
    pub peak_kib: u64,
    /// Accept + `Hello` + `Register` of every peer, per second.
    pub setup: InProcessRate,
    pub register: InProcessRate,
    pub list: InProcessRate,
    /// Entries in a `Peers` answer (at most 200).
    pub listed: usize,
}

impl ScaleRow {
    /// Resident set growth from before the tracker to every peer registered, KiB.
    pub fn rss_growth_kib(&self) -> u64 {
        self.registered.rss_kib.saturating_sub(self.before.rss_kib)
    }

    /// The same after the load phases.
    pub fn rss_growth_after_load_kib(&self) -> u64 {
        self.after_load.rss_kib.saturating_sub(self.before.rss_kib)
    }
}

/// A field of `/proc/self/status` in KiB (0 if unknown).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mem_now() -> Mem {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    Mem {
        rss_kib: status_kib("VmRSS:"),
        heap_kib: ((info.uordblks + info.hblkhd) / 1024) as u64,
    }
}

/// SplitMix64, for keys that look random and differ per peer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key simulated peer `i`'s handshake proved.
fn key_of(i: usize) -> PeerId {
    let mut key = [0u8; 32];
    for (n, word) in key.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&mix((i as u64) << 2 | n as u64).to_le_bytes());
    }
    PeerId::from_public_key(key)
}

/// Where simulated peer `i` connects from: an address of its own in 10.0.0.0/8 (so the
/// per-IP cap is the default one, as for peers on the Internet), an ephemeral port.
fn remote_of(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0A00_0000 | (i as u32 + 1));
    SocketAddr::new(IpAddr::V4(ip), 40_000 + (i % 20_000) as u16)
}

/// The body of `msg`'s frame (what the reactor hands `handle_frame`).
fn body(msg: &Message) -> Vec<u8> {
    encode_message(msg)[4..].to_vec()
}

/// Takes every queued action; returns the first frame sent, decoded, if `keep` (else
/// `None`). Anything but a `Send` is an error: no simulated peer misbehaves.
fn drain(tracker: &mut Tracker, keep: bool) -> Result<Option<Message>, String> {
    let mut first = None;
    while let Some(action) = tracker.poll_action() {
        match action {
            Action::Send(_, bytes) => {
                if keep && first.is_none() {
                    let msg = decode_message(&bytes[4..]).map_err(|e| e.to_string())?;
                    first = Some(msg);
                }
            }
            other => return Err(format!("the tracker did {other:?}")),
        }
    }
    Ok(first)
}

/// One request from every peer in turn, `step` each; fails at the first wrong answer (the
/// first answer of each peer-sweep is decoded and checked by `check`).
fn timed_loop(
    tracker: &mut Tracker,
    peers: usize,
    length: Duration,
    mut request: impl FnMut(usize, u64) -> Vec<u8>,
    check: impl Fn(&Message) -> Result<(), String>,
) -> Result<InProcessRate, String> {
    let started = Instant::now();
    let mut requests = 0u64;
    loop {
        for i in 0..peers {
            let now = Instant::now();
            let frame = request(i, requests + 2);
            tracker.handle_frame(ConnId::fake(i), &frame, now);
            let first = requests.is_multiple_of(peers as u64);
            if let Some(answer) = drain(tracker, first)? {
                check(&answer)?;
            }
            requests += 1;
            if requests.is_multiple_of(256) && started.elapsed() >= length {
                let secs = started.elapsed().as_secs_f64();
                return Ok(InProcessRate {
                    requests,
                    per_sec: requests as f64 / secs,
                });
            }
        }
    }
}

/// `peers` simulated peers on one tracker; `phase` is the length of each load phase.
pub fn run(peers: usize, phase: Duration) -> Result<ScaleRow, String> {
    let mut row = ScaleRow {
        peers,
        ..ScaleRow::default()
    };
    // What an earlier row freed goes back first, so the growth is this tracker's.
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe { libc::malloc_trim(0) };
    // Everything the loops allocate per request is made before the first figure.
    let hello = body(&Message::Hello {
        version: PROTOCOL_VERSION,
        name: String::new(),
        listen_port: None,
        agent: "p2p-bench-sim".into(),
    });
    let names: Vec<String> = (0..peers).map(|i| format!("sim{i:06}")).collect();
    let register = |i: usize, req: u64| {
        body(&Message::Register {
            req,
            name: names[i].clone(),
            listen_port: 4000,
            external: None,
        })
    };
    let config = TrackerConfig {
        // No registration expires during the run, however slow the machine.
        peer_ttl: Duration::from_secs(3600),
        ..TrackerConfig::default()
    };
    row.before = mem_now();
    let mut tracker = Tracker::new(config, Box::new(|_: &str| {})).with_max_peers(peers);

    let setup_started = Instant::now();
    for i in 0..peers {
        tracker.handle_accepted(ConnId::fake(i), remote_of(i), key_of(i), Instant::now());
    }
    drain(&mut tracker, false)?;
    row.accepted = mem_now();
    for i in 0..peers {
        tracker.handle_frame(ConnId::fake(i), &hello, Instant::now());
        match drain(&mut tracker, i == 0)? {
            Some(Message::Hello { .. }) | None => {}
            Some(other) => return Err(format!("Hello answered with {other:?}")),
        }
    }
    row.hello = mem_now();
    for i in 0..peers {
        tracker.handle_frame(ConnId::fake(i), &register(i, 1), Instant::now());
        match drain(&mut tracker, true)? {
            Some(Message::Registered { req: 1, .. }) => {}
            other => return Err(format!("peer {i}'s Register answered with {other:?}")),
        }
    }
    let secs = setup_started.elapsed().as_secs_f64();
    row.setup = InProcessRate {
        requests: 3 * peers as u64,
        per_sec: peers as f64 / secs,
    };
    row.registered = mem_now();
    if tracker.peer_count() != peers {
        return Err(format!("{} of {peers} registered", tracker.peer_count()));
    }

    row.register = timed_loop(&mut tracker, peers, phase, &register, |m| match m {
        Message::Registered { .. } => Ok(()),
        other => Err(format!("a heartbeat Register answered with {other:?}")),
    })?;
    let want = peers.min(p2p::tracker::MAX_LISTED);
    let listed = std::cell::Cell::new(0);
    row.list = timed_loop(
        &mut tracker,
        peers,
        phase,
        |_, req| body(&Message::list_peers(req)),
        |m| match m {
            Message::Peers { peers, .. } if peers.len() == want => {
                listed.set(peers.len());
                Ok(())
            }
            other => Err(format!("ListPeers answered with {other:?}")),
        },
    )?;
    row.listed = listed.get();
    row.after_load = mem_now();
    row.peak_kib = status_kib("VmHWM:");
    drop(tracker);
    Ok(row)
}
