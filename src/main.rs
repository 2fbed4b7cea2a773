//! `p2p`: the command line. Parses flags with clap and hands over to the tracker or the peer.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use p2p::app::BatchSource;
use p2p::peer::{Mode, PeerConfig};
use p2p::repl::config::{self as settings, Given};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Peer-to-peer file sharing: a tracker helps peers find each other; files (verified chunk by
/// chunk with SHA-256) and messages go straight from peer to peer.
#[derive(Parser)]
#[command(version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 ok, 1 a command failed, 2 usage, 3 a download failed \
verification, 4 a peer or the tracker was unreachable, 5 downloads left unfinished (resumable)."
)]
struct Cli {
    /// Less output: no notices (listening, registered...), logs at error level only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More logs on stderr: -v info, -vv debug, -vvv trace (RUST_LOG, if set, decides instead).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

/// `p2p tracker --relay` and its limits (PROTOCOL.md §18).
#[derive(clap::Args)]
struct RelayArgs {
    /// Relay links between registered peers that cannot reach each other: the tracker
    /// splices their encrypted streams (it sees only ciphertext).
    #[arg(long)]
    relay: bool,
    /// Most relayed sessions at once (waiting for their target or running).
    #[arg(long, default_value_t = 64, value_name = "N", requires = "relay",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    relay_max_sessions: usize,
    /// Most relayed sessions one peer may be part of at once.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "relay",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    relay_max_sessions_per_peer: usize,
    /// Most bytes a second each way per relayed session (e.g. 2MB/s; `off`: unlimited).
    #[arg(long, value_name = "RATE", requires = "relay",
          value_parser = |s: &str| p2p::reactor::rate::parse_rate(s).map(RelayRate))]
    relay_max_rate: Option<RelayRate>,
}

/// A parsed `--relay-max-rate` (`None` inside: `off`).
#[derive(Clone)]
struct RelayRate(Option<u64>);

