//! Content ids: a file's id that commits to its manifest. Pure: no I/O.
//!
//! A file's SHA-256 names its bytes but says nothing about the chunk hashes a source sends in
//! its manifest, so a receiver could only find a forged manifest out after downloading the
//! whole file (PROTOCOL.md §8.2). The content id is computed *from* the manifest instead:
//!
//! ```text
//! leaf(h)       = SHA-256(0x00 ‖ h)                 h: one chunk hash (32 bytes)
//! node(l, r)    = SHA-256(0x01 ‖ l ‖ r)
//! root(h₀..hₙ₋₁) = SHA-256()                 n = 0
//!                = leaf(h₀)                  n = 1
//!                = node(root(h₀..hₖ₋₁), root(hₖ..hₙ₋₁))   n > 1, k the largest power of 2 < n
//! id            = SHA-256("p2p-content-id-v1" ‖ size as u64 BE ‖ chunk_size as u32 BE ‖ root)
//! ```
//!
//! `root` is the Merkle Tree Hash of RFC 9162 §2.1.1 (Certificate Transparency) over the chunk
//! hashes. A receiver checks a whole manifest against the id it asked for with
//! [`check_manifest`] (at most 3 × 65 536 small hashes, a few milliseconds) before it asks for
//! any chunk. The tree, rather than one hash over the list, also lets a single chunk be proved
//! with at most 16 hashes ([`chunk_proof`], [`verify_chunk_proof`]): a manifest too big for one
//! frame or a chunk from a source whose manifest we never fetched can be checked later without
//! changing the id. PROTOCOL.md §8.4 is the reference, with a worked example.
//!
//! The text form is `cid1:` and 64 lowercase hex digits. The tag keeps an id from being taken
//! for a file SHA-256 (bare hex), and the `:` can never be in a shared file's name (§9.2).

use crate::peer::manifest::Manifest;
use crate::wire::Sha256;
use sha2::Digest;
use std::fmt;
use std::str::FromStr;

/// What the text form of every content id starts with.
pub const TEXT_PREFIX: &str = "cid1:";
/// The first bytes of the id's hash input: a version-1 content id and nothing else.
pub const DOMAIN_TAG: &[u8; 17] = b"p2p-content-id-v1";
/// Length of the hash input of an id: tag, size, chunk size, root.
pub const ENCODED_LEN: usize = DOMAIN_TAG.len() + 8 + 4 + 32;

/// A file's content id (the type lives in `wire`, which carries it): SHA-256 over (size, chunk
/// size, Merkle root of the chunk hashes). See the module docs. Displays as `cid1:` + hex;
/// parse it back with [`str::parse`].
pub use crate::wire::ContentId;

impl ContentId {
    /// The id of a file of `size` bytes in chunks of `chunk_size` bytes with these chunk
    /// hashes. Only a manifest that passed [`Manifest::from_wire`] makes an id a file can have.
    pub fn from_parts(size: u64, chunk_size: u32, chunk_hashes: &[Sha256]) -> ContentId {
        let input = encode(size, chunk_size, &merkle_root(chunk_hashes));
        ContentId(sha2::Sha256::digest(input).into())
    }

    /// The id of the file this manifest describes.
    pub fn of(manifest: &Manifest) -> ContentId {
        ContentId::from_parts(manifest.size, manifest.chunk_size, &manifest.chunk_hashes)
    }

    /// The 64 hex digits, without the `cid1:` tag.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `hex_prefix` (hex digits of either case, without the tag) starts this id's hex.
    /// An empty prefix matches every id.
    pub fn has_hex_prefix(&self, hex_prefix: &str) -> bool {
        hex_prefix.len() <= 64
            && hex_prefix.is_ascii()
            && self.to_hex().starts_with(&hex_prefix.to_ascii_lowercase())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TEXT_PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({TEXT_PREFIX}{})", &self.to_hex()[..16])
    }
}

/// Why a text is not a content id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseContentIdError {
    /// It does not start with `cid1:` (a bare hex string is a file SHA-256, not an id).
    MissingPrefix,
    /// After the tag there are not exactly 64 hex digits; how many characters there were.
    WrongLength(usize),
    /// After the tag, a character that is not a hex digit.
    NotHex,
}

