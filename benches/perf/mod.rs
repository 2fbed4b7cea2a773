//! The performance benchmark (issue 6): builds nothing itself — cargo hands it the release `p2p`
//! binary — then starts trackers and peers on 127.0.0.1 and measures, in one run:
//!
//! 1. a verified 1 GiB download from one source, against three yardsticks measured in-process on
//!    the same file in the same run (plain TCP copy, the reference loop "receive + SHA-256 +
//!    write", single-core SHA-256);
//! 2. (placeholder) 2 and 3 sources, once swarm downloads exist;
//! 3. peak RSS of sender and receiver for a 64 MiB and a 1 GiB file;
//! 4. start-up with 1 GiB shared: first start (hashing) and restart with the hash cache; and
//!    first-start hashing alone, several rounds interleaved with single-core SHA-256;
//! 5. the tracker under load from [`loadgen`] with 1,000 and 10,000 simulated peers, and its
//!    state machine alone in process with 10,000 and 100,000 ([`tracker_scale`]);
//! 6. a 64 MiB download over a link with 50 ms round trip (netem, or a delay proxy), against
//!    `curl -o` from a loopback nginx over the same link ([`nginx`]);
//! 7. `get PEER FOLDER` of 10,000 files of 4 KiB against `rsync -a` from a loopback daemon;
//! 8. a folder of four 256 MiB files against one 1 GiB file ([`folders`]).
//!
//! `cargo bench --bench transfer` runs it at full size (see docs/performance.md);
//! `tests/perf_smoke.rs` runs [`Config::smoke`] in the default test suite.

pub mod delay;
pub mod folders;
pub mod loadgen;
pub mod nginx;
pub mod procs;
pub mod reference;
pub mod rsync;
pub mod scp;
pub mod tracker_scale;
pub mod tun_link;

use p2p::wire::{FrameDecoder, Message, PROTOCOL_VERSION, decode_message, encode_message};
use procs::{Ended, Proc};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo in the same profile as the benchmark.
pub const BIN: &str = env!("CARGO_BIN_EXE_p2p");

/// The `p2p` binary the rows run: `P2P_BENCH_BIN` if set (to compare an older build with this
/// one in the same sitting, on a machine too noisy for runs an hour apart), else cargo's.
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("P2P_BENCH_BIN").map_or_else(|| BIN.into(), Into::into)
}

const MIB: u64 = 1024 * 1024;
const STARTUP: Duration = Duration::from_secs(60);

/// How the delayed link is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayMethod {
    /// netem in a network namespace if it can be set up, else a link of two TUN devices
    /// (root and /dev/net/tun needed), else the proxy.
    Auto,
    /// Always the user-space delay proxy.
    Proxy,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Size of the large file (rows 1, 3, 4).
    pub big: u64,
    /// Size of the small file (rows 3 and 6).
    pub small: u64,
    /// Each transfer measurement (and its yardsticks) is run this many times; the best counts.
    pub repeat: usize,
    /// Row 2 downloads from 2..=`max_sources` sources (1: no row 2).
    pub max_sources: usize,
    /// Simulated peer counts for the tracker rows.
    pub tracker_peers: Vec<usize>,
    /// Simulated peer counts for the in-process tracker rows (no sockets).
    pub sim_peers: Vec<usize>,
    /// Length of each tracker load phase (register, list).
    pub load_phase: Duration,
    /// Requests kept in flight by the load generator.
    pub load_concurrency: usize,
    /// Round-trip time of the delayed link.
    pub delay_rtt: Duration,
    pub delay_method: DelayMethod,
    /// Where to put the files (a temporary folder inside it); the system temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// Progress lines on stderr.
    pub verbose: bool,
    pub parts: Parts,
    /// Also copy the file with `scp` from a loopback `sshd` (when installed).
    pub scp: bool,
    /// Row 7: the small-file tree, files and bytes each.
    pub folder_files: usize,
    pub folder_file_size: u64,
    /// Row 8: the big file's size (`big`) split over this many files of a folder.
    pub folder_parts: usize,
}

impl Config {
    /// The benchmark as the issue asks for it.
    pub fn full() -> Config {
        Config {
            big: 1024 * MIB,
            small: 64 * MIB,
            repeat: 3,
            max_sources: 3,
            tracker_peers: vec![1_000, 10_000],
            sim_peers: vec![10_000, 100_000],
            load_phase: Duration::from_secs(3),
            load_concurrency: 32,
            delay_rtt: Duration::from_millis(50),
            delay_method: DelayMethod::Auto,
            dir: None,
            verbose: true,
            parts: Parts::default(),
            scp: true,
            folder_files: 10_000,
            folder_file_size: 4096,
            folder_parts: 4,
        }
    }

