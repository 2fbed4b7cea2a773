//! RFC 4648 base32 (alphabet `A`–`Z`, `2`–`7`), without padding: the letters of a peer id.
//!
//! Twenty lines of our own rather than a crate: we need one alphabet, no padding, and a decoder
//! that refuses every text but the one [`encode`] writes (so one key has exactly one id).

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in base32, no padding: 8 characters for every 5 bytes, the last group shorter.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((acc >> bits) & 31)]));
        }
    }
    if bits > 0 {
        // The leftover bits, padded with zero bits on the right (RFC 4648 §6).
        out.push(char::from(ALPHABET[usize::from((acc << (5 - bits)) & 31)]));
    }
    out
}

/// The 5-bit value of an upper-case base32 letter.
pub fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// The letter of a 5-bit value (`v < 32`).
pub fn letter(v: u8) -> char {
    char::from(ALPHABET[usize::from(v & 31)])
}

/// Decodes what [`encode`] wrote: upper-case letters only, and the padding bits of the last
/// letter must be zero (otherwise two texts would decode to the same bytes). `None` otherwise.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for &c in text {
        acc = ((acc << 5) | u16::from(value(c)?)) & 0x1fff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // What is left must be fewer than 5 padding bits, all zero: 5 or more would be a letter
    // that carries no byte, a length `encode` never writes.
    let padding = acc & ((1 << bits) - 1);
    (bits < 5 && padding == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10's test vectors, without their padding.
    #[test]
    fn rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded, "{plain:?}");
            assert_eq!(
                decode(coded.as_bytes()).unwrap(),
                plain.as_bytes(),
                "{coded:?}"
            );
        }
    }

    #[test]
    fn only_the_canonical_text_decodes() {
        // "MZ" with the last letter's padding bits set ("M3" would be 0x66 and 2 stray bits).
        assert_eq!(decode(b"MY"), Some(b"f".to_vec()));
        assert_eq!(decode(b"MZ"), None);
        assert_eq!(decode(b"my"), None, "lower case is the caller's business");
        assert_eq!(decode(b"M"), None, "a letter that carries no byte");
        assert_eq!(decode(b"MZX"), None);
        assert_eq!(decode(b"M1"), None);
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(encode(&bytes).as_bytes()).unwrap(), bytes);
        }
    }
}
