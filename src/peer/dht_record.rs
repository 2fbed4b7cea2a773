//! What this peer puts on the Mainline DHT, as plain values (PROTOCOL.md §17): the info-hash a
//! content id is announced under, the signed record of a peer's addresses (a BEP 44 mutable
//! item) and XEdDSA, which signs it with the peer's X25519 identity key.
//!
//! BEP 44 needs an Ed25519 key; ours is X25519 (`identity/keypair.rs`). XEdDSA (Signal's
//! specification) signs with the X25519 private scalar so that the signature verifies as a
//! plain Ed25519 signature under the Edwards form of the X25519 public key with sign bit 0.
//! Anyone can compute that key from a peer id, so a finder needs nothing but the id, and the
//! DHT nodes (which check every BEP 44 signature) need nothing new. One key stays the whole
//! identity. The nonce is deterministic (XEdDSA's `hash1` over the scalar and the message,
//! without the random `Z`), like RFC 8032's: the same record signs to the same bytes.
//!
//! Anything read from the DHT is hostile: [`parse_record`] takes at most [`MAX_RECORD_LEN`]
//! bytes, accepts exactly the layout of PROTOCOL.md §17.3 and drops addresses nobody can dial.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::net::{IpAddr, SocketAddr};

/// What the content info-hash is derived with, so ours never collide with torrents'.
pub const CONTENT_PREFIX: &[u8] = b"p2p content v1";
/// The BEP 44 salt of a peer's address record (the item's target is SHA-1(key || salt)).
pub const RECORD_SALT: &[u8] = b"p2p peer v1";
/// The record layout this code writes and reads.
pub const RECORD_VERSION: u64 = 1;
/// Most bytes of a record's value: BEP 44's limit for `v` (1000) with room to spare.
pub const MAX_RECORD_LEN: usize = 512;
/// Most addresses a record lists (more are refused when writing, and the record is refused
/// when reading).
pub const MAX_RECORD_ADDRS: usize = 8;

/// The DHT info-hash content `id` (its text form, `cid1:…` or `tree1:…`, lowercase hex) is
/// announced under: the first 20 bytes of SHA-256("p2p content v1" || id).
pub fn content_info_hash(id_text: &str) -> [u8; 20] {
    let mut h = Sha256::new();
    h.update(CONTENT_PREFIX);
    h.update(id_text.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let mut out = [0; 20];
    out.copy_from_slice(&digest[..20]);
    out
}

/// The Ed25519 public key of an X25519 public key: the Edwards point whose Montgomery `u` it
/// is, with sign bit 0. `None` for the few 32-byte strings that are no point of the curve
/// (on its twist); a key made by `Identity` always has one.
pub fn ed25519_public(x25519_public: &[u8; 32]) -> Option<[u8; 32]> {
    let point = MontgomeryPoint(*x25519_public).to_edwards(0)?;
    Some(point.compress().to_bytes())
}

/// The XEdDSA key pair of an X25519 private key: the Ed25519 public key `A` (sign bit 0) and
/// the scalar `a` with `A = aB`.
fn xeddsa_key_pair(x25519_private: &[u8; 32]) -> ([u8; 32], Scalar) {
    let k = Scalar::from_bytes_mod_order(clamp_integer(*x25519_private));
    let e = EdwardsPoint::mul_base(&k).compress().to_bytes();
    let a = if e[31] & 0x80 != 0 { -k } else { k };
    let mut public = e;
    public[31] &= 0x7f;
    (public, a)
}

/// Signs `msg` with an X25519 private key (XEdDSA with a deterministic nonce):
/// `r = SHA-512(0xFE || 0xFF×31 || a || msg) mod q`, `R = rB`,
/// `h = SHA-512(R || A || msg) mod q`, `s = r + h·a mod q`; the signature is `R || s`.
pub fn xeddsa_sign(x25519_private: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    let (public, a) = xeddsa_key_pair(x25519_private);
    let mut h1 = Sha512::new();
    h1.update([0xfe]);
    h1.update([0xff; 31]);
    h1.update(a.as_bytes());
    h1.update(msg);
    let r = Scalar::from_bytes_mod_order_wide(&h1.finalize().into());
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let mut h = Sha512::new();
    h.update(big_r);
    h.update(public);
    h.update(msg);
    let h = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = r + h * a;
    let mut sig = [0; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// The bytes BEP 44 signs for a value with a salt: `4:salt<len>:<salt>3:seqi<seq>e1:v<len>:<v>`.
pub fn bep44_signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = format!("4:salt{}:", salt.len()).into_bytes();
    out.extend_from_slice(salt);
    out.extend_from_slice(format!("3:seqi{seq}e1:v{}:", value.len()).as_bytes());
    out.extend_from_slice(value);
    out
}

/// The BEP 44 mutable item of a record value: signed by XEdDSA under the peer's key, with
/// [`RECORD_SALT`].
pub fn signed_record(x25519_private: &[u8; 32], value: &[u8], seq: i64) -> mainline::MutableItem {
    let (public, _) = xeddsa_key_pair(x25519_private);
    let sig = xeddsa_sign(x25519_private, &bep44_signable(RECORD_SALT, seq, value));
    mainline::MutableItem::new_signed_unchecked(public, sig, value, seq, Some(RECORD_SALT))
}

/// A peer's address record (PROTOCOL.md §17.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where it accepts connections, in the order to try them.
    pub addrs: Vec<SocketAddr>,
    /// When it was made: seconds since the Unix epoch.
    pub at: u64,
}

/// The record's CBOR: a map of exactly these keys (text), in this order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u64,
    addrs: Vec<String>,
    at: u64,
}

