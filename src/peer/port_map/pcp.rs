//! PCP (RFC 6887) on the wire: the MAP request we send and the answers we accept, as pure
//! functions of bytes. Which request to send when, and what an answer means for the mapping,
//! is the state machine's (`port_map.rs`); this file only encodes and checks.
//!
//! A MAP request is 60 bytes: the common request header (§7.1, 24 bytes) then the MAP
//! opcode's fields (§11.1, 36 bytes); all numbers big-endian, addresses as 16 bytes of IPv6
//! (an IPv4 address IPv4-mapped, `::ffff:a.b.c.d`):
//!
//! ```text
//!  0     version 2
//!  1     R bit (0: request) and opcode 1 (MAP)
//!  2..4  reserved, 0
//!  4..8  requested lifetime, seconds (0: delete)
//!  8..24 our IP address as the gateway sees it
//! 24..36 mapping nonce (96 random bits, the same for the life of the mapping)
//! 36     protocol 6 (TCP)
//! 37..40 reserved, 0
//! 40..42 internal port
//! 42..44 suggested external port
//! 44..60 suggested external address (::ffff:0.0.0.0: no preference)
//! ```
//!
//! The answer has the same length and layout but for the header (§7.2): byte 1 has the R bit
//! (128) set, byte 2 is reserved, byte 3 is the result code, 4..8 the lifetime granted, 8..12
//! the gateway's epoch (seconds since it last lost its state), 12..24 reserved; then the nonce,
//! protocol, internal port, the *assigned* external port and address. Options may follow; we
//! send none and skip any the gateway adds.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The PCP version we speak (§9).
pub const VERSION: u8 = 2;
/// The MAP opcode (§11).
const OP_MAP: u8 = 1;
/// The R bit of byte 1: set in answers (§7.2).
const R_BIT: u8 = 0x80;
/// IANA protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// Header (§7.1, §7.2) and MAP fields (§11.1).
const HEADER_LEN: usize = 24;
const MAP_LEN: usize = HEADER_LEN + 36;
/// Longest PCP message (§7).
const MAX_LEN: usize = 1100;

/// The 96-bit mapping nonce (§11.1).
pub type Nonce = [u8; 12];

/// A result code (§7.4); 0 is success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultCode(pub u8);

impl ResultCode {
    pub const SUCCESS: ResultCode = ResultCode(0);
    pub const UNSUPP_VERSION: ResultCode = ResultCode(1);
    pub const MALFORMED_REQUEST: ResultCode = ResultCode(3);
    pub const UNSUPP_OPCODE: ResultCode = ResultCode(4);

    /// The RFC's name for the code, if it defines one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "SUCCESS",
            1 => "UNSUPP_VERSION",
            2 => "NOT_AUTHORIZED",
            3 => "MALFORMED_REQUEST",
            4 => "UNSUPP_OPCODE",
            5 => "UNSUPP_OPTION",
            6 => "MALFORMED_OPTION",
            7 => "NETWORK_FAILURE",
            8 => "NO_RESOURCES",
            9 => "UNSUPP_PROTOCOL",
            10 => "USER_EX_QUOTA",
            11 => "CANNOT_PROVIDE_EXTERNAL",
            12 => "ADDRESS_MISMATCH",
            13 => "EXCESSIVE_REMOTE_PEERS",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ResultCode {
    /// What the code means for us, then the code and its name: "the gateway refused the
    /// mapping (PCP result 2: NOT_AUTHORIZED; port mapping may be turned off in the router)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, hint) = match self.0 {
            0 => ("the gateway granted the mapping", None),
            1 => ("the gateway does not speak PCP version 2", None),
            2 => (
                "the gateway refused the mapping",
                Some("port mapping may be turned off in the router"),
            ),
            3 => ("the gateway could not read our request", None),
            4 => ("the gateway does not do MAP requests", None),
            5 | 6 => ("the gateway refused an option", Some("we send none")),
            7 => ("the gateway has no working external connection", None),
            8 => ("the gateway has no mapping to spare", None),
            9 => ("the gateway does not map TCP ports", None),
            10 => ("the gateway allows us no more mappings", None),
            11 => (
                "the gateway cannot provide the external port or address",
                None,
            ),
            12 => (
                "the gateway sees our request come from another address than the one in it",
                Some("is there another NAT between us and the gateway?"),
            ),
            13 => ("the gateway has too many remote peers for a mapping", None),
            _ => ("the gateway answered an unknown result code", None),
        };
        match self.name() {
            Some(name) => write!(f, "{what} (PCP result {}: {name}", self.0)?,
            None => write!(f, "{what} (PCP result {}", self.0)?,
        }
        match hint {
            Some(hint) => write!(f, "; {hint})"),
            None => f.write_str(")"),
        }
    }
}

/// The fields of a MAP request that vary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRequest {
    pub nonce: Nonce,
    /// Our address as the gateway sees it (the source address of our datagrams).
    pub client_ip: Ipv4Addr,
    pub internal_port: u16,
    pub suggested_port: u16,
    /// `0.0.0.0`: no preference.
    pub suggested_ip: Ipv4Addr,
    /// Seconds; 0 deletes the mapping (§15).
    pub lifetime: u32,
}

