//! Asking the router for a port mapping: a PCP (RFC 6887) and NAT-PMP (RFC 6886) client as a
//! sans-IO value.
//!
//! [`PortMap`] takes datagrams and the time in (`handle_datagram`, `handle_timeout`) and gives
//! datagrams to send and reports out (`poll_output`); `poll_timeout` says when it wants the
//! clock again. It owns no socket, reads no clock and draws no random numbers (the PCP nonce
//! and our address come in through [`PortMap::new`]); `port_map_glue.rs` puts it on the
//! reactor's UDP socket. PCP's bytes are encoded and checked in `port_map/pcp.rs`; NAT-PMP's
//! here. We do not re-specify either protocol; the RFCs' section numbers are cited where a
//! rule comes from.
//!
//! Which protocol (RFC 6887 §9 and Appendix A). Both live on the gateway's port 5351. We ask
//! in PCP first: one MAP request (opcode 1) does what NAT-PMP's two requests do.
//! - A NAT-PMP-only gateway answers it with NAT-PMP's "unsupported version" (version 0, result
//!   1), and a PCP gateway of an older version with `UNSUPP_VERSION` and its version: either
//!   way we switch to NAT-PMP at once, for the rest of the attempt.
//! - A gateway that says nothing to PCP (some NAT-PMP servers drop other versions): after
//!   [`PCP_FIRST_TRIES`] (3) PCP requests, 1.75 s, we switch to NAT-PMP and its own tries.
//!   The start-up attempt so ends within 1.75 s + 15.75 s = 17.5 s at worst (3 PCP tries, then
//!   6 NAT-PMP tries), the NAT-PMP part as long as before PCP was added.
//! - The protocol that gave the mapping is remembered: renewals, and a new mapping after the
//!   gateway restarted, use it (a PCP renewal answered "unsupported version" switches to
//!   NAT-PMP the same way). After a failure the next attempt, [`RETRY_AFTER`] later,
//!   starts from PCP again: the router may have changed.
//!
//! The life of a mapping:
//! 1. PCP: a MAP request for TCP, our listen port, suggesting the same external port and no
//!    external address (`::ffff:0.0.0.0`, §11.1), with our nonce; the answer gives the port
//!    and the external address. NAT-PMP: the external address (opcode 0), then a TCP mapping
//!    (opcode 2) suggesting the same external port (or the one we had, on a renewal);
//! 2. renew at half the lifetime granted (RFC 6886 §3.3, RFC 6887 §11.2.1), keeping the
//!    mapping while the renewal is retried, until it expires; a PCP renewal is the same
//!    request with the same nonce, suggesting the port and address we hold;
//! 3. at a clean shutdown, delete it (lifetime 0: RFC 6886 §3.4, RFC 6887 §15), best effort:
//!    nobody waits for an answer.
//!
//! Every answer carries the gateway's epoch (seconds since its mappings were last lost). One
//! that is inconsistent with our clock (RFC 6886 §3.6: ran backwards; RFC 6887 §8.5: moved
//! more than 2 s + 1/16 apart from ours, either way) means the gateway restarted and forgot
//! us: we map again at once, in the protocol that worked.
//!
//! Retransmission: first resend after 250 ms, the wait doubling (RFC 6886 §3.1), for PCP
//! requests too. PCP's own schedule (RFC 6887 §8.1.1: 3 s, doubling up to 1024 s) would delay
//! the fallback to a NAT-PMP gateway that ignores PCP by 21 s for three tries; a router on
//! the LAN answers in milliseconds, and three datagrams in 1.75 s load nobody. NAT-PMP's RFC
//! gives up after 9 tries (about 128 s); the *first* attempt here gives up after
//! [`FIRST_TRIES`] (6, about 16 s) of NAT-PMP so the start-up line ("no port mapping: ...")
//! comes while someone still reads it; a gateway that says nothing for 16 s almost never
//! speaks NAT-PMP. Renewals use the RFC's 9 (a PCP renewal, like RFC 6887's MRC of 0, goes on
//! being retried until the mapping expires). After a failure the whole exchange is tried
//! again after [`RETRY_AFTER`] (a router that reboots or is configured later gets picked up),
//! quietly; a PCP error's own lifetime (§7.4) is not used to retry sooner.