impl RelayArgs {
    fn config(&self) -> Option<p2p::tracker::relay::RelayConfig> {
        self.relay.then(|| p2p::tracker::relay::RelayConfig {
            max_sessions: self.relay_max_sessions,
            max_sessions_per_peer: self.relay_max_sessions_per_peer,
            max_rate: self.relay_max_rate.as_ref().and_then(|r| r.0),
            ..Default::default()
        })
    }
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
        /// Folder for the tracker's own state: its key (`identity.key`, made at first start;
        /// its id is printed at start) and which key held each name lately (`holds`: a name
        /// stays its key's for a day after its last registration, across restarts).
        #[arg(long, default_value = "tracker-state", value_name = "DIR")]
        state: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        relay: RelayArgs,
    },
    /// Run a peer: share a folder, download from others, chat. Opens a REPL unless --batch or
    /// --serve is given.
    Peer(Box<PeerArgs>),
    /// See the whole system work: a tracker and three peers in this process on 127.0.0.1, in a
    /// temporary folder removed afterwards; one peer downloads a generated file from the other
    /// two and sends a message.
    Demo {
        /// Size of the generated file, in MiB.
        #[arg(long, default_value_t = 64, value_name = "MIB",
              value_parser = clap::value_parser!(u64).range(1..=4096))]
        size_mib: u64,
    },
    /// Run a plain Mainline DHT node (server mode) for a private network or tests: peers started
    /// with `--dht-bootstrap ADDR` join through it. Prints `dht node listening on ADDR`, then
    /// serves until SIGINT/SIGTERM. It keeps no state and has no peer identity.
    DhtNode {
        /// UDP address to listen on (IPv4; port 0: the system picks one, printed at start).
        #[arg(long, value_name = "IP:PORT")]
        listen: SocketAddrV4,
        /// Another DHT node to join through (repeatable); none: this node is the first of
        /// its network. The public bootstrap nodes are never used by `dht-node`.
        #[arg(long = "dht-bootstrap", value_name = "ADDR")]
        dht_bootstrap: Vec<String>,
    },
    /// Print the content id and SHA-256 of each FILE, like sha256sum, without starting a peer:
    /// `cid1:HEX  SHA256  FILE`, one line a file. The content id is what others `get`.
    Id {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print shell completions for bash, zsh or fish (e.g. `p2p completions bash >
    /// ~/.local/share/bash-completion/completions/p2p`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

// The flags of `p2p peer` (its help text is the doc comment of `Cmd::Peer`).
#[derive(clap::Args)]
struct PeerArgs {
    /// This peer's name (1-32 bytes, no spaces or control characters), unique on the tracker.
    /// Required here, in $P2P_NAME or in the config file.
    #[arg(long, env = "P2P_NAME")]
    name: Option<String>,
    /// Tracker address (host:port) [default: 127.0.0.1:9000].
    #[arg(long, env = "P2P_TRACKER", value_name = "ADDR")]
    tracker: Option<String>,
    /// The tracker's id (it prints it at start): the link to the tracker must prove that key,
    /// or the tracker is treated as unreachable. Without it, any tracker key is accepted.
    #[arg(long, env = "P2P_TRACKER_ID", value_name = "ID",
          value_parser = |s: &str| s.parse::<p2p::identity::PeerId>().map_err(|e| e.to_string()))]
    tracker_id: Option<p2p::identity::PeerId>,
    /// Address to accept peer connections on (port 0: the OS picks one) [default: 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Folder whose files are shared (created if missing) [default: shared].
    #[arg(long, env = "P2P_SHARED", value_name = "DIR")]
    shared: Option<PathBuf>,
    /// Folder downloads are saved in (created if missing) [default: downloads].
    #[arg(long, env = "P2P_DOWNLOADS", value_name = "DIR")]
    downloads: Option<PathBuf>,
    /// Config file [default: $XDG_CONFIG_HOME/p2p/config.toml, else ~/.config/p2p/config.toml].
    /// Flags beat environment variables, which beat the config file.
    #[arg(long, env = "P2P_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print the settings this peer would run with and where each came from, then exit.
    #[arg(long)]
    print_config: bool,
    /// Print this peer's id and exit, starting no networking. The id is this peer's public
    /// key, kept with its private key in DOWNLOADS/.p2p/identity.key (made on first use,
    /// mode 0600); give it to others so they can check they reach this peer and no other.
    #[arg(long, conflicts_with = "print_config")]
    print_id: bool,
    /// With --batch or --serve: one JSON object per line on stdout for every result and
    /// event (README, "JSON output"); human text goes to stderr.
    #[arg(long)]
    json: bool,
    /// Run the commands in FILE (one a line; `-` reads stdin) instead of a REPL. The first
    /// failing command ends the run with exit status 1 (or 3, 4, 5: see `p2p --help`).
    #[arg(long, value_name = "FILE")]
    batch: Option<String>,
    /// No REPL: serve until SIGINT/SIGTERM, printing messages and events (after the batch, if
    /// --batch is given too).
    #[arg(long)]
    serve: bool,
    /// Seconds a download waits for a source that went away (killed, network gone) before
    /// it pauses; the partial download is kept either way and `resume` continues it
    /// [default: 60].
    #[arg(long, value_name = "SECONDS")]
    retry_for: Option<u64>,
    /// Continue the unfinished downloads of an earlier run as soon as the peer starts, in
    /// the background (`downloads` shows them) [default: yes in the REPL and with --serve,
    /// no with --batch, where the script says what to fetch].
    #[arg(long, env = "P2P_RESUME_ON_START", value_name = "yes|no",
          value_parser = clap::builder::BoolishValueParser::new())]
    resume_on_start: Option<bool>,
    /// A peer to connect to at start, tracker or not (repeatable); its name comes from its
    /// handshake, and peer exchange with it finds the others.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<String>,
    /// No TCP hole punching: a peer reached through the tracker's relay stays relayed. By
    /// default, when both peers ask for it, each dials the other's public address (as the
    /// relay sees it) from its listen port right after the relay joined them, and a direct
    /// link that proves the peer's key replaces the relayed one (`peers` says `punched`);
    /// it works behind NATs that keep the port number and let such dials through (cone
    /// NATs), and falls back to the relay within about 16 s otherwise.
    #[arg(long, env = "P2P_NO_PUNCH", value_parser = clap::builder::BoolishValueParser::new())]
    no_punch: bool,
    /// No LAN discovery: neither announce this peer by multicast nor listen for others.
    #[arg(long, env = "P2P_NO_LAN", value_parser = clap::builder::BoolishValueParser::new())]
    no_lan: bool,
    /// Multicast group and port of LAN discovery.
    #[arg(long, env = "P2P_LAN_GROUP", default_value = p2p::peer::lan::DEFAULT_GROUP,
          value_name = "IP:PORT")]
    lan_group: SocketAddrV4,
    /// Address of the network interface LAN discovery uses (0.0.0.0: the system's choice;
    /// 127.0.0.1 keeps it on this machine).
    #[arg(
        long,
        env = "P2P_LAN_IFACE",
        default_value = "0.0.0.0",
        value_name = "IP"
    )]
    lan_iface: Ipv4Addr,
    /// Find and be found on the BitTorrent Mainline DHT, with no tracker: publishes this
    /// peer's address (a record signed with its key, so `connect PEER-ID` finds it) and the
    /// content id of every file and folder it shares (so `get ID` finds it). Off by default:
    /// it puts this machine's IP address and what it shares on a public network, for anyone
    /// to see; turn it on when that is what you want (README, "DHT").
    #[arg(long, env = "P2P_DHT", value_parser = clap::builder::BoolishValueParser::new())]
    dht: bool,
    /// A DHT node to join through instead of the public bootstrap nodes (repeatable, or
    /// comma-separated in $P2P_DHT_BOOTSTRAP; IPv4 HOST:PORT); implies --dht. For private
    /// networks and tests (`p2p dht-node`).
    #[arg(
        long = "dht-bootstrap",
        env = "P2P_DHT_BOOTSTRAP",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    dht_bootstrap: Vec<String>,
    /// Do not ask the router for a port mapping (PCP, then NAT-PMP, then UPnP-IGD). On by
    /// default, except with --no-lan unless --gateway or --upnp-search is given.
    #[arg(long, env = "P2P_NO_PORT_MAP", value_parser = clap::builder::BoolishValueParser::new())]
    no_port_map: bool,
    /// The router to ask for a port mapping (IP, or IP:PORT for another port than 5351, PCP's
    /// and NAT-PMP's) [default: the default route's gateway]. Turns port mapping on even with
    /// --no-lan.
    #[arg(long, env = "P2P_GATEWAY", value_name = "ADDR")]
    gateway: Option<String>,
    /// Where to send UPnP-IGD's gateway search (SSDP M-SEARCH), the fallback when PCP and
    /// NAT-PMP map nothing: an IPv4 address, IP (port 1900) or IP:PORT, such as a router's
    /// 192.168.1.1 [default: the SSDP group 239.255.255.250:1900]. Turns UPnP-IGD on even
    /// with --no-lan (PCP and NAT-PMP then only with --gateway).
    #[arg(long, env = "P2P_UPNP_SEARCH", value_name = "ADDR")]
    upnp_search: Option<String>,
    /// UDP port of this peer's DHT node [default: 0, the system picks one].
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    dht_port: u16,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    rates: Box<RateArgs>,
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