/// Whether anyone could dial `addr`: a port, and an address that is no wildcard, multicast
/// or broadcast one.
pub fn dialable(addr: &SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified() && !ip.is_multicast(),
    };
    addr.port() != 0 && ip_ok
}

/// The value of a record: small CBOR (PROTOCOL.md §17.3). Addresses nobody can dial are left
/// out; `None` if no address is left, or too many, or the value would be too long.
pub fn encode_record(record: &Record) -> Option<Vec<u8>> {
    let addrs: Vec<String> = (record.addrs.iter())
        .filter(|a| dialable(a))
        .map(|a| a.to_string())
        .collect();
    if addrs.is_empty() || addrs.len() > MAX_RECORD_ADDRS {
        return None;
    }
    let wire = Wire {
        v: RECORD_VERSION,
        addrs,
        at: record.at,
    };
    let mut out = Vec::new();
    ciborium::into_writer(&wire, &mut out).ok()?;
    (out.len() <= MAX_RECORD_LEN).then_some(out)
}

/// Reads a record value from the DHT, strictly: at most [`MAX_RECORD_LEN`] bytes, one CBOR
/// map with `v` (1), `addrs` (1 to [`MAX_RECORD_ADDRS`] `IP:PORT` texts) and `at`, nothing
/// else, nothing after it, and every address dialable.
pub fn parse_record(bytes: &[u8]) -> Result<Record, String> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(format!("{} bytes, more than {MAX_RECORD_LEN}", bytes.len()));
    }
    let mut rest = bytes;
    let wire: Wire = ciborium::de::from_reader_with_recursion_limit(&mut rest, 4)
        .map_err(|e| format!("not a record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the record", rest.len()));
    }
    if wire.v != RECORD_VERSION {
        return Err(format!("record version {}, not {RECORD_VERSION}", wire.v));
    }
    if wire.addrs.is_empty() || wire.addrs.len() > MAX_RECORD_ADDRS {
        return Err(format!(
            "{} addresses (1 to {MAX_RECORD_ADDRS} allowed)",
            wire.addrs.len()
        ));
    }
    let mut addrs = Vec::with_capacity(wire.addrs.len());
    for text in &wire.addrs {
        let addr: SocketAddr = text.parse().map_err(|_| {
            format!(
                "not an IP:PORT address: {:?}",
                crate::names::printable(text)
            )
        })?;
        if !dialable(&addr) {
            return Err(format!("{addr} cannot be dialed"));
        }
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(Record { addrs, at: wire.at })
}

#[cfg(test)]
mod tests;
