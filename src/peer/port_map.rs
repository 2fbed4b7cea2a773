//! Asking the router for a port mapping: a NAT-PMP client (RFC 6886) as a sans-IO value.
//!
//! [`PortMap`] takes datagrams and the time in (`handle_datagram`, `handle_timeout`) and gives
//! datagrams to send and reports out (`poll_output`); `poll_timeout` says when it wants the
//! clock again. It owns no socket and reads no clock; `port_map_glue.rs` puts it on the
//! reactor's UDP socket. We do not re-specify NAT-PMP here; the RFC's section numbers are
//! cited where a rule comes from.
//!
//! The life of a mapping:
//! 1. ask the gateway for its external address (opcode 0);
//! 2. ask for a TCP mapping of our listen port (opcode 2), suggesting the same external port
//!    (or the one we had, on a renewal);
//! 3. renew at half the lifetime granted (§3.3), keeping the mapping while the renewal is
//!    retried, until it expires;
//! 4. at a clean shutdown, delete it (lifetime 0, §3.4), best effort: nobody waits for an
//!    answer.
//!
//! Every answer carries the gateway's epoch (seconds since its mappings were last lost). One
//! that runs backwards (§3.6) means the gateway restarted and forgot us: we map again at once.
//!
//! Retransmission (§3.1): first resend after 250 ms, the wait doubling. The RFC gives up after 9
//! tries (about 128 s); the *first* attempt here gives up after [`FIRST_TRIES`] (6, about 16 s)
//! so the start-up line ("no port mapping: ...") comes while someone still reads it; a gateway
//! that says nothing for 16 s almost never speaks NAT-PMP. Renewals use the RFC's 9. After a
//! failure the whole exchange is tried again after [`RETRY_AFTER`] (a router that reboots or is
//! configured later gets picked up), quietly.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The port NAT-PMP gateways listen on (RFC 6886 §3).
pub const NAT_PMP_PORT: u16 = 5351;
/// The lifetime we ask for: the RFC's recommended two hours (§3.3).
pub const REQUESTED_LIFETIME: u32 = 7200;
/// First retransmission wait (§3.1), doubling with each try.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// Tries of the first exchange at start (see the module header for why fewer than 9).
pub const FIRST_TRIES: u32 = 6;
/// Tries of a renewal or a re-map after a gateway restart (the RFC's 9).
pub const RFC_TRIES: u32 = 9;
/// After a failure, the whole exchange starts over this much later.
pub const RETRY_AFTER: Duration = Duration::from_secs(30 * 60);
/// Shortest lifetime we accept as a mapping; a shorter one is renewed after this at the
/// earliest, so a gateway granting 1 s cannot make us send a request every 500 ms.
const MIN_RENEW: Duration = Duration::from_secs(60);

/// Opcodes (§3.2, §3.3) and the bit answers add.
const OP_EXTERNAL_ADDRESS: u8 = 0;
const OP_MAP_TCP: u8 = 2;
const OP_ANSWER: u8 = 128;

/// A result code from the gateway (§3.5), or what its absence means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Result 1: the gateway speaks another NAT-PMP version.
    UnsupportedVersion,
    /// Result 2: the gateway refuses (mapping disabled, or not allowed for us).
    NotAuthorized,
    /// Result 3: the gateway has no working external connection (no DHCP lease yet...).
    NetworkFailure,
    /// Result 4: the gateway has no mapping to spare.
    OutOfResources,
    /// Result 5: the gateway does not do this opcode.
    UnsupportedOpcode,
    /// A result code the RFC does not define.
    Unknown(u16),
    /// The gateway reported 0.0.0.0 as its external address: it has none yet.
    NoExternalAddress,
    /// No answer after `tries` requests over `waited`.
    NoAnswer { tries: u32, waited: Duration },
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
            MapError::UnsupportedVersion => {
                f.write_str("the gateway does not speak NAT-PMP version 0 (result 1)")
            }
            MapError::NotAuthorized => f.write_str(
                "the gateway refused the mapping (result 2: not authorized; port mapping may be \
                 turned off in the router)",
            ),
            MapError::NetworkFailure => f.write_str(
                "the gateway has no working external connection (result 3: network failure)",
            ),
            MapError::OutOfResources => {
                f.write_str("the gateway has no mapping to spare (result 4: out of resources)")
            }
            MapError::UnsupportedOpcode => {
                f.write_str("the gateway does not map TCP ports (result 5: unsupported opcode)")
            }
            MapError::Unknown(code) => write!(f, "the gateway answered result code {code}"),
            MapError::NoExternalAddress => {
                f.write_str("the gateway has no external address yet (it said 0.0.0.0)")
            }
            MapError::NoAnswer { tries, waited } => write!(
                f,
                "no NAT-PMP answer from the gateway ({tries} tries over {}s)",
                waited.as_secs()
            ),
        }
    }
}