pub mod pcp;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The port NAT-PMP and PCP gateways listen on (RFC 6886 §3, RFC 6887 §19.1).
pub const NAT_PMP_PORT: u16 = 5351;
/// The lifetime we ask for: the RFC's recommended two hours (§3.3).
pub const REQUESTED_LIFETIME: u32 = 7200;
/// First retransmission wait (§3.1), doubling with each try.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// PCP tries of the first attempt before falling back to NAT-PMP (module header).
pub const PCP_FIRST_TRIES: u32 = 3;
/// NAT-PMP tries of the first attempt at start (see the module header for why fewer than 9).
pub const FIRST_TRIES: u32 = 6;
/// Tries of a renewal or a re-map after a gateway restart (the RFC's 9).
pub const RFC_TRIES: u32 = 9;
/// After a failure, the whole exchange starts over this much later.
pub const RETRY_AFTER: Duration = Duration::from_secs(30 * 60);
/// Shortest lifetime we accept as a mapping; a shorter one is renewed after this at the
/// earliest, so a gateway granting 1 s cannot make us send a request every 500 ms.
const MIN_RENEW: Duration = Duration::from_secs(60);

/// NAT-PMP opcodes (§3.2, §3.3) and the bit answers add.
const OP_EXTERNAL_ADDRESS: u8 = 0;
const OP_MAP_TCP: u8 = 2;
const OP_ANSWER: u8 = 128;

/// The protocol a mapping was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pcp,
    NatPmp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Pcp => "PCP",
            Protocol::NatPmp => "NAT-PMP",
        })
    }
}

/// A result code from the gateway (NAT-PMP §3.5, PCP §7.4), or what its absence means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// NAT-PMP result 1: the gateway speaks another NAT-PMP version.
    UnsupportedVersion,
    /// NAT-PMP result 2: the gateway refuses (mapping disabled, or not allowed for us).
    NotAuthorized,
    /// NAT-PMP result 3: the gateway has no working external connection (no DHCP lease yet...).
    NetworkFailure,
    /// NAT-PMP result 4: the gateway has no mapping to spare.
    OutOfResources,
    /// NAT-PMP result 5: the gateway does not do this opcode.
    UnsupportedOpcode,
    /// A NAT-PMP result code the RFC does not define.
    Unknown(u16),
    /// The gateway reported 0.0.0.0 as its external address: it has none yet.
    NoExternalAddress,
    /// A PCP result code other than success.
    Pcp(pcp::ResultCode),
    /// PCP granted a mapping on an external address that is not IPv4, or no port or no time.
    PcpUnusable { external: SocketAddr, lifetime: u32 },
    /// No answer: `pcp_tries` PCP requests, then `nat_pmp_tries` NAT-PMP requests (either may
    /// be 0), over `waited`.
    NoAnswer {
        pcp_tries: u32,
        nat_pmp_tries: u32,
        waited: Duration,
    },
}

impl MapError {
    fn from_code(code: u16) -> MapError {
        match code {
            1 => MapError::UnsupportedVersion,
            2 => MapError::NotAuthorized,
            3 => MapError::NetworkFailure,
            4 => MapError::OutOfResources,
            5 => MapError::UnsupportedOpcode,
            other => MapError::Unknown(other),
        }
    }
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::UnsupportedVersion => f.write_str(
                "the gateway speaks neither PCP nor NAT-PMP version 0 (NAT-PMP result 1)",
            ),
            MapError::NotAuthorized => f.write_str(
                "the gateway refused the mapping (NAT-PMP result 2: not authorized; port mapping \
                 may be turned off in the router)",
            ),
            MapError::NetworkFailure => f.write_str(
                "the gateway has no working external connection (NAT-PMP result 3: network \
                 failure)",
            ),
            MapError::OutOfResources => f.write_str(
                "the gateway has no mapping to spare (NAT-PMP result 4: out of resources)",
            ),
            MapError::UnsupportedOpcode => f.write_str(
                "the gateway does not map TCP ports (NAT-PMP result 5: unsupported opcode)",
            ),
            MapError::Unknown(code) => write!(f, "the gateway answered NAT-PMP result code {code}"),
            MapError::NoExternalAddress => {
                f.write_str("the gateway has no external address yet (it said 0.0.0.0)")
            }
            MapError::Pcp(code) => write!(f, "{code}"),
            MapError::PcpUnusable { external, lifetime } => write!(
                f,
                "the gateway granted no usable mapping over PCP ({external} for {lifetime}s)"
            ),
            MapError::NoAnswer {
                pcp_tries,
                nat_pmp_tries,
                waited,
            } => {
                let secs = waited.as_secs();
                match (pcp_tries, nat_pmp_tries) {
                    (0, n) => write!(
                        f,
                        "no NAT-PMP answer from the gateway ({n} tries over {secs}s)"
                    ),
                    (p, 0) => write!(f, "no PCP answer from the gateway ({p} tries over {secs}s)"),
                    (p, n) => write!(
                        f,
                        "no answer from the gateway to PCP or NAT-PMP ({p} + {n} tries over \
                         {secs}s)"
                    ),
                }
            }
        }
    }
}

