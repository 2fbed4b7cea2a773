//! `p2p`: the command line. Parses flags with clap and hands over to the tracker or the peer.

use clap::{Parser, Subcommand};
use p2p::peer::{BatchSource, Mode, PeerConfig};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Peer-to-peer file sharing: a tracker helps peers find each other; files (verified chunk by
/// chunk with SHA-256) and messages go straight from peer to peer.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the tracker that peers register with to find each other.
    Tracker {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:9000", value_name = "ADDR")]
        listen: SocketAddr,
        /// Seconds after which a peer that stopped heartbeating is forgotten.
        #[arg(long, default_value_t = 30, value_name = "SECS",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        peer_ttl: u64,
        /// Most names one IP address may register at once.
        #[arg(long, default_value_t = p2p::tracker::DEFAULT_MAX_PEERS_PER_IP, value_name = "N",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
        max_peers_per_ip: usize,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a peer: share a folder, download from others, chat. Opens a REPL unless --batch or
    /// --serve is given.
    Peer {
        /// This peer's name (1-32 bytes, no spaces or control characters), unique on the tracker.
        #[arg(long)]
        name: String,
        /// Tracker address (host:port).
        #[arg(
            long,
            env = "P2P_TRACKER",
            default_value = "127.0.0.1:9000",
            value_name = "ADDR"
        )]
        tracker: String,
        /// Address to accept peer connections on (port 0: the OS picks one).
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        listen: SocketAddr,
        /// Folder whose files are shared (created if missing).
        #[arg(long, default_value = "shared", value_name = "DIR")]
        shared: PathBuf,
        /// Folder downloads are saved in (created if missing).
        #[arg(long, default_value = "downloads", value_name = "DIR")]
        downloads: PathBuf,
        /// Run the commands in FILE (one a line; `-` reads stdin) instead of a REPL. The first
        /// failing command ends the run with exit status 1.
        #[arg(long, value_name = "FILE")]
        batch: Option<String>,
        /// No REPL: serve until SIGINT/SIGTERM, printing messages and events (after the batch, if
        /// --batch is given too).
        #[arg(long)]
        serve: bool,
        /// Seconds a download waits for a source that went away (killed, network gone) before
        /// it pauses; the partial download is kept either way and `resume` continues it.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        retry_for: u64,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// Connection limits, the same for the tracker and the peer (README, "Limits").
#[derive(clap::Args)]
struct LimitArgs {
    /// Most accepted connections at once; more are refused with a Busy error (lowered to fit the
    /// open-file limit).
    #[arg(long, default_value_t = p2p::reactor::limits::DEFAULT_MAX_CONNECTIONS, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_conns: usize,
    /// Most accepted connections from one IP address at once.
    #[arg(long, default_value_t = p2p::reactor::limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
          value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_conns_per_ip: usize,
    /// Seconds an accepted connection may go without sending one complete frame before it is
    /// closed (the tracker never uses less than --peer-ttl).
    #[arg(long, env = "P2P_IDLE_TIMEOUT", value_name = "SECS",
          default_value_t = p2p::reactor::limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
}

impl LimitArgs {
    /// The limits to run with: raises the open-file limit first and fits the connection cap
    /// into it.
    fn apply(&self) -> p2p::reactor::Limits {
        let limits = p2p::reactor::Limits {
            max_connections: self.max_conns,
            max_connections_per_ip: self.max_conns_per_ip,
            idle_timeout: Duration::from_secs(self.idle_timeout),
        };
        match p2p::reactor::limits::raise_fd_limit() {
            Ok(fds) => limits.fitted_to(fds),
            Err(_) => limits,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Tracker {
            listen,
            peer_ttl,
            max_peers_per_ip,
            limits,
        } => {
            let config = p2p::tracker::TrackerConfig {
                peer_ttl: Duration::from_secs(peer_ttl),
                max_peers_per_ip,
                limits: limits.apply(),
                ..Default::default()
            };
            p2p::tracker::run(listen, config)
        }
        Cmd::Peer {
            name,
            tracker,
            listen,
            shared,
            downloads,
            batch,
            serve,
            retry_for,
            limits,
        } => {
            p2p::reactor::limits::set_process_limits(limits.apply());
            if let Err(why) = p2p::names::check_peer_name(&name) {
                return usage_error(&format!("invalid --name: {why}"));
            }
            let tracker = match resolve(&tracker) {
                Ok(addr) => addr,
                Err(why) => return usage_error(&format!("invalid --tracker '{tracker}': {why}")),
            };
            let mode = match (&batch, serve) {
                (Some(_), then_serve) => Mode::Batch { then_serve },
                (None, true) => Mode::Serve,
                (None, false) => Mode::Repl,
            };
            let batch = batch.map(|b| match b.as_str() {
                "-" => BatchSource::Stdin,
                path => BatchSource::File(path.into()),
            });
            let cfg = PeerConfig {
                name,
                tracker,
                shared_dir: shared,
                downloads_dir: downloads,
                mode,
                retry_for: Duration::from_secs(retry_for),
            };
            p2p::peer::run(cfg, listen, batch)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address found".to_string())
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(2)
}
