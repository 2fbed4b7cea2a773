//! The Noise prologue: bytes both sides mix into the handshake hash before the first message.
//! Nothing of it is sent; if the two sides' prologues differ in one bit, the second handshake
//! message fails to verify. Putting the protocol version and the capabilities here is what
//! makes a downgrade impossible: whoever would rewrite them on the path cannot make the
//! handshake succeed, and there is no plaintext fallback to retreat to.
//!
//! Layout (28 bytes, PROTOCOL.md §15.4): the 16 ASCII bytes
//! `p2p-secure-link` and a zero byte, the wire protocol version (u32 big-endian), the
//! capability bits (u64 big-endian, 0 in this draft).

/// First 16 bytes of every prologue: says what the handshake is for, so a transcript of our
/// protocol can never verify as another protocol's that uses the same Noise parameters.
pub const LABEL: &[u8; 16] = b"p2p-secure-link\0";
pub const LEN: usize = LABEL.len() + 4 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prologue {
    /// The wire protocol version spoken on the link once it is up (`Hello.version`).
    pub version: u32,
    /// What this side's protocol supports beyond the version, one bit each; no bit is defined
    /// yet. Both sides must agree exactly: a later version that negotiates them would send its
    /// offer in the clear before the handshake and put both offers here, so that a changed
    /// offer still breaks the handshake.
    pub capabilities: u64,
}

impl Prologue {
    pub fn bytes(&self) -> [u8; LEN] {
        let mut out = [0; LEN];
        out[..16].copy_from_slice(LABEL);
        out[16..20].copy_from_slice(&self.version.to_be_bytes());
        out[20..].copy_from_slice(&self.capabilities.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_as_documented() {
        let p = Prologue {
            version: 2,
            capabilities: 0x0102,
        };
        assert_eq!(
            hex::encode(p.bytes()),
            "7032702d7365637572652d6c696e6b00\
             00000002\
             0000000000000102"
        );
    }
}