/// What the machine tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A mapping holds: `external` reaches our listen port for `lifetime`, made `via` this
    /// protocol. Reported when it is first granted and whenever the external address, the port
    /// or the protocol changes, not at every renewal.
    Mapped {
        external: SocketAddrV4,
        lifetime: Duration,
        via: Protocol,
    },
    /// No mapping: the attempt failed for `why` (a mapping we had is gone too). Tried again
    /// after [`RETRY_AFTER`].
    Failed { why: MapError },
    /// The gateway restarted (its epoch was inconsistent): the mapping is being made again.
    GatewayRestarted,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram to the gateway.
    Send(SocketAddr, Vec<u8>),
    Report(Report),
}

/// A request we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    /// PCP's MAP (opcode 1) for our TCP port.
    PcpMap,
    /// NAT-PMP opcode 0.
    ExternalAddress,
    /// NAT-PMP opcode 2.
    MapTcp,
}

impl Request {
    fn protocol(self) -> Protocol {
        match self {
            Request::PcpMap => Protocol::Pcp,
            Request::ExternalAddress | Request::MapTcp => Protocol::NatPmp,
        }
    }

    /// The first request of a new mapping in `protocol`.
    fn first_of(protocol: Protocol) -> Request {
        match protocol {
            Protocol::Pcp => Request::PcpMap,
            Protocol::NatPmp => Request::ExternalAddress,
        }
    }

    /// The request that renews a mapping made in `protocol`.
    fn renewal_of(protocol: Protocol) -> Request {
        match protocol {
            Protocol::Pcp => Request::PcpMap,
            Protocol::NatPmp => Request::MapTcp,
        }
    }
}

/// Which kind of attempt a request belongs to, which sets its tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// At start, or after a failure: [`PCP_FIRST_TRIES`] in PCP, [`FIRST_TRIES`] in NAT-PMP.
    First,
    /// A renewal, or a new mapping after the gateway restarted: [`RFC_TRIES`].
    Again,
}

impl Attempt {
    fn max_tries(self, request: Request) -> u32 {
        match (self, request.protocol()) {
            (Attempt::First, Protocol::Pcp) => PCP_FIRST_TRIES,
            (Attempt::First, Protocol::NatPmp) => FIRST_TRIES,
            (Attempt::Again, _) => RFC_TRIES,
        }
    }
}

/// The request in flight and its retransmissions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Asking {
    request: Request,
    attempt: Attempt,
    /// Requests sent so far.
    tries: u32,
    /// When the next resend (or the giving up) is due.
    next: Instant,
    /// When the first request went out.
    since: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for an answer to `asking`.
    Asking(Asking),
    /// Mapped; the renewal starts at `renew_at`.
    Idle { renew_at: Instant },
    /// Failed; start over at `retry_at`.
    Waiting { retry_at: Instant },
    /// Shut down: nothing more is sent.
    Stopped,
}

/// The mapping we hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    external: SocketAddrV4,
    expires: Instant,
    via: Protocol,
}