/// What the machine tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A mapping holds: `external` reaches our listen port for `lifetime`. Reported when it is
    /// first granted and whenever the external address or port changes, not at every renewal.
    Mapped {
        external: SocketAddrV4,
        lifetime: Duration,
    },
    /// No mapping: the attempt failed for `why` (a mapping we had is gone too). Tried again
    /// after [`RETRY_AFTER`].
    Failed { why: MapError },
    /// The gateway restarted (its epoch ran backwards): the mapping is being made again.
    GatewayRestarted,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram to the gateway.
    Send(SocketAddr, Vec<u8>),
    Report(Report),
}

/// The request in flight and its retransmissions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Asking {
    opcode: u8,
    /// Requests sent so far.
    tries: u32,
    max_tries: u32,
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
}

/// A NAT-PMP client for one TCP port (see the module header).
#[derive(Debug)]
pub struct PortMap {
    gateway: SocketAddr,
    internal_port: u16,
    phase: Phase,
    /// The external address from the last opcode-0 answer.
    external_ip: Option<Ipv4Addr>,
    held: Option<Held>,
    /// The external port of the last mapping, suggested again after the gateway lost it.
    last_port: Option<u16>,
    /// The last epoch the gateway sent and when it came (§3.6).
    epoch: Option<(u32, Instant)>,
    /// Whether a `Failed` was the last report (so a failing retry is not said twice).
    failed_reported: bool,
    out: std::collections::VecDeque<Output>,
}

