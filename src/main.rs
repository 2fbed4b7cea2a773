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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Tracker { listen, peer_ttl } => {
            let config = p2p::tracker::TrackerConfig {
                peer_ttl: Duration::from_secs(peer_ttl),
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
        } => {
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