    /// A version that takes seconds, for the default test suite.
    pub fn smoke() -> Config {
        Config {
            big: 16 * MIB,
            small: 4 * MIB,
            repeat: 1,
            max_sources: 2,
            tracker_peers: vec![200],
            sim_peers: vec![2_000],
            load_phase: Duration::from_millis(300),
            load_concurrency: 16,
            delay_rtt: Duration::from_millis(20),
            delay_method: DelayMethod::Proxy,
            dir: None,
            verbose: false,
            parts: Parts::default(),
            // The test suite does not start an sshd.
            scp: false,
            folder_files: 300,
            folder_file_size: 4096,
            folder_parts: 4,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Transfer {
    /// Verified download rate from the receiver's summary line (best of the runs), MB/s.
    pub download_mbps: f64,
    pub all_download_mbps: Vec<f64>,
    pub reference_mbps: f64,
    pub tcp_mbps: f64,
    pub sha_mbps: f64,
    /// CPU seconds per GiB (least of the runs): the p2p receiver process, the reference loop's
    /// receiving thread, and the p2p sender process (over all rounds).
    pub receiver_cpu_per_gib: f64,
    pub reference_cpu_per_gib: f64,
    pub sender_cpu_per_gib: f64,
    /// Swarm downloads: (sources, best MB/s, every run's MB/s).
    pub swarm: Vec<(usize, f64, Vec<f64>)>,
    /// `scp` from a loopback `sshd` (best MB/s, least CPU s/GiB of client and server, its
    /// cipher), or why it was not measured.
    pub scp: Result<(f64, f64, f64, String), String>,
}

#[derive(Clone, Debug, Default)]
pub struct Rss {
    pub size: u64,
    pub sender_kib: u64,
    pub receiver_kib: u64,
    pub download_mbps: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Startup {
    pub size: u64,
    /// Hashing rate the peer reports on its first start.
    pub first_hash_mbps: f64,
    pub first_serving_ms: f64,
    pub restart_serving_ms: f64,
}

/// First starts only, each with a fresh state folder, alternated with single-core SHA-256.
#[derive(Clone, Debug, Default)]
pub struct Hashing {
    pub size: u64,
    /// The rate each first start reported, MB/s.
    pub rounds: Vec<f64>,
    /// Single-core SHA-256 of the same file, best of the rounds, MB/s.
    pub sha_mbps: f64,
    /// The peer's CPU seconds per GiB until it was sharing (least of the rounds).
    pub cpu_per_gib: f64,
}

#[derive(Clone, Debug, Default)]
pub struct TrackerRow {
    pub load: loadgen::LoadResult,
    pub tracker_rss_kib: u64,
}

#[derive(Clone, Debug)]
pub struct DelayRow {
    pub size: u64,
    pub rtt: Duration,
    /// How the delay was made, and why that way.
    pub method: String,
    /// The summary line's time (first chunk request to last chunk written), best of the
    /// rounds, without and with the delay.
    pub no_delay_secs: f64,
    pub delayed_secs: f64,
    /// From the `get` command to its `saved ...` line (the file complete), every round:
    /// `[without delay, with delay]`.
    pub command_secs: [Vec<f64>; 2],
    /// `curl -o` from a loopback nginx over the same link, spawn to exit, every round
    /// (alternated with ours), `[without delay, with delay]`; or why it was not measured.
    pub curl: Result<[Vec<f64>; 2], String>,
}

#[derive(Clone, Debug, Default)]
pub struct Results {
    pub transfer: Option<Transfer>,
    pub rss: Vec<Rss>,
    pub startup: Option<Startup>,
    pub hashing: Option<Hashing>,
    pub tracker: Vec<TrackerRow>,
    /// The tracker's state machine in process ([`tracker_scale`]).
    pub scale: Vec<tracker_scale::ScaleRow>,
    pub delay: Option<DelayRow>,
    pub folders: Option<folders::FolderRows>,
    pub notes: Vec<String>,
}

struct Bench<'a> {
    cfg: &'a Config,
    dir: tempfile::TempDir,
}

fn say(cfg: &Config, what: &str) {
    if cfg.verbose {
        eprintln!("[bench] {what}");
    }
}

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Fills `path` with `size` pseudo-random bytes (xorshift: fast, incompressible enough).
fn write_random_file(path: &Path, size: u64, seed: u64) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let mut state = seed | 1;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// `SocketAddr` at the end of a "... listening on ADDR" line.
fn listen_addr(line: &str) -> Result<SocketAddr, String> {
    line.rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no address in '{line}'"))
}

/// The rate of a `saved ... in 1.23s, 435.6 MiB/s, ...` summary line, in MB/s (the tables
/// here are decimal; the peer prints binary units like its progress bar).
fn summary_rate(line: &str) -> Option<f64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (at, unit) = words.iter().enumerate().find_map(|(i, w)| {
        let unit = match w.trim_end_matches(',') {
            "KiB/s" => 1024.0,
            "MiB/s" => 1024.0 * 1024.0,
            "GiB/s" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        Some((i, unit))
    })?;
    let n: f64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
    Some(n * unit / 1e6)
}

/// Speaks to a peer or tracker over a secure link on blocking TCP with the crate's codec.
struct Client {
    stream: p2p::secure::SecureStream,
    decoder: FrameDecoder,
}

impl Client {
    /// Connects with the benchmark's own key: one per process, since the peers it asks pin
    /// the name it says `Hello` with ("bench") to the first key they see.
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        static KEY: std::sync::OnceLock<p2p::identity::Identity> = std::sync::OnceLock::new();
        let identity = KEY.get_or_init(|| {
            p2p::identity::Identity::generate().expect("the operating system's random source")
        });
        Client::connect_as(addr, identity)
    }

    /// Connects proving `identity`'s key.
    fn connect_as(addr: SocketAddr, identity: &p2p::identity::Identity) -> io::Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(STARTUP))?;
        let role = p2p::secure::Role::Initiator;
        let stream = p2p::secure::SecureStream::handshake(tcp, role, identity, None)?;
        Ok(Client {
            stream,
            decoder: FrameDecoder::new(),
        })
    }

    fn send(&mut self, msg: &Message) -> io::Result<()> {
        self.stream.write_all(&encode_message(msg))
    }

    fn hello(&mut self, name: &str, port: Option<u16>) -> io::Result<()> {
        self.send(&Message::Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            listen_port: port,
            agent: "p2p-bench".into(),
        })
    }

    /// Reads until a message for which `pick` returns `Some`.
    fn wait_for<T>(&mut self, mut pick: impl FnMut(Message) -> Option<T>) -> io::Result<T> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(body) = self
                .decoder
                .next_frame()
                .map_err(|e| io::Error::other(e.to_string()))?
            {
                let msg = decode_message(body).map_err(|e| io::Error::other(e.to_string()))?;
                if let Message::Error { message, .. } = &msg {
                    return Err(io::Error::other(message.clone()));
                }
                if let Some(found) = pick(msg) {
                    return Ok(found);
                }
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.decoder.extend(&buf[..n]);
        }
    }
}

/// Connects to a peer, asks for its file list and returns when the answer is there: the peer
/// is serving.
fn ask_files(addr: SocketAddr) -> io::Result<usize> {
    let mut c = Client::connect(addr)?;
    c.hello("bench", None)?;
    c.send(&Message::ListFiles { req: 1 })?;
    c.wait_for(|m| match m {
        Message::Files { req: 1, files } => Some(files.len()),
        _ => None,
    })
}

/// Registers `name` at `port` on the tracker from this process, so other peers find "`name`"
/// at 127.0.0.1:`port` (the delay proxy). The registration lasts while the stream is open. It
/// proves the key in `key_file` (the real peer's): a dial through the proxy must reach the key
/// the tracker lists for the name, and the name is held for that key.
fn register_alias(
    tracker: SocketAddr,
    name: &str,
    port: u16,
    key_file: &Path,
) -> io::Result<Client> {
    let (identity, _) = p2p::identity::load_or_create(key_file)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut c = Client::connect_as(tracker, &identity)?;
    c.hello("", None)?;
    c.send(&Message::Register {
        req: 1,
        name: name.into(),
        listen_port: port,
        external: None,
    })?;
    c.wait_for(|m| matches!(m, Message::Registered { req: 1, .. }).then_some(()))?;
    Ok(c)
}