/// The 60 bytes of a MAP request for a TCP port (layout in the module header).
pub fn map_request(r: &MapRequest) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAP_LEN);
    b.extend_from_slice(&[VERSION, OP_MAP, 0, 0]);
    b.extend_from_slice(&r.lifetime.to_be_bytes());
    b.extend_from_slice(&r.client_ip.to_ipv6_mapped().octets());
    b.extend_from_slice(&r.nonce);
    b.extend_from_slice(&[PROTO_TCP, 0, 0, 0]);
    b.extend_from_slice(&r.internal_port.to_be_bytes());
    b.extend_from_slice(&r.suggested_port.to_be_bytes());
    b.extend_from_slice(&r.suggested_ip.to_ipv6_mapped().octets());
    b
}

/// An answer to a MAP request, checked for form (not yet against our request: the state
/// machine compares the nonce and the port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// "Unsupported version" (§9) from a gateway speaking an older version than 2: NAT-PMP's
    /// answer to a version it does not know (RFC 6886 §3.5: version 0, result 1), which RFC
    /// 6887 Appendix A made line up with PCP's header (byte 3 = 1), or a PCP `UNSUPP_VERSION`
    /// naming version 1 (or 2). Either way the gateway speaks no PCP we know: use NAT-PMP.
    OlderVersion { version: u8 },
    /// A MAP answer with its fields.
    Map(MapAnswer),
    /// An error answer of the header only, for the result codes where the gateway may not
    /// have read our MAP fields to copy them back (`MALFORMED_REQUEST`, `UNSUPP_OPCODE`).
    /// It cannot carry the nonce, so it is believed only for these codes.
    HeaderError { result: ResultCode, epoch: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapAnswer {
    pub result: ResultCode,
    /// Seconds granted (on success); on an error, how long it holds (§7.4), unused here.
    pub lifetime: u32,
    pub epoch: u32,
    pub nonce: Nonce,
    pub protocol: u8,
    pub internal_port: u16,
    pub external_port: u16,
    pub external_ip: Ipv6Addr,
}

impl MapAnswer {
    /// Whether this answers the MAP request for TCP port `internal_port` with `nonce`
    /// (§11.4: an answer with another nonce is not ours, whoever sent it).
    pub fn is_for(&self, nonce: &Nonce, internal_port: u16) -> bool {
        self.nonce == *nonce && self.protocol == PROTO_TCP && self.internal_port == internal_port
    }
}

/// Checks an answer's form (§8.3): at most 1100 bytes, a multiple of 4, R bit set; an
/// "unsupported version" answer of an older version is recognised from its first 4 bytes
/// (NAT-PMP's is 8); otherwise version 2, opcode MAP, and the 60 bytes of header and MAP
/// fields, or the 24-byte header alone for the two codes of [`Answer::HeaderError`]. Options
/// after the MAP fields are skipped unread. Anything else is `None`. Never panics, whatever
/// the bytes.
pub fn parse_answer(b: &[u8]) -> Option<Answer> {
    if b.len() < 4 || b.len() > MAX_LEN || !b.len().is_multiple_of(4) {
        return None;
    }
    let (version, op, result) = (b[0], b[1], ResultCode(b[3]));
    if op & R_BIT == 0 {
        return None;
    }
    // NAT-PMP's result code is 16 bits at 2..4: result 1 is [0, 1] there. (A version-2
    // header saying it does not speak version 2 is taken the same way.)
    if version <= VERSION && b[2] == 0 && result == ResultCode::UNSUPP_VERSION {
        return Some(Answer::OlderVersion { version });
    }
    if version != VERSION || op & !R_BIT != OP_MAP || b.len() < HEADER_LEN {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let (lifetime, epoch) = (u32_at(4), u32_at(8));
    if b.len() < MAP_LEN {
        return matches!(
            result,
            ResultCode::MALFORMED_REQUEST | ResultCode::UNSUPP_OPCODE
        )
        .then_some(Answer::HeaderError { result, epoch });
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&b[24..36]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[44..60]);
    Some(Answer::Map(MapAnswer {
        result,
        lifetime,
        epoch,
        nonce,
        protocol: b[36],
        internal_port: u16_at(40),
        external_port: u16_at(42),
        external_ip: Ipv6Addr::from(ip),
    }))
}

/// §8.5: whether the gateway kept its state between two answers, from their epochs and the
/// seconds that passed here between them. Invalid (it restarted and lost our mapping) when the
/// epoch went back more than 2 s, or when its advance and ours differ by more than 2 s plus a
/// sixteenth (either way: clocks may drift, but not that much).
pub fn epoch_valid(prev_epoch: u32, epoch: u32, client_elapsed_secs: u64) -> bool {
    if u64::from(epoch) + 2 < u64::from(prev_epoch) {
        return false;
    }
    let server = u64::from(epoch.saturating_sub(prev_epoch));
    let client = client_elapsed_secs;
    !(client + 2 < server - server / 16 || server + 2 < client - client / 16)
}