impl PortMap {
    /// A client asking `gateway` (an `ip:port`, normally port [`NAT_PMP_PORT`]) to map TCP
    /// port `internal_port`; its first request is ready at once.
    pub fn new(gateway: SocketAddr, internal_port: u16, now: Instant) -> PortMap {
        let mut map = PortMap {
            gateway,
            internal_port,
            phase: Phase::Stopped,
            external_ip: None,
            held: None,
            last_port: None,
            epoch: None,
            failed_reported: false,
            out: Default::default(),
        };
        map.ask(OP_EXTERNAL_ADDRESS, FIRST_TRIES, now);
        map
    }

    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// The external address that reaches our port now, if a mapping holds.
    pub fn mapped(&self) -> Option<SocketAddrV4> {
        self.held.map(|h| h.external)
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
                Phase::Asking(a) => MapError::NoAnswer {
                    tries: a.tries,
                    waited: now.saturating_duration_since(a.since),
                },
                _ => MapError::NoAnswer {
                    tries: 0,
                    waited: Duration::ZERO,
                },
            };
            self.fail(why, now);
            return;
        }
        match self.phase.clone() {
            Phase::Asking(a) if now >= a.next => {
                if a.tries >= a.max_tries {
                    let waited = now.saturating_duration_since(a.since);
                    let tries = a.tries;
                    if self.held.is_some() {
                        // A renewal that got no answer: keep the mapping until it expires
                        // (the timer above), trying again meanwhile.
                        self.ask(a.opcode, RFC_TRIES, now);
                    } else {
                        self.fail(MapError::NoAnswer { tries, waited }, now);
                    }
                } else {
                    self.send(a.opcode, now);
                }
            }
            Phase::Idle { renew_at } if now >= renew_at => {
                self.ask(OP_MAP_TCP, RFC_TRIES, now);
            }
            Phase::Waiting { retry_at } if now >= retry_at => {
                self.ask(OP_EXTERNAL_ADDRESS, FIRST_TRIES, now);
            }
            _ => {}
        }
    }

    /// A datagram arrived on the port-mapping socket. Anything that is not a well-formed
    /// answer from the gateway to what we asked is ignored (§3.1: the source must be the
    /// gateway's address and port 5351, or the one given).
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        if from != self.gateway {
            return;
        }
        let Phase::Asking(asking) = self.phase.clone() else {
            // An answer we no longer wait for (a late duplicate).
            return;
        };
        let Some(answer) = parse_answer(bytes) else {
            return;
        };
        if answer.opcode != asking.opcode {
            return;
        }
        if self.gateway_restarted(answer.epoch, now) {
            self.epoch = Some((answer.epoch, now));
            // Its mappings are gone with its memory; the port we had is still the one to ask
            // for.
            if let Some(h) = self.held.take() {
                self.last_port = Some(h.external.port());
            }
            self.out.push_back(Output::Report(Report::GatewayRestarted));
            self.ask(OP_EXTERNAL_ADDRESS, RFC_TRIES, now);
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
                self.ask(OP_MAP_TCP, asking.max_tries, now);
            }
            Body::Mapping {
                internal,
                external,
                lifetime,
            } => {
                if internal != self.internal_port {
                    // An answer about another port (another client's on this host).
                    return;
                }
                let Some(ip) = self.external_ip else {
                    return;
                };
                if lifetime == 0 || external == 0 {
                    self.held = None;
                    self.fail(MapError::OutOfResources, now);
                    return;
                }
                self.mapped_now(SocketAddrV4::new(ip, external), lifetime, now);
            }
        }
    }

    /// Clean shutdown: the mapping is deleted (§3.4: lifetime 0, external port 0) and nothing
    /// more is sent. The one datagram goes out best effort; no answer is waited for.
    pub fn shutdown(&mut self) {
        if self.phase == Phase::Stopped {
            return;
        }
        self.phase = Phase::Stopped;
        if self.held.take().is_some() || self.external_ip.is_some() {
            let bytes = map_request(self.internal_port, 0, 0);
            self.out.push_back(Output::Send(self.gateway, bytes));
        }
    }

    fn mapped_now(&mut self, external: SocketAddrV4, lifetime: u32, now: Instant) {
        let lifetime = Duration::from_secs(u64::from(lifetime));
        let changed = self.held.map(|h| h.external) != Some(external);
        self.last_port = Some(external.port());
        self.held = Some(Held {
            external,
            expires: now + lifetime,
        });
        self.phase = Phase::Idle {
            renew_at: now + (lifetime / 2).max(MIN_RENEW.min(lifetime)),
        };
        if changed || self.failed_reported {
            self.failed_reported = false;
            self.out
                .push_back(Output::Report(Report::Mapped { external, lifetime }));
        }
    }

    /// §3.6: the gateway's epoch should have advanced by at least 7/8 of the time that passed
    /// here since its last answer; more than 2 s less means it lost its mappings.
    fn gateway_restarted(&self, epoch: u32, now: Instant) -> bool {
        let Some((last, at)) = self.epoch else {
            return false;
        };
        let elapsed = now.saturating_duration_since(at).as_secs();
        let expected = u64::from(last) + elapsed * 7 / 8;
        u64::from(epoch) + 2 < expected
    }

    fn fail(&mut self, why: MapError, now: Instant) {
        self.phase = Phase::Waiting {
            retry_at: now + RETRY_AFTER,
        };
        self.external_ip = None;
        if !self.failed_reported {
            self.failed_reported = true;
            self.out.push_back(Output::Report(Report::Failed { why }));
        }
    }

    /// Starts asking `opcode`: the first request goes out now.
    fn ask(&mut self, opcode: u8, max_tries: u32, now: Instant) {
        self.phase = Phase::Asking(Asking {
            opcode,
            tries: 0,
            max_tries,
            next: now,
            since: now,
        });
        self.send(opcode, now);
    }

    /// Sends the request of the phase and sets the next resend: 250 ms, doubling (§3.1).
    fn send(&mut self, opcode: u8, now: Instant) {
        let Phase::Asking(a) = &mut self.phase else {
            return;
        };
        a.next = now + FIRST_WAIT * (1 << a.tries.min(16));
        a.tries += 1;
        let bytes = match opcode {
            OP_EXTERNAL_ADDRESS => vec![0, OP_EXTERNAL_ADDRESS],
            _ => {
                // A renewal suggests the port we hold; a first mapping, our own port number.
                let suggested = self
                    .held
                    .map(|h| h.external.port())
                    .or(self.last_port)
                    .unwrap_or(self.internal_port);
                map_request(self.internal_port, suggested, REQUESTED_LIFETIME)
            }
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