impl fmt::Display for ParseContentIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseContentIdError::MissingPrefix => {
                write!(f, "a content id starts with '{TEXT_PREFIX}'")
            }
            ParseContentIdError::WrongLength(n) => write!(
                f,
                "a content id has 64 hex digits after '{TEXT_PREFIX}', not {n}"
            ),
            ParseContentIdError::NotHex => write!(
                f,
                "a content id has only hex digits (0-9, a-f) after '{TEXT_PREFIX}'"
            ),
        }
    }
}

impl std::error::Error for ParseContentIdError {}

impl FromStr for ContentId {
    type Err = ParseContentIdError;

    /// `cid1:` followed by exactly 64 hex digits (either case; shown in lowercase).
    fn from_str(s: &str) -> Result<ContentId, ParseContentIdError> {
        let digits = s
            .strip_prefix(TEXT_PREFIX)
            .ok_or(ParseContentIdError::MissingPrefix)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseContentIdError::NotHex);
        }
        if digits.len() != 64 {
            return Err(ParseContentIdError::WrongLength(digits.chars().count()));
        }
        let mut id = [0u8; 32];
        hex::decode_to_slice(digits, &mut id).map_err(|_| ParseContentIdError::NotHex)?;
        Ok(ContentId(id))
    }
}

/// Fewest hex digits of a content id (or a SHA-256) that select a file in `get` and `search`.
pub const MIN_PREFIX: usize = 6;

/// The hex digits of `cid1:HEX`, lower case, when there are [`MIN_PREFIX`] to 64 of them: how
/// `get` and `search` are given a content id or a prefix of one. The tag is matched in any
/// case (people type it). `None`: not a content id.
pub fn id_prefix(text: &str) -> Option<String> {
    let tag = text.get(..TEXT_PREFIX.len())?;
    if !tag.eq_ignore_ascii_case(TEXT_PREFIX) {
        return None;
    }
    let hex = text[TEXT_PREFIX.len()..].to_ascii_lowercase();
    is_hex_prefix(&hex).then_some(hex)
}

/// [`MIN_PREFIX`] to 64 hex digits.
pub fn is_hex_prefix(text: &str) -> bool {
    (MIN_PREFIX..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// A manifest that does not belong to the content id it was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMismatch {
    pub expected: ContentId,
    /// The id the manifest actually has.
    pub actual: ContentId,
}

impl fmt::Display for IdMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the manifest has content id {}, not the {} asked for",
            self.actual, self.expected
        )
    }
}

impl std::error::Error for IdMismatch {}

/// Checks that `manifest` (already validated by [`Manifest::from_wire`]) is the manifest of
/// the file with content id `id`: then every chunk that matches its hash is a chunk of that
/// file, and all of them together are the file. Its `sha256` field is not covered (the id does
/// not commit to the whole-file hash).
pub fn check_manifest(manifest: &Manifest, id: &ContentId) -> Result<(), IdMismatch> {
    let actual = ContentId::of(manifest);
    if actual == *id {
        Ok(())
    } else {
        Err(IdMismatch {
            expected: *id,
            actual,
        })
    }
}

/// A `Manifest` message's fields as a receiver takes them (PROTOCOL.md §8.2): asked for
/// content id `asked`, answered with `id`, `size`, `chunk_size` and `hashes`; `listed_sha256`
/// is the SHA-256 the file was listed with, kept as the manifest's label (the id does not
/// commit to it), and `expected_size` the size it was listed with, if known. `Err`: why the
/// manifest is refused, for the user.
pub fn manifest_from_answer(
    asked: &ContentId,
    id: &ContentId,
    listed_sha256: Sha256,
    size: u64,
    chunk_size: u32,
    hashes: &[u8],
    expected_size: Option<u64>,
) -> Result<Manifest, String> {
    if id != asked {
        return Err(format!("answered with the manifest of {id}, not {asked}"));
    }
    let manifest = Manifest::from_answer(listed_sha256, size, chunk_size, hashes, expected_size)?;
    check_manifest(&manifest, asked).map_err(|e| e.to_string())?;
    Ok(manifest)
}

/// The bytes an id hashes: [`DOMAIN_TAG`], `size` (8 bytes, big-endian), `chunk_size` (4 bytes,
/// big-endian), `root` (32 bytes).
pub fn encode(size: u64, chunk_size: u32, root: &Sha256) -> [u8; ENCODED_LEN] {
    let mut out = [0u8; ENCODED_LEN];
    let (tag, rest) = out.split_at_mut(DOMAIN_TAG.len());
    tag.copy_from_slice(DOMAIN_TAG);
    rest[..8].copy_from_slice(&size.to_be_bytes());
    rest[8..12].copy_from_slice(&chunk_size.to_be_bytes());
    rest[12..].copy_from_slice(&root.0);
    out
}