/// Rate limits of a peer (README, "Rate limits"). Each takes a rate such as `20MB/s`,
/// `20MiB/s`, `500k` or `1.5M` (k, M, G = powers of 1,000 bytes; KiB, MiB, GiB = of 1,024; `/s`
/// optional), or `0`/`off` for no limit, the default.
#[derive(clap::Args)]
struct RateArgs {
    /// Most bytes a second downloaded from all peers together (reading stops while over it, so
    /// TCP slows the senders). RATE: e.g. 20MB/s, 20MiB/s, 500k, 1.5M (k, M, G: 1000, 10^6,
    /// 10^9 bytes; KiB, MiB, GiB: powers of 1024; /s optional); 0 or off: no limit [default: off].
    #[arg(long, env = "P2P_MAX_DOWN", value_name = "RATE")]
    max_down: Option<String>,
    /// Most bytes a second uploaded to all peers together [default: off].
    #[arg(long, env = "P2P_MAX_UP", value_name = "RATE")]
    max_up: Option<String>,
    /// Most bytes a second downloaded over each peer connection [default: off].
    #[arg(long, value_name = "RATE")]
    max_down_per_peer: Option<String>,
    /// Most bytes a second uploaded over each peer connection [default: off].
    #[arg(long, value_name = "RATE")]
    max_up_per_peer: Option<String>,
    /// Do not apply the rate limits to connections with this machine (loopback addresses):
    /// without it, loopback is limited like any other link [default: no].
    #[arg(long, env = "P2P_EXEMPT_LOOPBACK", value_name = "yes|no", num_args = 0..=1,
          default_missing_value = "yes", value_parser = clap::builder::BoolishValueParser::new())]
    exempt_loopback: Option<bool>,
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    p2p::repl::log::init(cli.quiet, cli.verbose);
    let result = match cli.command {
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "p2p", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Demo { size_mib } => p2p::demo::run(size_mib << 20),
        Cmd::Id { files } => Ok(print_ids(&files)),
        Cmd::DhtNode {
            listen,
            dht_bootstrap,
        } => match dht_addrs(&dht_bootstrap) {
            Ok(bootstrap) => p2p::peer::dht_worker::run_dht_node(listen, bootstrap),
            Err(code) => return code,
        },
        Cmd::Tracker {
            listen,
            peer_ttl,
            max_peers_per_ip,
            state,
            limits,
            relay,
        } => {
            let config = p2p::tracker::TrackerConfig {
                peer_ttl: Duration::from_secs(peer_ttl),
                max_peers_per_ip,
                limits: limits.apply(),
                relay: relay.config(),
                ..Default::default()
            };
            p2p::tracker::run(listen, config, &state)
        }
        Cmd::Peer(args) => {
            let m = (matches.subcommand_matches("peer"))
                .expect("clap parsed the peer subcommand, so it has its matches");
            match peer_run(*args, m, cli.quiet) {
                Ok(Some(run)) => p2p::app::run_with(run.cfg, run.listen, run.batch, run.out),
                Ok(None) => return ExitCode::SUCCESS,
                Err(code) => return code,
            }
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

/// `p2p id`: one line a file on stdout; a file that cannot be hashed is an error line on stderr
/// and makes the exit status 1, the others are still printed.
fn print_ids(files: &[PathBuf]) -> i32 {
    let mut status = 0;
    for path in files {
        let shown = p2p::names::printable(&path.to_string_lossy());
        match p2p::peer::index::hash_path(path) {
            Ok(f) => println!("{}  {}  {shown}", f.content_id, f.manifest.sha256),
            Err(why) => {
                eprintln!("error: {shown}: {why}");
                status = 1;
            }
        }
    }
    status
}

/// `p2p peer --print-id`: the id on stdout, alone; the key file is made if there is none.
fn print_id(downloads: &std::path::Path) -> Result<(), ExitCode> {
    let failed = |why: String| {
        eprintln!("error: {why}");
        ExitCode::from(1)
    };
    check_folder(downloads, "downloads").map_err(failed)?;
    let path = p2p::peer::layout::identity_key_path(downloads);
    let (identity, made) =
        p2p::identity::load_or_create(&path).map_err(|e| failed(e.to_string()))?;
    if made {
        eprintln!("made this peer's key: {}", path.display());
    }
    println!("{}", identity.peer_id());
    Ok(())
}

/// What `p2p peer` runs with, once every setting checked out.
struct PeerRun {
    cfg: PeerConfig,
    listen: SocketAddr,
    batch: Option<BatchSource>,
    out: p2p::repl::UiOptions,
}

/// The settings of `p2p peer` from flags, environment and config file, checked; `None` when
/// there is nothing to run (`--print-config`), `Err` with the exit code on a bad setting.
fn peer_run(args: PeerArgs, m: &ArgMatches, quiet: bool) -> Result<Option<PeerRun>, ExitCode> {
    let given = settings::CommandLine {
        config: given(m, "config", args.config),
        name: given(m, "name", args.name),
        tracker: given(m, "tracker", args.tracker),
        listen: given(m, "listen", args.listen.map(|a| a.to_string())),
        shared: given(m, "shared", args.shared),
        downloads: given(m, "downloads", args.downloads),
        retry_for: given(m, "retry_for", args.retry_for),
        resume_on_start: given(m, "resume_on_start", args.resume_on_start),
        max_down: given(m, "max_down", args.rates.max_down),
        max_up: given(m, "max_up", args.rates.max_up),
        max_down_per_peer: given(m, "max_down_per_peer", args.rates.max_down_per_peer),
        max_up_per_peer: given(m, "max_up_per_peer", args.rates.max_up_per_peer),
        exempt_loopback: given(m, "exempt_loopback", args.rates.exempt_loopback),
        dht: given(m, "dht", args.dht.then_some(true)),
        dht_bootstrap: given(
            m,
            "dht_bootstrap",
            (!args.dht_bootstrap.is_empty()).then(|| args.dht_bootstrap.clone()),
        ),
    };
    let s = settings::resolve(given, &settings::ProcessEnv).map_err(|why| usage_error(&why))?;
    tracing::debug!("settings: {s:?}");
    if args.print_config {
        if args.json {
            println!("{}", s.to_json());
        } else {
            print!("{}", s.describe());
        }
        return Ok(None);
    }
    if args.print_id {
        return print_id(&s.downloads.value).map(|()| None);
    }
    if args.json && args.batch.is_none() && !args.serve {
        return Err(usage_error(
            "--json needs --batch or --serve (it is for scripts)",
        ));
    }
    let (name, tracker, listen) = peer_addresses(&s)?;
    let (shared, downloads, retry_for) = (s.shared.value, s.downloads.value, s.retry_for.value);
    for (dir, what) in [(&shared, "shared"), (&downloads, "downloads")] {
        if let Err(why) = check_folder(dir, what) {
            eprintln!("error: {why}");
            return Err(ExitCode::from(1));
        }
    }
    p2p::reactor::limits::set_process_limits(args.limits.apply());
    let (bootstrap, lan) = discovery(&args.peers, args.no_lan, args.lan_group, args.lan_iface)?;
    let mode = match (&args.batch, args.serve) {
        (Some(_), then_serve) => Mode::Batch { then_serve },
        (None, true) => Mode::Serve,
        (None, false) => Mode::Repl,
    };
    let batch = args.batch.map(|b| match b.as_str() {
        "-" => BatchSource::Stdin,
        path => BatchSource::File(path.into()),
    });
    let dht = if s.dht.value {
        let given = s.dht_bootstrap.as_ref().map_or(&[][..], |b| &b.value[..]);
        Some(p2p::peer::dht_worker::DhtOptions {
            bootstrap: dht_addrs(given)?,
            port: args.dht_port,
            bind: None,
            server: false,
        })
    } else {
        None
    };
    let resume_on_start = s
        .resume_on_start
        .map_or(!matches!(mode, Mode::Batch { .. }), |r| r.value);
    let cfg = PeerConfig {
        name,
        tracker,
        tracker_id: args.tracker_id,
        shared_dir: shared,
        downloads_dir: downloads,
        mode,
        retry_for: Duration::from_secs(retry_for),
        bootstrap,
        lan,
        resume_on_start,
        rate_limits: s.rate_limits,
        dht,
        port_map: port_map_setting(
            args.no_port_map,
            args.gateway.as_deref(),
            args.upnp_search.as_deref(),
            args.no_lan,
        )?,
        punch: !args.no_punch,
    };
    let out = p2p::repl::UiOptions {
        json: args.json,
        quiet,
        ..Default::default()
    };
    Ok(Some(PeerRun {
        cfg,
        listen,
        batch,
        out,
    }))
}

/// The peer's name, the tracker's address and the address to listen on, checked.
fn peer_addresses(
    s: &settings::PeerSettings,
) -> Result<(String, SocketAddr, SocketAddr), ExitCode> {
    let Some(name) = &s.name else {
        return Err(usage_error(
            "a name is required: --name NAME, $P2P_NAME or `name` in the config file",
        ));
    };
    let (name, name_from) = (&name.value, &name.origin);
    if let Err(why) = p2p::names::check_peer_name(name) {
        return Err(usage_error(&format!("invalid name ({name_from}): {why}")));
    }
    // Resolved once, here, before the event loop starts: a slow DNS answer never stalls
    // the reactor (the peer keeps this address for its whole run).
    let tracker = match resolve(&with_default_port(&s.tracker.value, TRACKER_PORT)) {
        Ok(addr) => addr,
        Err(why) => {
            let (t, from) = (&s.tracker.value, &s.tracker.origin);
            return Err(usage_error(&format!(
                "invalid tracker '{t}' ({from}): {why}"
            )));
        }
    };
    let listen: SocketAddr = match s.listen.value.parse() {
        Ok(addr) => addr,
        Err(why) => {
            let (l, from) = (&s.listen.value, &s.listen.origin);
            return Err(usage_error(&format!(
                "invalid listen address '{l}' ({from}): {why}"
            )));
        }
    };
    Ok((name.clone(), tracker, listen))
}

/// The `--peer` addresses (resolved now) and LAN discovery, checked.
fn discovery(
    peers: &[String],
    no_lan: bool,
    lan_group: SocketAddrV4,
    lan_iface: Ipv4Addr,
) -> Result<(Vec<SocketAddr>, Option<p2p::peer::lan::LanConfig>), ExitCode> {
    let mut bootstrap = Vec::new();
    for peer in peers {
        match resolve(peer) {
            Ok(addr) if addr.port() != 0 => bootstrap.push(addr),
            Ok(_) => return Err(usage_error(&format!("invalid --peer '{peer}': port 0"))),
            Err(why) => return Err(usage_error(&format!("invalid --peer '{peer}': {why}"))),
        }
    }
    if !no_lan && !lan_group.ip().is_multicast() {
        return Err(usage_error(&format!(
            "invalid --lan-group {lan_group}: not a multicast address (224.0.0.0/4)"
        )));
    }
    let lan = (!no_lan).then_some(p2p::peer::lan::LanConfig {
        group: lan_group,
        iface: lan_iface,
        announce: true,
    });
    Ok((bootstrap, lan))
}

/// DHT nodes to join through, resolved now (the DHT speaks IPv4 only).
/// Whether to ask a router for a port mapping, and which: off with `--no-port-map`. PCP and
/// NAT-PMP ask `--gateway`, or the default route's gateway; UPnP-IGD searches at
/// `--upnp-search`, or the SSDP group. With LAN traffic off (`--no-lan`, what every test runs
/// with) only what is named is asked, so nothing talks to a real router unless asked to.
fn port_map_setting(
    off: bool,
    gateway: Option<&str>,
    upnp_search: Option<&str>,
    no_lan: bool,
) -> Result<Option<p2p::peer::port_map_glue::PortMapConfig>, ExitCode> {
    use p2p::peer::port_map_glue::PortMapConfig;
    if off {
        return Ok(None);
    }
    let gateway = match gateway.map(p2p::peer::gateway::parse_gateway) {
        None => None,
        Some(Ok(addr)) => Some(addr),
        Some(Err(why)) => {
            eprintln!("error: invalid --gateway: {why}");
            return Err(ExitCode::from(2));
        }
    };
    let upnp_search = match upnp_search.map(p2p::peer::upnp::parse_search) {
        None if no_lan => None,
        None => Some(p2p::peer::upnp::SSDP_GROUP),
        Some(Ok(addr)) => Some(addr),
        Some(Err(why)) => {
            eprintln!("error: invalid --upnp-search: {why}");
            return Err(ExitCode::from(2));
        }
    };
    let pcp = gateway.is_some() || !no_lan;
    Ok((pcp || upnp_search.is_some()).then_some(PortMapConfig {
        pcp,
        gateway,
        upnp_search,
    }))
}

fn dht_addrs(given: &[String]) -> Result<Vec<SocketAddrV4>, ExitCode> {
    let mut out = Vec::new();
    for text in given {
        let text = text.trim();
        let addr = (text.to_socket_addrs())
            .map_err(|e| e.to_string())
            .and_then(|all| {
                let mut v4 = all.filter_map(|a| match a {
                    SocketAddr::V4(a) => Some(a),
                    SocketAddr::V6(_) => None,
                });
                v4.next()
                    .ok_or_else(|| "no IPv4 address (the DHT is IPv4)".to_string())
            });
        match addr {
            Ok(a) if a.port() != 0 => out.push(a),
            Ok(_) => {
                return Err(usage_error(&format!(
                    "invalid --dht-bootstrap '{text}': port 0"
                )));
            }
            Err(why) => {
                return Err(usage_error(&format!(
                    "invalid --dht-bootstrap '{text}': {why}"
                )));
            }
        }
    }
    Ok(out)
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address found".to_string())
}

/// The port a tracker listens on by default (`p2p tracker`), and so the one `--tracker HOST`
/// means.
const TRACKER_PORT: u16 = 9000;

/// `host` -> `host:9000`; `host:port`, `[v6]:port` and `1.2.3.4:port` stay as they are. A bare
/// IPv6 address gets brackets.
fn with_default_port(addr: &str, port: u16) -> String {
    if addr.parse::<SocketAddr>().is_ok() {
        return addr.to_string();
    }
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{addr}]:{port}");
    }
    match addr.rsplit_once(':') {
        Some((_, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => addr.to_string(),
        _ if addr.starts_with('[') && addr.ends_with(']') => format!("{addr}:{port}"),
        Some(_) => addr.to_string(),
        None => format!("{addr}:{port}"),
    }
}

/// A folder the peer is about to use: a file in the way is an error, and a missing folder is
/// created only when its parent exists, so a typo (`--shared ~/Pubic/x`) is reported instead
/// of silently growing a new tree (README, "Flags").
fn check_folder(dir: &std::path::Path, what: &str) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(format!("the {what} folder {shown} is a file, not a folder")),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot use the {what} folder {shown}: {e}"));
        }
        Err(_) => {}
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(format!(
            "the {what} folder {shown} does not exist, and neither does {}: \
             check the path, or create it first (mkdir -p)",
            parent.display()
        ));
    }
    std::fs::create_dir(dir).map_err(|e| format!("cannot create the {what} folder {shown}: {e}"))
}

/// What the command line said about `id`: a flag, its environment variable, or nothing.
fn given<T>(m: &ArgMatches, id: &str, value: Option<T>) -> Given<T> {
    match (value, m.value_source(id)) {
        (Some(v), Some(ValueSource::EnvVariable)) => Given::Env(v),
        (Some(v), _) => Given::Flag(v),
        (None, _) => Given::Absent,
    }
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(2)
}