/// Where processes run: on this host, inside a network namespace, or at either end of a
/// packet-level delayed link.
#[derive(Clone, Copy)]
enum Place<'n> {
    Host,
    Netns(&'n delay::Netns),
    /// On this host, listening at the link's end here ([`tun_link::TunLink::far`]).
    Far(&'n tun_link::TunLink),
    /// In the link's namespace ([`tun_link::TunLink::near`]).
    Near(&'n tun_link::TunLink),
}

impl Place<'_> {
    fn p2p(&self) -> Command {
        self.command(&bin())
    }

    /// A command running `program` here.
    fn command(&self, program: &Path) -> Command {
        match self {
            Place::Host | Place::Far(_) => Command::new(program),
            Place::Netns(ns) => ns.command(&program.to_string_lossy()),
            Place::Near(link) => link.command(&program.to_string_lossy()),
        }
    }

    /// The address servers started here listen at.
    fn ip(&self) -> std::net::Ipv4Addr {
        match self {
            Place::Host | Place::Netns(_) => std::net::Ipv4Addr::LOCALHOST,
            Place::Far(link) => link.far,
            Place::Near(link) => link.near,
        }
    }

    /// [`Self::ip`] with port 0 (the OS picks), for `--listen`.
    fn listen(&self) -> String {
        format!("{}:0", self.ip())
    }
}

impl Bench<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts a tracker; `peers` simulated peers from 127.0.0.1 must fit its per-IP caps.
    fn start_tracker(&self, place: Place, peers: usize) -> Result<(Proc, SocketAddr), String> {
        let mut cmd = place.p2p();
        // A state folder of its own per tracker started: the tracker holds each name for the
        // key that registered it, and the load generator's peers make new keys every run.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cmd.args(["tracker", "--listen", &place.listen(), "--peer-ttl", "600"])
            .arg("--state")
            .arg(self.path(&format!("tracker-state-{n}")));
        if peers > 0 {
            let conns = (peers + 64).to_string();
            cmd.args(["--max-peers-per-ip", &peers.to_string()]).args([
                "--max-conns",
                &conns,
                "--max-conns-per-ip",
                &conns,
            ]);
        }
        let mut t = Proc::spawn("tracker", &mut cmd)?;
        let line = t.wait_line("tracker listening", STARTUP, |l| {
            l.starts_with("tracker listening on")
        })?;
        let addr = listen_addr(&line)?;
        Ok((t, addr))
    }

    /// Starts a serving peer; returns once its start-up scan is done (and it registered, if
    /// `registered`). With `time_serving`, also asks for its file list as soon as it listens and
    /// records the time from spawn to the answer.
    fn start_peer(
        &self,
        place: Place,
        name: &str,
        tracker: SocketAddr,
        shared: &str,
        registered: bool,
        time_serving: bool,
    ) -> Result<PeerStart, String> {
        self.start_peer_in(
            place,
            name,
            tracker,
            shared,
            shared,
            registered,
            time_serving,
        )
    }

    /// [`Self::start_peer`] with its state (hash cache) in `{state}-state`.
    #[allow(clippy::too_many_arguments)]
    fn start_peer_in(
        &self,
        place: Place,
        name: &str,
        tracker: SocketAddr,
        shared: &str,
        state: &str,
        registered: bool,
        time_serving: bool,
    ) -> Result<PeerStart, String> {
        self.key_for(name, &self.path(&format!("{state}-state")))?;
        let mut cmd = place.p2p();
        cmd.args([
            "peer",
            "--name",
            name,
            "--listen",
            &place.listen(),
            "--serve",
        ])
        .arg("--tracker")
        .arg(tracker.to_string())
        .arg("--shared")
        .arg(self.path(shared))
        .arg("--downloads")
        .arg(self.path(&format!("{state}-state")));
        let spawned = Instant::now();
        let mut p = Proc::spawn(name, &mut cmd)?;
        let line = p.wait_line("listening", STARTUP, |l| l.contains(" listening on "))?;
        let addr = listen_addr(&line)?;
        let serving_ms = if time_serving {
            ask_files(addr).map_err(io_err("asking for the file list"))?;
            Some(spawned.elapsed().as_secs_f64() * 1000.0)
        } else {
            None
        };
        let sharing = p.wait_line("sharing", STARTUP, |l| l.starts_with("sharing "))?;
        let sharing_secs = spawned.elapsed().as_secs_f64();
        // A peer hashing a big file registers before it is done (after half a second), so the
        // line may have gone by while waiting for `sharing`.
        let is_registered = |l: &str| l.starts_with("registered with tracker");
        if registered && !p.has_seen(is_registered) {
            p.wait_line("registered", STARTUP, is_registered)?;
        }
        Ok(PeerStart {
            proc: p,
            addr,
            sharing,
            sharing_secs,
            serving_ms: serving_ms.unwrap_or(0.0),
        })
    }

    /// Puts the key of the peer called `name` (made once per benchmark run) into the state
    /// folder of `downloads`: every start of "receiver" (or "sender"...) proves the same key,
    /// whatever folder it runs in, as the tracker holds each name for the first key it saw.
    fn key_for(&self, name: &str, downloads: &Path) -> Result<(), String> {
        let key = self.path(&format!("key-{name}.key"));
        if !key.exists() {
            let identity = p2p::identity::Identity::generate()?;
            let bytes = p2p::identity::key_file::encode(&identity);
            std::fs::write(&key, bytes).map_err(io_err("peer key"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err("peer key"))?;
        }
        let state = downloads.join(".p2p");
        std::fs::create_dir_all(&state).map_err(io_err("peer state folder"))?;
        let to = state.join("identity.key");
        std::fs::copy(&key, &to).map_err(io_err("peer key"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("peer key"))?;
        Ok(())
    }

    /// The receiving peer "receiver", sharing nothing, running `batch` into `downloads`.
    fn receiver_command(
        &self,
        place: Place,
        tracker: SocketAddr,
        downloads: &Path,
        batch: &Path,
    ) -> Command {
        let mut cmd = place.p2p();
        cmd.args(["peer", "--name", "receiver", "--listen", &place.listen()])
            .arg("--tracker")
            .arg(tracker.to_string())
            .arg("--shared")
            .arg(self.path("empty"))
            .arg("--downloads")
            .arg(downloads)
            .arg("--batch")
            .arg(batch);
        cmd
    }

    /// Runs a receiving peer in batch mode that fetches `file` from `from`; returns the summary
    /// line's MB/s and how the receiver ended (peak RSS).
    fn download(
        &self,
        place: Place,
        tracker: SocketAddr,
        from: &str,
        file: &str,
        size: u64,
        tag: &str,
    ) -> Result<(f64, Ended), String> {
        self.download_from(place, tracker, &[from], file, size, tag)
    }

    /// [`Self::download`] from every source in `from` at once (`get FILE`, a swarm download)
    /// when there is more than one.
    fn download_from(
        &self,
        place: Place,
        tracker: SocketAddr,
        from: &[&str],
        file: &str,
        size: u64,
        tag: &str,
    ) -> Result<(f64, Ended), String> {
        self.download_timed(place, tracker, from, file, size, tag)
            .map(|d| (d.mbps, d.ended))
    }

    /// [`Self::download_from`], also timing the `get` from the command (the batch's last
    /// `wait-peer` answer, printed just before `get` runs) to its `saved ...` line.
    fn download_timed(
        &self,
        place: Place,
        tracker: SocketAddr,
        from: &[&str],
        file: &str,
        size: u64,
        tag: &str,
    ) -> Result<Downloaded, String> {
        let downloads = self.path(&format!("dl-{tag}"));
        let _ = std::fs::remove_dir_all(&downloads);
        std::fs::create_dir_all(&downloads).map_err(io_err("downloads folder"))?;
        self.key_for("receiver", &downloads)?;
        let batch = self.path(&format!("batch-{tag}.txt"));
        let mut script: String = from.iter().map(|p| format!("wait-peer {p} 30\n")).collect();
        match from {
            [one] => script.push_str(&format!("get {one} {file}\n")),
            _ => script.push_str(&format!("get {file}\n")),
        }
        std::fs::write(&batch, script).map_err(io_err("batch file"))?;
        let mut cmd = self.receiver_command(place, tracker, &downloads, &batch);
        // Serve after the batch, so its peak RSS and CPU time can be read before it exits.
        cmd.arg("--serve");
        let mut r = Proc::spawn("receiver", &mut cmd)?;
        for _ in from {
            r.wait_line("'... is known'", Duration::from_secs(60), |l| {
                l.ends_with(" is known")
            })?;
        }
        let asked = Instant::now();
        let timeout = Duration::from_secs(60 + size / MIB);
        let line = r.wait_line("saved ...", timeout, |l| l.starts_with("saved "))?;
        let command_secs = asked.elapsed().as_secs_f64();
        r.wait_line("batch finished", Duration::from_secs(60), |l| {
            l.contains("batch finished")
        })?;
        let ended = r.stop_measured()?;
        let rate =
            summary_rate(&line).ok_or_else(|| format!("no MB/s in the summary line '{line}'"))?;
        let got = std::fs::metadata(downloads.join(file))
            .map_err(io_err("the downloaded file"))?
            .len();
        if got != size {
            return Err(format!("downloaded {got} bytes of {file}, expected {size}"));
        }
        let _ = std::fs::remove_dir_all(&downloads);
        Ok(Downloaded {
            mbps: rate,
            ended,
            command_secs,
        })
    }
}

/// One download by [`Bench::download_timed`].
struct Downloaded {
    /// The rate of its `saved ...` line (first chunk request to last chunk written), MB/s.
    mbps: f64,
    ended: Ended,
    /// From the `get` command to its `saved ...` line (the file complete), seconds.
    command_secs: f64,
}

struct PeerStart {
    proc: Proc,
    addr: SocketAddr,
    /// Its "sharing N files ..." line.
    sharing: String,
    /// Spawn to that line.
    sharing_secs: f64,
    /// Spawn to first file list answered (if asked for).
    serving_ms: f64,
}

/// Which parts of the benchmark run (all by default).
#[derive(Clone, Debug)]
pub struct Parts {
    /// Rows 1, 3 (large file) and 4.
    pub transfer: bool,
    /// Row 3 (small file).
    pub small: bool,
    /// Row 4, first-start hashing alone.
    pub hashing: bool,
    /// Row 6.
    pub delay: bool,
    /// Row 5.
    pub tracker: bool,
    /// Row 5, in process: the tracker's state machine with many simulated peers.
    pub scale: bool,
    /// Rows 7 and 8.
    pub folders: bool,
}

impl Default for Parts {
    fn default() -> Parts {
        Parts {
            transfer: true,
            small: true,
            hashing: true,
            delay: true,
            tracker: true,
            scale: true,
            folders: true,
        }
    }
}

pub fn run(cfg: &Config) -> Result<Results, String> {
    let mut results = Results::default();
    // First, while this process has allocated little: its resident set is the measurement.
    if cfg.parts.scale {
        for &n in &cfg.sim_peers {
            say(cfg, &format!("tracker in process: {n} simulated peers"));
            results.scale.push(tracker_scale::run(n, cfg.load_phase)?);
        }
    }
    let base = cfg.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).map_err(io_err("benchmark folder"))?;
    let dir = tempfile::Builder::new()
        .prefix("p2p-bench-")
        .tempdir_in(&base)
        .map_err(io_err("benchmark folder"))?;
    let b = Bench { cfg, dir };
    for d in ["big", "small", "empty"] {
        std::fs::create_dir_all(b.path(d)).map_err(io_err("benchmark folder"))?;
    }
    say(
        cfg,
        &format!("writing test files in {}", b.dir.path().display()),
    );
    if cfg.parts.transfer || cfg.parts.hashing {
        write_random_file(&b.path("big/big.bin"), cfg.big, 0x9E37_79B9_7F4A_7C15)
            .map_err(io_err("test file"))?;
    }
    write_random_file(&b.path("small/small.bin"), cfg.small, 0x2545_F491_4F6C_DD1D)
        .map_err(io_err("test file"))?;

    if cfg.parts.transfer {
        transfer_rows(&b, &mut results)?;
    }
    if cfg.parts.small {
        results.rss.insert(0, small_rss_row(&b)?);
    }
    if cfg.parts.hashing {
        results.hashing = Some(hashing_row(&b)?);
    }
    if cfg.parts.delay {
        results.delay = Some(delayed_download(&b)?);
    }
    if cfg.parts.folders {
        results.folders = Some(folders::folder_rows(&b)?);
    }
    if cfg.parts.tracker {
        for &n in &cfg.tracker_peers {
            say(cfg, &format!("tracker: {n} simulated peers"));
            let (mut t, taddr) = b.start_tracker(Place::Host, n)?;
            let generator = loadgen::LoadGen::new(taddr, n)
                .map_err(io_err("load generator"))?
                .watch(t.pid());
            let load = generator.run(cfg.load_phase, cfg.load_concurrency)?;
            let ended = t.stop_measured()?;
            results.tracker.push(TrackerRow {
                load,
                tracker_rss_kib: ended.max_rss_kib,
            });
        }
    }
    Ok(results)
}

/// Rows 4, 1 and 3 (large file): start-up, then the verified download and its yardsticks.
fn transfer_rows(b: &Bench, results: &mut Results) -> Result<(), String> {
    let cfg = b.cfg;
    let big = b.path("big/big.bin");
    let (mut tracker, taddr) = b.start_tracker(Place::Host, 0)?;

    // 4. Start-up with the big file shared: first start hashes it, the restart uses the cache.
    say(cfg, "start-up: first start (hashing)");
    let first = b.start_peer(Place::Host, "sender", taddr, "big", true, true)?;
    let first_hash_mbps = summary_rate(&first.sharing).ok_or_else(|| {
        format!(
            "no hashing rate in the first start's line '{}'",
            first.sharing
        )
    })?;
    let first_serving_ms = first.serving_ms;
    let mut first = first.proc;
    first.terminate(); // unregisters, so the restart can take the name again
    std::thread::sleep(Duration::from_millis(100));
    say(cfg, "start-up: restart with the hash cache");
    let restart = b.start_peer(Place::Host, "sender", taddr, "big", true, true)?;
    if restart.sharing.contains("hashed") {
        results
            .notes
            .push(format!("the restart hashed again: '{}'", restart.sharing));
    }
    results.startup = Some(Startup {
        size: cfg.big,
        first_hash_mbps,
        first_serving_ms,
        restart_serving_ms: restart.serving_ms,
    });
    let mut sender = restart.proc;
    // More sources for row 2: the same folder, each with its own state folder holding a copy
    // of the hash cache (so they start without hashing).
    let mut extra = Vec::new();
    for n in 2..=cfg.max_sources {
        let name = format!("sender{n}");
        let cache = |state: &str| b.path(&format!("{state}-state/.p2p/hash-cache.cbor"));
        let state = format!("big{n}");
        if let Some(dir) = cache(&state).parent() {
            std::fs::create_dir_all(dir).map_err(io_err("state folder"))?;
        }
        let _ = std::fs::copy(cache("big"), cache(&state));
        let p = b.start_peer_in(Place::Host, &name, taddr, "big", &state, true, false)?;
        extra.push((name, p.proc));
    }
    let mut swarm: Vec<(usize, f64, Vec<f64>)> = (2..=cfg.max_sources)
        .map(|n| (n, 0.0, Vec::new()))
        .collect();

    // 1. Verified download against its yardsticks, interleaved so that a noisy neighbour hurts
    //    both sides alike; the best of `repeat` runs counts for each.
    let mut t = Transfer {
        download_mbps: 0.0,
        all_download_mbps: Vec::new(),
        reference_mbps: 0.0,
        tcp_mbps: 0.0,
        sha_mbps: 0.0,
        receiver_cpu_per_gib: 0.0,
        reference_cpu_per_gib: 0.0,
        sender_cpu_per_gib: 0.0,
        swarm: Vec::new(),
        scp: Err("not measured".into()),
    };
    let mut sshd = match scp::unavailable() {
        Some(why) => Err(why),
        None if !cfg.scp => Err("left out (--quick)".into()),
        None => scp::Sshd::start(&b.path("sshd")).map_err(|e| format!("sshd: {e}")),
    };
    let mut receiver_rss = 0;
    let want_sha = reference::sha256_speed(&big).map_err(io_err("hashing"))?.1;
    for round in 1..=cfg.repeat.max(1) {
        say(cfg, &format!("round {round}: plain TCP copy"));
        t.tcp_mbps = t
            .tcp_mbps
            .max(reference::tcp_copy(&big).map_err(io_err("TCP copy"))?);
        say(cfg, &format!("round {round}: reference loop"));
        let (rate, sha, cpu) = reference::reference_loop(&big, &b.path("reference.out"))
            .map_err(io_err("reference loop"))?;
        if sha != want_sha {
            return Err("the reference loop received other bytes".into());
        }
        t.reference_mbps = t.reference_mbps.max(rate);
        t.reference_cpu_per_gib = least(t.reference_cpu_per_gib, cpu / gib(cfg.big));
        say(cfg, &format!("round {round}: single-core SHA-256"));
        t.sha_mbps = t
            .sha_mbps
            .max(reference::sha256_speed(&big).map_err(io_err("hashing"))?.0);
        say(cfg, &format!("round {round}: p2p verified download"));
        let sender_cpu = sender.cpu_secs_now();
        let (rate, ended) = b.download(Place::Host, taddr, "sender", "big.bin", cfg.big, "big")?;
        if let (Some(before), Some(after)) = (sender_cpu, sender.cpu_secs_now()) {
            t.sender_cpu_per_gib = least(t.sender_cpu_per_gib, (after - before) / gib(cfg.big));
        }
        t.all_download_mbps.push(rate);
        t.download_mbps = t.download_mbps.max(rate);
        if let Ok(server) = sshd.as_mut() {
            say(cfg, &format!("round {round}: scp from a loopback sshd"));
            let run = server
                .copy(&big, &b.path("scp.out"))
                .map_err(|e| format!("scp: {e}"));
            t.scp = match (std::mem::replace(&mut t.scp, Err(String::new())), run) {
                (Ok((m, c, s, cipher)), Ok(r)) => Ok((
                    m.max(r.mbps),
                    c.min(r.client_cpu / gib(cfg.big)),
                    s.min(r.server_cpu / gib(cfg.big)),
                    cipher,
                )),
                (_, Ok(r)) => Ok((
                    r.mbps,
                    r.client_cpu / gib(cfg.big),
                    r.server_cpu / gib(cfg.big),
                    server.cipher.clone(),
                )),
                (_, Err(e)) => Err(e),
            };
            let _ = std::fs::remove_file(b.path("scp.out"));
        }
        t.receiver_cpu_per_gib = least(t.receiver_cpu_per_gib, ended.cpu_secs / gib(cfg.big));
        receiver_rss = receiver_rss.max(ended.max_rss_kib);
        for (n, best, all) in &mut swarm {
            say(
                cfg,
                &format!("round {round}: p2p verified download, {n} sources"),
            );
            let mut from = vec!["sender".to_string()];
            from.extend(extra.iter().take(*n - 1).map(|(name, _)| name.clone()));
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            let (rate, ended) =
                b.download_from(Place::Host, taddr, &from, "big.bin", cfg.big, "swarm")?;
            all.push(rate);
            *best = best.max(rate);
            receiver_rss = receiver_rss.max(ended.max_rss_kib);
        }
    }
    t.swarm = swarm;
    if let Err(why) = &sshd {
        t.scp = Err(why.clone());
    }
    for (_, mut p) in extra {
        p.terminate();
    }
    let sender_end = sender.stop_measured()?;
    results.rss.push(Rss {
        size: cfg.big,
        sender_kib: sender_end.max_rss_kib,
        receiver_kib: receiver_rss,
        download_mbps: t.download_mbps,
    });
    results.transfer = Some(t);
    tracker.terminate();
    Ok(())
}

/// Row 4, first-start hashing alone: `repeat` rounds of single-core SHA-256 of the big file,
/// then a peer started on it with an empty state folder (so it hashes everything); the rate
/// is the file's size over the time from spawning the peer to its `sharing ...` line.
fn hashing_row(b: &Bench) -> Result<Hashing, String> {
    let cfg = b.cfg;
    let big = b.path("big/big.bin");
    let (mut tracker, taddr) = b.start_tracker(Place::Host, 0)?;
    let mut row = Hashing {
        size: cfg.big,
        cpu_per_gib: f64::MAX,
        ..Hashing::default()
    };
    for round in 1..=cfg.repeat.max(1) {
        say(cfg, &format!("round {round}: single-core SHA-256"));
        let (sha, _) = reference::sha256_speed(&big).map_err(io_err("hashing"))?;
        row.sha_mbps = row.sha_mbps.max(sha);
        say(cfg, &format!("round {round}: first start, hashing"));
        let state = format!("hashing{round}");
        let _ = std::fs::remove_dir_all(b.path(&format!("{state}-state")));
        let p = b.start_peer_in(Place::Host, "hasher", taddr, "big", &state, false, false)?;
        // Timed here rather than read from the line, which rounds to 0.1 GiB/s.
        let rate = cfg.big as f64 / p.sharing_secs / 1e6;
        let mut proc = p.proc;
        if let Some(cpu) = proc.cpu_secs_now() {
            row.cpu_per_gib = least(row.cpu_per_gib, cpu / gib(cfg.big));
        }
        proc.terminate();
        row.rounds.push(rate);
    }
    tracker.terminate();
    Ok(row)
}

/// Row 3 for the small file, with fresh processes.
fn small_rss_row(b: &Bench) -> Result<Rss, String> {
    let cfg = b.cfg;
    say(cfg, "small file: sender and receiver RSS");
    let (mut tracker, taddr) = b.start_tracker(Place::Host, 0)?;
    let mut small_sender = b
        .start_peer(Place::Host, "small-sender", taddr, "small", true, false)?
        .proc;
    let (rate, recv_end) = b.download(
        Place::Host,
        taddr,
        "small-sender",
        "small.bin",
        cfg.small,
        "small",
    )?;
    let send_end = small_sender.stop_measured()?;
    tracker.terminate();
    Ok(Rss {
        size: cfg.small,
        sender_kib: send_end.max_rss_kib,
        receiver_kib: recv_end.max_rss_kib,
        download_mbps: rate,
    })
}

/// Row 6: the small file with and without the delay, through the same path both times, and
/// in the same rounds `curl -o` of the same file from a loopback nginx over the same delay
/// ([`nginx`]), alternated with ours.
fn delayed_download(b: &Bench) -> Result<DelayRow, String> {
    let cfg = b.cfg;
    let one_way = cfg.delay_rtt / 2;
    let netem = match cfg.delay_method {
        DelayMethod::Proxy => Err("the proxy was asked for".to_string()),
        DelayMethod::Auto => delay::netem_available(),
    };
    let mut row = DelayRow {
        size: cfg.small,
        rtt: cfg.delay_rtt,
        method: String::new(),
        no_delay_secs: 0.0,
        delayed_secs: 0.0,
        command_secs: [Vec::new(), Vec::new()],
        curl: match nginx::unavailable() {
            Some(why) => Err(why),
            None => Ok([Vec::new(), Vec::new()]),
        },
    };
    let rounds = cfg.repeat.max(1);
    let mut summary_secs = [f64::MAX; 2];
    // Where netem is missing, a packet-level link of TUN devices is the next best (TCP's own
    // handshake and slow start cross the delay, as on a real link); the TCP proxy only where
    // neither can be made.
    let tun = match (&netem, cfg.delay_method) {
        (Err(_), DelayMethod::Auto) => Some(tun_link::TunLink::available()),
        _ => None,
    };
    match netem {
        Err(why) if matches!(tun, Some(Ok(()))) => {
            row.method = format!(
                "packet-level link of two TUN devices, {} ms each way, MTU {}, TCP congestion \
                 control {} (netem not available: {why})",
                one_way.as_millis(),
                tun_link::MTU,
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
                    .map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_string())
            );
            for (i, d) in [Duration::ZERO, one_way].into_iter().enumerate() {
                say(
                    cfg,
                    &format!("delayed link: TUN, one-way {} ms", d.as_millis()),
                );
                let link = tun_link::TunLink::create(&format!("t{i}"), d)?;
                let (far, near) = (Place::Far(&link), Place::Near(&link));
                let (mut t, taddr) = b.start_tracker(far, 0)?;
                let mut s = b.start_peer(far, "far", taddr, "small", true, false)?.proc;
                let server = b.start_nginx(&mut row.curl, &format!("nginx-{i}"), far);
                for _ in 0..rounds {
                    let got =
                        b.download_timed(near, taddr, &["far"], "small.bin", cfg.small, "delay")?;
                    summary_secs[i] = summary_secs[i].min(cfg.small as f64 / got.mbps / 1e6);
                    row.command_secs[i].push(got.command_secs);
                    if let Some(server) = &server {
                        b.curl_round(&mut row.curl, i, server.addr, near);
                    }
                }
                drop(server);
                s.terminate();
                t.terminate();
            }
        }
        Ok(()) => {
            row.method = format!(
                "netem delay {} ms on lo in a network namespace",
                one_way.as_millis()
            );
            for (i, d) in [Duration::ZERO, one_way].into_iter().enumerate() {
                say(
                    cfg,
                    &format!("delayed link: netem, one-way {} ms", d.as_millis()),
                );
                let ns = delay::Netns::create(&format!("d{i}"), d)?;
                let place = Place::Netns(&ns);
                let (mut t, taddr) = b.start_tracker(place, 0)?;
                let mut s = b
                    .start_peer(place, "far", taddr, "small", true, false)?
                    .proc;
                let server = b.start_nginx(&mut row.curl, &format!("nginx-{i}"), place);
                for _ in 0..rounds {
                    let got =
                        b.download_timed(place, taddr, &["far"], "small.bin", cfg.small, "delay")?;
                    summary_secs[i] = summary_secs[i].min(cfg.small as f64 / got.mbps / 1e6);
                    row.command_secs[i].push(got.command_secs);
                    if let Some(server) = &server {
                        b.curl_round(&mut row.curl, i, server.addr, place);
                    }
                }
                drop(server);
                s.terminate();
                t.terminate();
            }
        }
        Err(why) => {
            let no_tun = match tun {
                Some(Err(e)) => format!("; no TUN link: {e}"),
                _ => String::new(),
            };
            row.method = format!(
                "user-space delay proxy, {} ms each way (netem not available: {why}{no_tun})",
                one_way.as_millis()
            );
            let (mut t, taddr) = b.start_tracker(Place::Host, 0)?;
            // The source registers with no tracker (it keeps retrying a closed port); the
            // benchmark registers its name at the proxy, so the receiver goes through it.
            let nowhere: SocketAddr = "127.0.0.1:1".parse().expect("valid address");
            let far = b.start_peer(Place::Host, "far", nowhere, "small", false, false)?;
            let (mut s, saddr) = (far.proc, far.addr);
            let server = b.start_nginx(&mut row.curl, "nginx", Place::Host);
            for (i, d) in [Duration::ZERO, one_way].into_iter().enumerate() {
                say(
                    cfg,
                    &format!("delayed link: proxy, one-way {} ms", d.as_millis()),
                );
                let proxy = delay::DelayProxy::start(saddr, d).map_err(io_err("delay proxy"))?;
                let web_proxy = match &server {
                    Some(server) => Some(
                        delay::DelayProxy::start(server.addr, d)
                            .map_err(io_err("delay proxy for nginx"))?,
                    ),
                    None => None,
                };
                let key = b.path("key-far.key");
                let alias = register_alias(taddr, "far", proxy.addr.port(), &key)
                    .map_err(io_err("registering the proxy"))?;
                for _ in 0..rounds {
                    let got = b.download_timed(
                        Place::Host,
                        taddr,
                        &["far"],
                        "small.bin",
                        cfg.small,
                        "delay",
                    )?;
                    summary_secs[i] = summary_secs[i].min(cfg.small as f64 / got.mbps / 1e6);
                    row.command_secs[i].push(got.command_secs);
                    if let Some(web) = &web_proxy {
                        b.curl_round(&mut row.curl, i, web.addr, Place::Host);
                    }
                }
                drop(alias);
                drop(proxy);
                drop(web_proxy);
                // The tracker forgets the alias when its connection closes; wait for that
                // before the next registration of the same name.
                std::thread::sleep(Duration::from_millis(200));
            }
            drop(server);
            s.terminate();
            t.terminate();
        }
    }
    row.no_delay_secs = summary_secs[0];
    row.delayed_secs = summary_secs[1];
    Ok(row)
}