/// RFC 9162's leaf hash of one chunk hash: SHA-256(0x00 ‖ h).
pub fn leaf_hash(chunk_hash: &Sha256) -> Sha256 {
    Sha256(
        sha2::Sha256::new()
            .chain_update([0x00])
            .chain_update(chunk_hash.0)
            .finalize()
            .into(),
    )
}

/// RFC 9162's interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Sha256, right: &Sha256) -> Sha256 {
    Sha256(
        sha2::Sha256::new()
            .chain_update([0x01])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of the chunk hashes: SHA-256 of nothing for no chunk,
/// the leaf hash for one, else the node over the first `k` (the largest power of two below
/// the count) and the rest. Recursion depth is log₂ of the count (17 at 65 536 chunks).
pub fn merkle_root(chunk_hashes: &[Sha256]) -> Sha256 {
    match chunk_hashes {
        [] => Sha256::of(b""),
        [one] => leaf_hash(one),
        _ => {
            let (left, right) = chunk_hashes.split_at(split_point(chunk_hashes.len()));
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The inclusion proof of chunk `index` (RFC 9162 §2.1.3.1): the sibling subtree hashes from
/// the leaf up to the root, at most 16 for 65 536 chunks. `None` if `index` is out of range.
/// Not used on the wire yet: it is what the tree is for (see the module docs).
pub fn chunk_proof(chunk_hashes: &[Sha256], index: usize) -> Option<Vec<Sha256>> {
    if index >= chunk_hashes.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut hashes, mut m) = (chunk_hashes, index);
    // Walk down from the root, remembering each sibling; the path lists them leaf first.
    while hashes.len() > 1 {
        let k = split_point(hashes.len());
        if m < k {
            path.push(merkle_root(&hashes[k..]));
            hashes = &hashes[..k];
        } else {
            path.push(merkle_root(&hashes[..k]));
            hashes = &hashes[k..];
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): `chunk_hash` is chunk `index` of the
/// `count` chunks whose Merkle root is `root`. `count` must come from a trusted place (the
/// size and chunk size an id commits to): like RFC 9162's tree size, the proof does not bind it.
pub fn verify_chunk_proof(
    root: &Sha256,
    count: u64,
    index: u64,
    chunk_hash: &Sha256,
    proof: &[Sha256],
) -> bool {
    if index >= count {
        return false;
    }
    let (mut f, mut s) = (index, count - 1);
    let mut r = leaf_hash(chunk_hash);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::manifest::{
        MAX_CHUNK_SIZE, MAX_CHUNKS, MAX_FILE_SIZE, MIN_CHUNK_SIZE, chunk_size_for,
        manifest_of_reader,
    };

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    const CS: u64 = MIN_CHUNK_SIZE as u64;

    // Deterministic test bytes: the index tests' own generator.
    use crate::peer::index::fixture::bytes;

    /// A made-up but distinct hash for chunk `i`.
    fn h(i: u64) -> Sha256 {
        Sha256::of(&i.to_be_bytes())
    }

    /// The id written out the slow way, straight from the definition, sharing no code with
    /// the module: a second implementation in miniature.
    fn reference_id(size: u64, chunk_size: u32, hashes: &[Sha256]) -> ContentId {
        fn mth(hs: &[Sha256]) -> [u8; 32] {
            let sha = |parts: &[&[u8]]| -> [u8; 32] {
                let mut all = Vec::new();
                for p in parts {
                    all.extend_from_slice(p);
                }
                sha2::Sha256::digest(&all).into()
            };
            match hs.len() {
                0 => sha(&[]),
                1 => sha(&[&[0], &hs[0].0]),
                n => {
                    let mut k = 1;
                    while k * 2 < n {
                        k *= 2;
                    }
                    sha(&[&[1], &mth(&hs[..k]), &mth(&hs[k..])])
                }
            }
        }
        let mut input = b"p2p-content-id-v1".to_vec();
        input.extend_from_slice(&size.to_be_bytes());
        input.extend_from_slice(&chunk_size.to_be_bytes());
        input.extend_from_slice(&mth(hashes));
        ContentId(sha2::Sha256::digest(&input).into())
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (65_536, 32_768),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
        assert_eq!(split_point(65_537), 65_536);
    }

    #[test]
    fn ids_of_real_files_around_the_chunk_size() {
        let sizes = [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS - 1, 7 * CS + 3];
        let mut seen = std::collections::HashSet::new();
        for size in sizes {
            let data = bytes(size as usize, 7);
            let m = manifest_of_reader(&data[..], size).unwrap();
            assert_eq!(m.chunk_size, MIN_CHUNK_SIZE);
            let want: Vec<Sha256> = data.chunks(CS as usize).map(Sha256::of).collect();
            assert_eq!(m.chunk_hashes, want, "size {size}");
            let id = ContentId::of(&m);
            assert_eq!(id, reference_id(size, MIN_CHUNK_SIZE, &want), "size {size}");
            assert_eq!(check_manifest(&m, &id), Ok(()));
            assert!(seen.insert(id), "size {size}: two files share an id");
            // Never the file's SHA-256, even for one chunk (whose hash is the SHA-256).
            assert_ne!(id.0, m.sha256.0);
        }
        // One byte more or less at the end, or one byte changed: another id.
        let a = bytes(2 * CS as usize + 5, 9);
        let mut b = a.clone();
        b[CS as usize + 1] ^= 0x80;
        let ida = ContentId::of(&manifest_of_reader(&a[..], a.len() as u64).unwrap());
        let idb = ContentId::of(&manifest_of_reader(&b[..], b.len() as u64).unwrap());
        assert_ne!(ida, idb);
    }

    #[test]
    fn many_chunks_match_the_reference() {
        for n in [
            2u64, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000, 4097,
        ] {
            let hashes: Vec<Sha256> = (0..n).map(h).collect();
            let size = n * CS - 1;
            let id = ContentId::from_parts(size, MIN_CHUNK_SIZE, &hashes);
            assert_eq!(
                id,
                reference_id(size, MIN_CHUNK_SIZE, &hashes),
                "{n} chunks"
            );
        }
    }

    #[test]
    fn ids_across_the_chunk_size_boundaries() {
        // PROTOCOL.md §8.1: 256 KiB up to 4 GiB inclusive, then 512 KiB, 1 MiB, 2 MiB, 4 MiB.
        let boundaries = [4 * GIB, 8 * GIB, 16 * GIB, 32 * GIB, 64 * GIB];
        let mut ids = std::collections::HashSet::new();
        for b in boundaries {
            for size in [b - 1, b, b + 1] {
                let cs = chunk_size_for(size);
                let n = size.div_ceil(u64::from(cs));
                let hashes: Vec<Sha256> = (0..n).map(h).collect();
                let sha = Sha256([5; 32]);
                let m = Manifest::from_wire(
                    sha,
                    size,
                    cs,
                    &hashes.iter().flat_map(|x| x.0).collect::<Vec<u8>>(),
                    Some(size),
                )
                .unwrap();
                let id = ContentId::of(&m);
                assert_eq!(id, reference_id(size, cs, &hashes), "size {size}");
                assert!(ids.insert(id), "size {size}");
                // The same chunk hashes under the chunk size of the other side of the
                // boundary (or any other size) give another id.
                let other = if cs == MAX_CHUNK_SIZE { cs / 2 } else { cs * 2 };
                assert_ne!(ContentId::from_parts(size, other, &hashes), id);
            }
        }
        // The largest file: 65 536 chunks of 4 MiB.
        let hashes: Vec<Sha256> = (0..MAX_CHUNKS).map(h).collect();
        let id = ContentId::from_parts(MAX_FILE_SIZE, MAX_CHUNK_SIZE, &hashes);
        assert_eq!(id, reference_id(MAX_FILE_SIZE, MAX_CHUNK_SIZE, &hashes));
    }

    #[test]
    fn the_id_commits_to_every_field() {
        let hashes: Vec<Sha256> = (0..5).map(h).collect();
        let size = 4 * CS + 10;
        let id = ContentId::from_parts(size, MIN_CHUNK_SIZE, &hashes);
        assert_ne!(ContentId::from_parts(size + 1, MIN_CHUNK_SIZE, &hashes), id);
        assert_ne!(ContentId::from_parts(size, 2 * MIN_CHUNK_SIZE, &hashes), id);
        for i in 0..hashes.len() {
            let mut forged = hashes.clone();
            forged[i].0[31] ^= 1;
            assert_ne!(
                ContentId::from_parts(size, MIN_CHUNK_SIZE, &forged),
                id,
                "{i}"
            );
        }
        let mut swapped = hashes.clone();
        swapped.swap(0, 1);
        assert_ne!(ContentId::from_parts(size, MIN_CHUNK_SIZE, &swapped), id);
        assert_ne!(
            ContentId::from_parts(size, MIN_CHUNK_SIZE, &hashes[..4]),
            id
        );
    }

    #[test]
    fn a_forged_manifest_is_refused() {
        // The attack of issue 13: true size and SHA-256, chunk hashes of the liar's own bytes.
        let honest = bytes(3 * CS as usize + 100, 3);
        let m = manifest_of_reader(&honest[..], honest.len() as u64).unwrap();
        let id = ContentId::of(&m);
        let lie = bytes(honest.len(), 4);
        let mut forged = manifest_of_reader(&lie[..], lie.len() as u64).unwrap();
        forged.sha256 = m.sha256;
        let err = check_manifest(&forged, &id).unwrap_err();
        assert_eq!(err.expected, id);
        assert_eq!(err.actual, ContentId::of(&forged));
        let text = err.to_string();
        assert!(text.contains(&id.to_string()), "{text}");
        // The whole-file hash is not part of the id: a manifest differing only there matches.
        let mut relabelled = m.clone();
        relabelled.sha256 = Sha256([0; 32]);
        assert_eq!(check_manifest(&relabelled, &id), Ok(()));
    }

    #[test]
    fn text_form_round_trips_and_is_never_bare_hex() {
        let id = ContentId::from_parts(5, MIN_CHUNK_SIZE, &[h(1)]);
        let text = id.to_string();
        assert!(text.starts_with("cid1:"));
        assert_eq!(text.len(), 5 + 64);
        assert_eq!(text[5..], id.to_hex());
        assert_eq!(text.parse::<ContentId>(), Ok(id));
        assert_eq!(
            text.to_uppercase().replacen("CID1:", "cid1:", 1).parse(),
            Ok(id)
        );
        assert!(format!("{id:?}").starts_with("ContentId(cid1:"));
        // A file SHA-256 is refused, so the two can never be mixed up.
        let bare = id.to_hex();
        assert_eq!(
            bare.parse::<ContentId>(),
            Err(ParseContentIdError::MissingPrefix)
        );
        for (bad, why) in [
            ("cid1:", ParseContentIdError::WrongLength(0)),
            ("cid1:abc", ParseContentIdError::WrongLength(3)),
            (&format!("{text}0"), ParseContentIdError::WrongLength(65)),
            (&format!("{}g", &text[..68]), ParseContentIdError::NotHex),
            (&format!("{} ", &text[..68]), ParseContentIdError::NotHex),
            (&format!("{}é", &text[..67]), ParseContentIdError::NotHex),
            ("CID1:00", ParseContentIdError::MissingPrefix),
            ("cid2:00", ParseContentIdError::MissingPrefix),
            ("", ParseContentIdError::MissingPrefix),
        ] {
            assert_eq!(bad.parse::<ContentId>(), Err(why.clone()), "{bad:?}");
            assert!(!why.to_string().is_empty());
        }
        // Prefixes, as `get` will take them.
        assert!(id.has_hex_prefix(""));
        assert!(id.has_hex_prefix(&bare[..6]));
        assert!(id.has_hex_prefix(&bare[..6].to_uppercase()));
        assert!(id.has_hex_prefix(&bare));
        assert!(!id.has_hex_prefix(&format!("{bare}0")));
        assert!(!id.has_hex_prefix("cid1:"));
        let other = if bare.starts_with('0') { "1" } else { "0" };
        assert!(!id.has_hex_prefix(other));
    }

    #[test]
    fn serde_writes_a_byte_string() {
        let id = ContentId([0xab; 32]);
        let mut out = Vec::new();
        ciborium::into_writer(&id, &mut out).unwrap();
        assert_eq!(&out[..2], &[0x58, 0x20], "a 32-byte CBOR byte string");
        assert_eq!(out.len(), 34);
        let back: ContentId = ciborium::from_reader(&out[..]).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn chunk_proofs_prove_each_chunk_and_nothing_else() {
        for n in [1u64, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 100] {
            let hashes: Vec<Sha256> = (0..n).map(h).collect();
            let root = merkle_root(&hashes);
            for i in 0..n {
                let proof = chunk_proof(&hashes, i as usize).unwrap();
                assert!(proof.len() <= 7, "{n} chunks: {} hashes", proof.len());
                assert!(
                    verify_chunk_proof(&root, n, i, &hashes[i as usize], &proof),
                    "chunk {i} of {n}"
                );
                // Another chunk's hash, another index, a wrong count or a cut proof fail.
                assert!(!verify_chunk_proof(&root, n, i, &h(n + 1), &proof));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_chunk_proof(
                        &root,
                        n,
                        j,
                        &hashes[i as usize],
                        &proof
                    ));
                    assert!(!verify_chunk_proof(&root, n, i, &hashes[i as usize], &[]));
                    // (The count itself comes from the id's size and chunk size, so a proof
                    // need not bind it; RFC 9162 takes the tree size as given too.)
                }
                let mut long = proof.clone();
                long.push(root);
                assert!(!verify_chunk_proof(&root, n, i, &hashes[i as usize], &long));
            }
            assert_eq!(chunk_proof(&hashes, n as usize), None);
            assert!(!verify_chunk_proof(&root, n, n, &hashes[0], &[]));
        }
        assert_eq!(chunk_proof(&[], 0), None);
        let many: Vec<Sha256> = (0..MAX_CHUNKS).map(h).collect();
        let proof = chunk_proof(&many, 12_345).unwrap();
        assert_eq!(proof.len(), 16);
        assert!(verify_chunk_proof(
            &merkle_root(&many),
            MAX_CHUNKS,
            12_345,
            &many[12_345],
            &proof
        ));
    }

    /// PROTOCOL.md §8.4.1 is what this code computes: every hex string of the section is
    /// one of the values below and every value below is in the section, so the text and the
    /// code cannot drift apart. A second implementation is checked against the same text.
    #[test]
    fn protocol_examples_are_what_we_compute() {
        let protocol = include_str!("../../PROTOCOL.md");
        let start = protocol
            .find("### 8.4 Content ids")
            .expect("§8.4 is in PROTOCOL.md");
        // §8.5 (folders) follows; it has its own check (`folder/manifest/tests.rs`).
        let end = start
            + protocol[start..]
                .find("\n### 8.5")
                .or_else(|| protocol[start..].find("\n## 9."))
                .expect("§8.5 or §9 follows");
        let section = &protocol[start..end];

        let three: Vec<u8> = (0..2 * 262_144 + 1).map(|i| (i % 251) as u8).collect();
        let mut computed = std::collections::BTreeSet::new();
        for data in [&b""[..], &b"abcd"[..], &three[..]] {
            let m = manifest_of_reader(data, data.len() as u64).unwrap();
            assert_eq!(m.chunk_size, 262_144);
            let root = merkle_root(&m.chunk_hashes);
            let input = encode(m.size, m.chunk_size, &root);
            computed.insert(hex::encode(input));
            computed.insert(root.to_hex());
            computed.insert(ContentId::of(&m).to_string());
            let leaves: Vec<Sha256> = m.chunk_hashes.iter().map(leaf_hash).collect();
            for (c, l) in m.chunk_hashes.iter().zip(&leaves) {
                computed.insert(c.to_hex());
                computed.insert(l.to_hex());
            }
            if let [a, b, _] = &leaves[..] {
                computed.insert(node_hash(a, b).to_hex());
                computed.insert(m.sha256.to_hex());
                // The field-by-field listing of the last input.
                computed.insert(hex::encode(DOMAIN_TAG));
                computed.insert(hex::encode(m.size.to_be_bytes()));
                computed.insert(hex::encode(m.chunk_size.to_be_bytes()));
            }
        }
        // Every `hex` or `cid1:hex` in backticks, 8 digits or more.
        let documented: std::collections::BTreeSet<String> = section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| {
                let digits = t.strip_prefix(TEXT_PREFIX).unwrap_or(t);
                digits.len() >= 8 && digits.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .map(str::to_string)
            .collect();
        let missing: Vec<_> = computed.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&computed).collect();
        assert!(
            missing.is_empty(),
            "computed but not in PROTOCOL.md §8.4: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "in PROTOCOL.md §8.4 but not computed: {stale:?}"
        );
        // The text form's example is the id of `abcd`, as it says.
        let abcd = ContentId::of(&manifest_of_reader(&b"abcd"[..], 4).unwrap());
        assert!(section.contains(&format!("`{abcd}` for the 4 bytes")));
    }
}