/// A PCP and NAT-PMP client for one TCP port (see the module header).
#[derive(Debug)]
pub struct PortMap {
    gateway: SocketAddr,
    internal_port: u16,
    /// Our address as the gateway sees it, for PCP's header (RFC 6887 §8.1).
    client_ip: Ipv4Addr,
    /// PCP's mapping nonce (§11.1): one for the life of this value, so renewals and the
    /// deletion carry the nonce of the mapping they are about.
    nonce: pcp::Nonce,
    phase: Phase,
    /// The external address from the last NAT-PMP opcode-0 answer.
    external_ip: Option<Ipv4Addr>,
    held: Option<Held>,
    /// The external port of the last mapping, suggested again after the gateway lost it.
    last_port: Option<u16>,
    /// The last epoch the gateway sent, in the protocol spoken now, and when it came.
    epoch: Option<(u32, Instant)>,
    /// A PCP attempt nobody answered before this NAT-PMP one: its tries and start (for the
    /// report if NAT-PMP gets no answer either).
    pcp_silent: Option<(u32, Instant)>,
    /// Whether a `Failed` was the last report (so a failing retry is not said twice).
    failed_reported: bool,
    out: std::collections::VecDeque<Output>,
}

impl PortMap {
    /// A client asking `gateway` (an `ip:port`, normally port [`NAT_PMP_PORT`]) to map TCP
    /// port `internal_port`; `client_ip` is the source address of our datagrams to it (the
    /// local address of a UDP socket connected to it), `nonce` 96 random bits. Its first
    /// request (PCP) is ready at once.
    pub fn new(
        gateway: SocketAddr,
        internal_port: u16,
        client_ip: Ipv4Addr,
        nonce: pcp::Nonce,
        now: Instant,
    ) -> PortMap {
        let mut map = PortMap {
            gateway,
            internal_port,
            client_ip,
            nonce,
            phase: Phase::Stopped,
            external_ip: None,
            held: None,
            last_port: None,
            epoch: None,
            pcp_silent: None,
            failed_reported: false,
            out: Default::default(),
        };
        map.ask(Request::PcpMap, Attempt::First, now);
        map
    }

    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// The external address that reaches our port now, if a mapping holds.
    pub fn mapped(&self) -> Option<SocketAddrV4> {
        self.held.map(|h| h.external)
    }

    /// The protocol of the mapping that holds now, if any.
    pub fn mapped_via(&self) -> Option<Protocol> {
        self.held.map(|h| h.via)
    }