impl Bench<'_> {
    /// nginx serving the small file's folder, unless the comparison is already off (`curl`
    /// holds why); a failure to start turns it off with the reason.
    fn start_nginx(
        &self,
        curl: &mut Result<[Vec<f64>; 2], String>,
        tag: &str,
        place: Place,
    ) -> Option<nginx::Nginx> {
        curl.as_ref().ok()?;
        let (root, dir) = (self.path("small"), self.path(tag));
        match nginx::Nginx::start(&root, &dir, place.ip(), |p| place.command(p)) {
            Ok(server) => Some(server),
            Err(why) => {
                *curl = Err(why);
                None
            }
        }
    }

    /// One `curl -o` of the small file from `addr` (nginx or the delay proxy in front of
    /// it) into `curl[i]`; a failure turns the comparison off with the reason (no figure).
    fn curl_round(
        &self,
        curl: &mut Result<[Vec<f64>; 2], String>,
        i: usize,
        addr: SocketAddr,
        place: Place,
    ) {
        let Ok(times) = curl.as_mut() else { return };
        let url = format!("http://{addr}/small.bin");
        match nginx::curl_get(&url, &self.path("curl.out"), self.cfg.small, |p| {
            place.command(p)
        }) {
            Ok(secs) => times[i].push(secs),
            Err(why) => *curl = Err(why),
        }
    }
}