    /// When [`Self::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Asking(a) => Some(a.next),
            Phase::Idle { renew_at } => Some(*renew_at),
            Phase::Waiting { retry_at } => Some(*retry_at),
            Phase::Stopped => None,
        };
        let expiry = self.held.map(|h| h.expires);
        phase.into_iter().chain(expiry).min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(h) = self.held
            && now >= h.expires
        {
            // The renewal never got through: the gateway has dropped the mapping by now.
            self.held = None;
            let why = match &self.phase {
                Phase::Asking(a) => self.no_answer(a, now),
                _ => MapError::NoAnswer {
                    pcp_tries: 0,
                    nat_pmp_tries: 0,
                    waited: Duration::ZERO,
                },
            };
            self.fail(why, now);
            return;
        }
        match self.phase.clone() {
            Phase::Asking(a) if now >= a.next => {
                if a.tries < a.attempt.max_tries(a.request) {
                    self.send(now);
                } else if self.held.is_some() {
                    // A renewal that got no answer: keep the mapping until it expires (the
                    // timer above), trying again meanwhile.
                    self.ask(a.request, Attempt::Again, now);
                } else if a.request == Request::PcpMap {
                    // Nobody answers PCP: perhaps a NAT-PMP gateway that drops other versions.
                    self.pcp_silent = Some((a.tries, a.since));
                    self.epoch = None;
                    self.ask(Request::ExternalAddress, a.attempt, now);
                } else {
                    let why = self.no_answer(&a, now);
                    self.fail(why, now);
                }
            }
            Phase::Idle { renew_at } if now >= renew_at => {
                let via = self.held.map_or(Protocol::Pcp, |h| h.via);
                self.ask(Request::renewal_of(via), Attempt::Again, now);
            }
            Phase::Waiting { retry_at } if now >= retry_at => {
                self.epoch = None;
                self.ask(Request::PcpMap, Attempt::First, now);
            }
            _ => {}
        }
    }

    /// The failure of `asking` going unanswered, with the PCP attempt before it if any.
    fn no_answer(&self, asking: &Asking, now: Instant) -> MapError {
        match (asking.request.protocol(), self.pcp_silent) {
            (Protocol::Pcp, _) => MapError::NoAnswer {
                pcp_tries: asking.tries,
                nat_pmp_tries: 0,
                waited: now.saturating_duration_since(asking.since),
            },
            (Protocol::NatPmp, Some((pcp_tries, since))) => MapError::NoAnswer {
                pcp_tries,
                nat_pmp_tries: asking.tries,
                waited: now.saturating_duration_since(since),
            },
            (Protocol::NatPmp, None) => MapError::NoAnswer {
                pcp_tries: 0,
                nat_pmp_tries: asking.tries,
                waited: now.saturating_duration_since(asking.since),
            },
        }
    }

    /// A datagram arrived on the port-mapping socket. Anything that is not a well-formed
    /// answer from the gateway to what we asked is ignored (RFC 6886 §3.1, RFC 6887 §8.3: the
    /// source must be the gateway's address and port 5351, or the one given).
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        if from != self.gateway {
            return;
        }
        let Phase::Asking(asking) = self.phase.clone() else {
            // An answer we no longer wait for (a late duplicate).
            return;
        };
        match asking.request.protocol() {
            Protocol::Pcp => self.pcp_answer(&asking, bytes, now),
            Protocol::NatPmp => self.nat_pmp_answer(&asking, bytes, now),
        }
    }

    /// An answer while we ask in PCP.
    fn pcp_answer(&mut self, asking: &Asking, bytes: &[u8], now: Instant) {
        let (result, epoch, answer) = match pcp::parse_answer(bytes) {
            None => return,
            Some(pcp::Answer::OlderVersion { .. }) => {
                // §9, Appendix A: NAT-PMP (or a PCP we do not speak): switch now.
                self.epoch = None;
                self.pcp_silent = None;
                self.ask(Request::ExternalAddress, asking.attempt, now);
                return;
            }
            Some(pcp::Answer::HeaderError { result, epoch }) => (result, epoch, None),
            Some(pcp::Answer::Map(m)) => {
                if !m.is_for(&self.nonce, self.internal_port) {
                    // §11.4: not an answer to our request (another client's, or forged).
                    return;
                }
                (m.result, m.epoch, Some(m))
            }
        };
        if self.epoch_inconsistent(Protocol::Pcp, epoch, now) {
            self.gateway_restarted(epoch, Protocol::Pcp, now);
            return;
        }
        self.epoch = Some((epoch, now));
        let Some(m) = answer.filter(|_| result == pcp::ResultCode::SUCCESS) else {
            self.held = None;
            self.fail(MapError::Pcp(result), now);
            return;
        };
        let external = m.external_ip.to_ipv4_mapped();
        match external {
            Some(ip) if ip.is_unspecified() => {
                self.held = None;
                self.fail(MapError::NoExternalAddress, now);
            }
            Some(ip) if m.external_port != 0 && m.lifetime != 0 => {
                self.mapped_now(
                    SocketAddrV4::new(ip, m.external_port),
                    m.lifetime,
                    Protocol::Pcp,
                    now,
                );
            }
            _ => {
                self.held = None;
                let ip = external.map_or(std::net::IpAddr::V6(m.external_ip), Into::into);
                self.fail(
                    MapError::PcpUnusable {
                        external: SocketAddr::new(ip, m.external_port),
                        lifetime: m.lifetime,
                    },
                    now,
                );
            }
        }
    }

    /// An answer while we ask in NAT-PMP.
    fn nat_pmp_answer(&mut self, asking: &Asking, bytes: &[u8], now: Instant) {
        let Some(answer) = parse_answer(bytes) else {
            return;
        };
        let opcode = match asking.request {
            Request::ExternalAddress => OP_EXTERNAL_ADDRESS,
            _ => OP_MAP_TCP,
        };
        if answer.opcode != opcode {
            return;
        }
        if let Body::Mapping { internal, .. } = answer.body
            && internal != self.internal_port
            && answer.result == 0
        {
            // An answer about another port (another client's on this host).
            return;
        }
        self.pcp_silent = None;
        if self.epoch_inconsistent(Protocol::NatPmp, answer.epoch, now) {
            self.gateway_restarted(answer.epoch, Protocol::NatPmp, now);
            return;
        }
        self.epoch = Some((answer.epoch, now));
        if answer.result != 0 {
            self.held = None;
            self.fail(MapError::from_code(answer.result), now);
            return;
        }
        match answer.body {
            Body::External(ip) => {
                if ip.is_unspecified() {
                    self.held = None;
                    self.fail(MapError::NoExternalAddress, now);
                    return;
                }
                self.external_ip = Some(ip);
                self.ask(Request::MapTcp, asking.attempt, now);
            }
            Body::Mapping {
                external, lifetime, ..
            } => {
                let Some(ip) = self.external_ip else {
                    return;
                };
                if lifetime == 0 || external == 0 {
                    self.held = None;
                    self.fail(MapError::OutOfResources, now);
                    return;
                }
                self.mapped_now(
                    SocketAddrV4::new(ip, external),
                    lifetime,
                    Protocol::NatPmp,
                    now,
                );
            }
        }
    }

    /// The gateway lost its mappings (its epoch says so): map again at once in `protocol`,
    /// suggesting the port we had.
    fn gateway_restarted(&mut self, epoch: u32, protocol: Protocol, now: Instant) {
        self.epoch = Some((epoch, now));
        if let Some(h) = self.held.take() {
            self.last_port = Some(h.external.port());
        }
        self.out.push_back(Output::Report(Report::GatewayRestarted));
        self.ask(Request::first_of(protocol), Attempt::Again, now);
    }

    /// Clean shutdown: the mapping is deleted (lifetime 0: RFC 6886 §3.4 with external port 0;
    /// RFC 6887 §15 with the mapping's nonce) and nothing more is sent. The one datagram goes
    /// out best effort; no answer is waited for. Sent when a mapping holds, or when a request
    /// in flight may have made one (a PCP MAP, or NAT-PMP once the external address came).
    pub fn shutdown(&mut self) {
        let asking = match &self.phase {
            Phase::Stopped => return,
            Phase::Asking(a) => Some(a.request),
            _ => None,
        };
        self.phase = Phase::Stopped;
        let held = self.held.take();
        let delete_in = match (held, asking) {
            (Some(h), _) => Some(h.via),
            (None, Some(Request::PcpMap)) => Some(Protocol::Pcp),
            (None, Some(Request::MapTcp)) if self.external_ip.is_some() => Some(Protocol::NatPmp),
            _ => None,
        };
        let bytes = match delete_in {
            None => return,
            Some(Protocol::NatPmp) => map_request(self.internal_port, 0, 0),
            Some(Protocol::Pcp) => pcp::map_request(&pcp::MapRequest {
                nonce: self.nonce,
                client_ip: self.client_ip,
                internal_port: self.internal_port,
                suggested_port: 0,
                suggested_ip: Ipv4Addr::UNSPECIFIED,
                lifetime: 0,
            }),
        };
        self.out.push_back(Output::Send(self.gateway, bytes));
    }

    fn mapped_now(&mut self, external: SocketAddrV4, lifetime: u32, via: Protocol, now: Instant) {
        let lifetime = Duration::from_secs(u64::from(lifetime));
        let changed = self.held.map(|h| (h.external, h.via)) != Some((external, via));
        self.last_port = Some(external.port());
        self.pcp_silent = None;
        self.held = Some(Held {
            external,
            expires: now + lifetime,
            via,
        });
        self.phase = Phase::Idle {
            renew_at: now + (lifetime / 2).max(MIN_RENEW.min(lifetime)),
        };
        if changed || self.failed_reported {
            self.failed_reported = false;
            self.out.push_back(Output::Report(Report::Mapped {
                external,
                lifetime,
                via,
            }));
        }
    }

    /// Whether `epoch`, just received in `protocol`, says the gateway lost its state since
    /// its last answer. NAT-PMP (RFC 6886 §3.6): the epoch should have advanced by at least
    /// 7/8 of the time that passed here; more than 2 s less means it did. PCP: RFC 6887 §8.5,
    /// both ways ([`pcp::epoch_valid`]).
    fn epoch_inconsistent(&self, protocol: Protocol, epoch: u32, now: Instant) -> bool {
        let Some((last, at)) = self.epoch else {
            return false;
        };
        let elapsed = now.saturating_duration_since(at).as_secs();
        match protocol {
            Protocol::NatPmp => {
                let expected = u64::from(last) + elapsed * 7 / 8;
                u64::from(epoch) + 2 < expected
            }
            Protocol::Pcp => !pcp::epoch_valid(last, epoch, elapsed),
        }
    }

    fn fail(&mut self, why: MapError, now: Instant) {
        self.phase = Phase::Waiting {
            retry_at: now + RETRY_AFTER,
        };
        self.external_ip = None;
        self.pcp_silent = None;
        if !self.failed_reported {
            self.failed_reported = true;
            self.out.push_back(Output::Report(Report::Failed { why }));
        }
    }

    /// Starts asking `request`: the first request goes out now.
    fn ask(&mut self, request: Request, attempt: Attempt, now: Instant) {
        self.phase = Phase::Asking(Asking {
            request,
            attempt,
            tries: 0,
            next: now,
            since: now,
        });
        self.send(now);
    }

    /// Sends the request of the phase and sets the next resend: 250 ms, doubling (§3.1).
    fn send(&mut self, now: Instant) {
        let Phase::Asking(a) = &mut self.phase else {
            return;
        };
        a.next = now + FIRST_WAIT * (1 << a.tries.min(16));
        a.tries += 1;
        // A renewal suggests the port we hold; a new mapping after a restart, the one we had;
        // a first mapping, our own port number.
        let suggested = self
            .held
            .map(|h| h.external.port())
            .or(self.last_port)
            .unwrap_or(self.internal_port);
        let bytes = match a.request {
            Request::ExternalAddress => vec![0, OP_EXTERNAL_ADDRESS],
            Request::MapTcp => map_request(self.internal_port, suggested, REQUESTED_LIFETIME),
            Request::PcpMap => pcp::map_request(&pcp::MapRequest {
                nonce: self.nonce,
                client_ip: self.client_ip,
                internal_port: self.internal_port,
                suggested_port: suggested,
                // No preference (§11.1) unless renewing the address we hold.
                suggested_ip: self
                    .held
                    .map_or(Ipv4Addr::UNSPECIFIED, |h| *h.external.ip()),
                lifetime: REQUESTED_LIFETIME,
            }),
        };
        self.out.push_back(Output::Send(self.gateway, bytes));
    }
}

/// A TCP mapping request (§3.3): version 0, opcode 2, reserved, internal port, suggested
/// external port, lifetime in seconds; 12 bytes, big-endian.
pub fn map_request(internal: u16, suggested: u16, lifetime: u32) -> Vec<u8> {
    let mut b = vec![0, OP_MAP_TCP, 0, 0];
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&suggested.to_be_bytes());
    b.extend_from_slice(&lifetime.to_be_bytes());
    b
}

/// One answer from the gateway, checked.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    /// The opcode it answers (without the 128 bit).
    opcode: u8,
    result: u16,
    epoch: u32,
    body: Body,
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    External(Ipv4Addr),
    Mapping {
        internal: u16,
        external: u16,
        lifetime: u32,
    },
}

/// Parses an answer (§3.2, §3.3): version 0, opcode 128 + request opcode, result code, epoch,
/// then 4 bytes of address (opcode 0, 12 bytes in all) or internal port, external port and
/// lifetime (opcodes 1 and 2, 16 bytes). An answer with an error result may come shorter
/// (§3.5: a gateway answering an unsupported version or opcode sends at least the 8-byte
/// header). Anything else is `None`. Never panics, whatever the bytes.
fn parse_answer(b: &[u8]) -> Option<Answer> {
    let (&[version, op], rest) = b.split_first_chunk::<2>()?;
    if version != 0 || op & OP_ANSWER == 0 {
        return None;
    }
    let opcode = op & !OP_ANSWER;
    let (&result, rest) = rest.split_first_chunk::<2>()?;
    let (&epoch, rest) = rest.split_first_chunk::<4>()?;
    let result = u16::from_be_bytes(result);
    let epoch = u32::from_be_bytes(epoch);
    let body = match (opcode, rest.len()) {
        (OP_EXTERNAL_ADDRESS, 4) => {
            Body::External(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]))
        }
        (1 | OP_MAP_TCP, 8) => Body::Mapping {
            internal: u16::from_be_bytes([rest[0], rest[1]]),
            external: u16::from_be_bytes([rest[2], rest[3]]),
            lifetime: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
        },
        // An error answer need carry no body.
        (OP_EXTERNAL_ADDRESS | 1 | OP_MAP_TCP, _) if result != 0 => {
            Body::External(Ipv4Addr::UNSPECIFIED)
        }
        _ => return None,
    };
    Some(Answer {
        opcode,
        result,
        epoch,
        body,
    })
}

#[cfg(test)]
mod tests;