/// The least of some times (0 if there are none).
fn best_secs(all: &[f64]) -> f64 {
    all.iter().copied().reduce(f64::min).unwrap_or(0.0)
}

fn list_secs(all: &[f64]) -> String {
    all.iter()
        .map(|s| format!("{s:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The smaller of two CPU times, 0 meaning "none yet".
fn least(a: f64, b: f64) -> f64 {
    if a == 0.0 { b } else { a.min(b) }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Results {
    /// The results as a Markdown table (plus notes), ready for docs/performance.md.
    pub fn table(&self, cfg: &Config) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| # | measurement | result | compared with | target |\n|---|---|---|---|---|"
        );
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let sha_mbps = self.transfer.as_ref().map_or(0.0, |t| t.sha_mbps);
        if let Some(t) = &self.transfer {
            let _ = writeln!(
                out,
                "| 1 | verified download, {}, 1 source (best of {}: {}) | **{:.0} MB/s** | \
             **{:.2}×** reference loop ({:.0} MB/s) · {:.2}× single-core SHA-256 ({:.0} MB/s) · \
             {:.2}× plain TCP copy ({:.0} MB/s) | ≥ 0.9× reference loop |",
                size(cfg.big),
                cfg.repeat.max(1),
                t.all_download_mbps
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.download_mbps,
                ratio(t.download_mbps, t.reference_mbps),
                t.reference_mbps,
                ratio(t.download_mbps, t.sha_mbps),
                t.sha_mbps,
                ratio(t.download_mbps, t.tcp_mbps),
                t.tcp_mbps
            );
            let _ = writeln!(
                out,
                "| 1 | CPU time per GiB (least of the runs; steadier than MB/s on a busy machine) \
                 | receiver **{:.2} s**, sender {:.2} s | **{:.2}×** the reference loop's \
                 receiving thread ({:.2} s); sender measured during the one-source downloads | |",
                t.receiver_cpu_per_gib,
                t.sender_cpu_per_gib,
                ratio(t.receiver_cpu_per_gib, t.reference_cpu_per_gib),
                t.reference_cpu_per_gib
            );
            match &t.scp {
                Ok((mbps, client, server, cipher)) => {
                    let _ = writeln!(
                        out,
                        "| 1 | `scp` from a loopback `sshd` ({cipher}; encrypts, verifies no \
                         content id), best of {} | {mbps:.0} MB/s | p2p **{:.2}×** scp · CPU \
                         s/GiB: scp client {client:.2}, sshd {server:.2} (p2p receiver {:.2}, \
                         sender {:.2}) | p2p ≥ 1.0× scp |",
                        cfg.repeat.max(1),
                        ratio(t.download_mbps, *mbps),
                        t.receiver_cpu_per_gib,
                        t.sender_cpu_per_gib
                    );
                }
                Err(why) => {
                    let _ = writeln!(out, "| 1 | `scp` from a loopback `sshd` | — | {why} | |");
                }
            }
            for (n, best, all) in &t.swarm {
                let runs: Vec<String> = all.iter().map(|r| format!("{r:.0}")).collect();
                let _ = writeln!(
                    out,
                    "| 2 | verified download, {}, {n} sources (`get FILE`, best of {}: {}) | \
                     **{best:.0} MB/s** | **{:.2}×** one source · {:.2}× reference loop; all \
                     sources and the receiver share this machine's CPUs | |",
                    size(cfg.big),
                    all.len(),
                    runs.join(", "),
                    ratio(*best, t.download_mbps),
                    ratio(*best, t.reference_mbps)
                );
            }
        }
        for r in &self.rss {
            let _ = writeln!(
                out,
                "| 3 | peak RSS, {} file: sender / receiver | **{} / {}** | download at {:.0} MB/s \
                 | < 64 MiB each |",
                size(r.size),
                mib(r.sender_kib),
                mib(r.receiver_kib),
                r.download_mbps
            );
        }
        if let Some(s) = &self.startup {
            let _ = writeln!(
                out,
                "| 4 | start-up sharing {}: first start (hashing) | **{:.0} MB/s** hashing, serving \
             after {:.0} ms | {:.2}× single-core SHA-256 | |",
                size(s.size),
                s.first_hash_mbps,
                s.first_serving_ms,
                ratio(s.first_hash_mbps, sha_mbps)
            );
            let _ = writeln!(
                out,
                "| 4 | start-up sharing {}: restart with the hash cache | **{:.0} ms** to serving | \
             process start to first file list answered | < 100 ms |",
                size(s.size),
                s.restart_serving_ms
            );
        }
        if let Some(h) = &self.hashing {
            let best = h.rounds.iter().copied().fold(0.0, f64::max);
            let runs: Vec<String> = h.rounds.iter().map(|r| format!("{r:.0}")).collect();
            let _ = writeln!(
                out,
                "| 4 | first-start hashing, {} (best of {}: {}; alternated with SHA-256) | \
                 **{best:.0} MB/s** | **{:.2}×** single-core SHA-256 ({:.0} MB/s); peer CPU \
                 {:.2} s per GiB until sharing | ≥ 0.8× single-core SHA-256 |",
                size(h.size),
                h.rounds.len(),
                runs.join(", "),
                ratio(best, h.sha_mbps),
                h.sha_mbps,
                h.cpu_per_gib
            );
        }
        for row in &self.tracker {
            let l = &row.load;
            let _ = writeln!(
                out,
                "| 5 | tracker, {} peers: register | **{} req/s**, p99 {:.2} ms | {} in flight; \
                 set-up (connect + Hello + Register) {} peers/s, p99 {:.1} ms | ≥ 20,000 req/s |",
                thousands(l.peers as f64),
                thousands(l.register.per_sec),
                l.register.p99_ms,
                cfg.load_concurrency,
                thousands(l.setup.per_sec),
                l.setup.p99_ms
            );
            let _ = writeln!(
                out,
                "| 5 | tracker, {} peers: list | **{} req/s**, p99 {:.2} ms | {} in flight; each \
                 answer lists {} peers | ≥ 20,000 req/s |",
                thousands(l.peers as f64),
                thousands(l.list.per_sec),
                l.list.p99_ms,
                cfg.load_concurrency,
                thousands(l.listed as f64)
            );
            let _ = writeln!(
                out,
                "| 5 | tracker, {} peers: peak RSS | **{}** | {} once all registered, {} after the \
                 register phase (the rest: list answers queued); {} heartbeats | < 100 MiB at \
                 10,000 |",
                thousands(l.peers as f64),
                mib(row.tracker_rss_kib),
                mib(l.rss_registered_kib),
                mib(l.rss_after_register_kib),
                thousands(l.heartbeats as f64)
            );
        }
        for r in &self.scale {
            let n = thousands(r.peers as f64);
            let per_peer = |kib: u64| kib as f64 * 1024.0 / r.peers.max(1) as f64;
            let heap = r.registered.heap_kib.saturating_sub(r.before.heap_kib);
            let _ = writeln!(
                out,
                "| 5 | tracker state machine in process (no sockets), {n} simulated peers: \
                 RSS growth | **{}** once all registered ({:.0} bytes a peer), {} after the \
                 load phases | heap in use +{} (accepted +{}, Hello +{}, registered +{}); \
                 process peak {} | < 500 MiB at 100,000 |",
                mib(r.rss_growth_kib()),
                per_peer(r.rss_growth_kib()),
                mib(r.rss_growth_after_load_kib()),
                mib(heap),
                mib(r.accepted.heap_kib.saturating_sub(r.before.heap_kib)),
                mib(r.hello.heap_kib.saturating_sub(r.accepted.heap_kib)),
                mib(r.registered.heap_kib.saturating_sub(r.hello.heap_kib)),
                mib(r.peak_kib),
            );
            let _ = writeln!(
                out,
                "| 5 | tracker state machine in process, {n} simulated peers: requests | \
                 register **{} req/s**, list **{} req/s** (in process, one thread) | set-up \
                 (accept + Hello + Register) {} peers/s; each list answer holds {} peers; not \
                 the socket figures above | |",
                thousands(r.register.per_sec),
                thousands(r.list.per_sec),
                thousands(r.setup.per_sec),
                r.listed,
            );
        }
        if let Some(d) = &self.delay {
            let _ = writeln!(
                out,
                "| 6 | {} download over a {} ms round trip (summary line, best of {}) | \
                 **{:.2} s** | {:.2} s without delay: **{:.1}×**; {} | ≤ 2× |",
                size(d.size),
                d.rtt.as_millis(),
                d.command_secs[1].len(),
                d.delayed_secs,
                d.no_delay_secs,
                ratio(d.delayed_secs, d.no_delay_secs),
                d.method
            );
            let ours = best_secs(&d.command_secs[1]);
            let ours_no_delay = best_secs(&d.command_secs[0]);
            let what = format!(
                "| 6 | {} over a {} ms round trip, `get` command to file saved (best of {}: {}) \
                 | **{ours:.2} s** ({ours_no_delay:.2} s without delay)",
                size(d.size),
                d.rtt.as_millis(),
                d.command_secs[1].len(),
                list_secs(&d.command_secs[1]),
            );
            match &d.curl {
                Ok(curl) => {
                    let web = best_secs(&curl[1]);
                    let _ = writeln!(
                        out,
                        "{what} | **{:.2}×** `curl -o` from a loopback nginx over the same link \
                         ({web:.2} s, best of {}: {}; {:.2} s without delay: p2p {:.2}× there) \
                         · summary-line time {:.2}× curl | ≤ 1.1× curl←nginx |",
                        ratio(ours, web),
                        curl[1].len(),
                        list_secs(&curl[1]),
                        best_secs(&curl[0]),
                        ratio(ours_no_delay, best_secs(&curl[0])),
                        ratio(d.delayed_secs, web),
                    );
                }
                Err(why) => {
                    let _ = writeln!(
                        out,
                        "{what} | curl←nginx not measured: {why} | ≤ 1.1× curl←nginx |"
                    );
                }
            }
        }
        if let Some(f) = &self.folders {
            folders::rows_table(f, &mut out);
        }
        for n in &self.notes {
            let _ = writeln!(out, "\nNote: {n}");
        }
        out
    }

    /// For the smoke test: every figure is there and plausible (no speed thresholds).
    pub fn check_sane(&self, cfg: &Config) -> Result<(), String> {
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} is {v}"))
            }
        };
        let t = self.transfer.as_ref().ok_or("no transfer row")?;
        positive("download MB/s", t.download_mbps)?;
        positive("reference MB/s", t.reference_mbps)?;
        positive("TCP copy MB/s", t.tcp_mbps)?;
        positive("SHA-256 MB/s", t.sha_mbps)?;
        positive("receiver CPU", t.receiver_cpu_per_gib)?;
        positive("reference CPU", t.reference_cpu_per_gib)?;
        for (n, best, _) in &t.swarm {
            positive(&format!("{n}-source MB/s"), *best)?;
        }
        if t.swarm.len() + 1 != cfg.max_sources.max(1) {
            return Err(format!("{} swarm rows", t.swarm.len()));
        }
        if self.rss.len() != 2 {
            return Err(format!("{} RSS rows", self.rss.len()));
        }
        for r in &self.rss {
            for (who, kib) in [("sender", r.sender_kib), ("receiver", r.receiver_kib)] {
                if kib == 0 || kib > 4 * 1024 * 1024 {
                    return Err(format!("{who} peak RSS of {kib} KiB"));
                }
            }
        }
        let startup = self.startup.as_ref().ok_or("no start-up row")?;
        positive("first start hashing MB/s", startup.first_hash_mbps)?;
        positive("restart ms", startup.restart_serving_ms)?;
        if cfg.parts.hashing {
            let h = self.hashing.as_ref().ok_or("no hashing row")?;
            if h.rounds.len() != cfg.repeat.max(1) {
                return Err(format!("{} hashing rounds", h.rounds.len()));
            }
            for r in &h.rounds {
                positive("first-start hashing MB/s", *r)?;
            }
            positive("SHA-256 MB/s (hashing row)", h.sha_mbps)?;
            positive("hashing CPU", h.cpu_per_gib)?;
        }
        if self.tracker.len() != cfg.tracker_peers.len() {
            return Err("missing tracker rows".into());
        }
        for row in &self.tracker {
            let l = &row.load;
            if l.listed != l.peers {
                return Err(format!("a list held {} of {} peers", l.listed, l.peers));
            }
            positive("register req/s", l.register.per_sec)?;
            positive("list req/s", l.list.per_sec)?;
            positive("tracker RSS", row.tracker_rss_kib as f64)?;
        }
        if cfg.parts.scale {
            if self.scale.len() != cfg.sim_peers.len() {
                return Err(format!("{} in-process tracker rows", self.scale.len()));
            }
            for r in &self.scale {
                // Reported, not judged: only that the figures were read.
                positive("RSS before the in-process tracker", r.before.rss_kib as f64)?;
                positive(
                    "RSS with the in-process tracker",
                    r.registered.rss_kib as f64,
                )?;
                positive("in-process register req/s", r.register.per_sec)?;
                positive("in-process list req/s", r.list.per_sec)?;
                if r.listed != r.peers.min(p2p::tracker::MAX_LISTED) {
                    return Err(format!("an in-process list held {} peers", r.listed));
                }
            }
        }
        let delay = self.delay.as_ref().ok_or("no delay row")?;
        positive("no-delay seconds", delay.no_delay_secs)?;
        positive("delayed seconds", delay.delayed_secs)?;
        let rounds = cfg.repeat.max(1);
        for (what, all) in [
            ("no-delay command seconds", &delay.command_secs[0]),
            ("delayed command seconds", &delay.command_secs[1]),
        ] {
            if all.len() != rounds {
                return Err(format!("{} rounds of {what}", all.len()));
            }
            for v in all {
                positive(what, *v)?;
            }
        }
        // Where nginx and curl are installed the comparison must have run; where they are
        // not, the row says so.
        match (&delay.curl, nginx::unavailable()) {
            (Ok(curl), _) => {
                for all in curl {
                    if all.len() != rounds {
                        return Err(format!("{} rounds of curl←nginx", all.len()));
                    }
                    for v in all {
                        positive("curl←nginx seconds", *v)?;
                    }
                }
            }
            (Err(why), None) => return Err(format!("curl←nginx did not run: {why}")),
            (Err(_), Some(_)) => {}
        }
        if cfg.parts.folders {
            let f = self.folders.as_ref().ok_or("no folder rows")?;
            let rounds = cfg.repeat.max(1);
            for (what, all) in [
                ("small-file folder seconds", &f.small_secs),
                ("folder of big files MB/s", &f.parts_mbps),
                ("one big file MB/s", &f.one_mbps),
            ] {
                if all.len() != rounds {
                    return Err(format!("{} rounds of {what}", all.len()));
                }
                for v in all {
                    positive(what, *v)?;
                }
            }
        }
        Ok(())
    }
}

/// One line saying where and when the figures were taken.
pub fn header() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "p2p benchmark: {cpus} CPUs ({model}), load average {} at the end, commit {rev}\n",
        load.join(" ")
    )
}
