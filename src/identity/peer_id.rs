//! A peer id: who a peer is, as people read it aloud and compare it.
//!
//! The id *is* the peer's X25519 static public key (32 bytes), not a hash of it: an id typed
//! or pasted by a user is then enough to pin the key the Noise handshake must prove, with no
//! look-up in between. Its text (PROTOCOL.md §15.3): the key in base32
//! (52 letters), cut into 4 groups of 13, each followed by its check letter ([`super::check`]),
//! then shown as 8 groups of 7 letters joined by `-`, like Syncthing's device ids:
//! `AAAAAAA-AAAAAAA-…`. Parsing takes any case, with or without the dashes and spaces.

use super::{base32, check};
use std::fmt;
use std::str::FromStr;

/// Letters of the key in base32 (32 bytes → 52 letters, the last one carrying 1 bit).
const KEY_LETTERS: usize = 52;
/// Key letters covered by one check letter.
const GROUP: usize = 13;
const GROUPS: usize = KEY_LETTERS / GROUP;
/// Letters of the id without dashes: every group and its check letter.
pub const ID_LETTERS: usize = KEY_LETTERS + GROUPS;
/// Letters between two dashes in the shown form.
const SHOWN_GROUP: usize = 7;

const _: () = assert!(GROUP <= check::MAX_GROUP && KEY_LETTERS.is_multiple_of(GROUP));

/// On the wire (PROTOCOL.md §4: `PeerInfo.id`, the LAN announcement) a 32-byte CBOR byte
/// string: the key itself.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PeerId(#[serde(with = "serde_bytes")] [u8; 32]);

impl PeerId {
    /// The id of the peer whose X25519 static public key is `key`.
    pub fn from_public_key(key: [u8; 32]) -> PeerId {
        PeerId(key)
    }

    /// The id of a key as snow hands it over (`get_remote_static`); `None` unless 32 bytes.
    pub fn from_slice(key: &[u8]) -> Option<PeerId> {
        key.try_into().ok().map(PeerId)
    }

    /// The X25519 public key this id stands for.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first group of the shown form (7 letters, 35 bits): enough to tell peers apart on
    /// one screen, never enough to trust one by.
    pub fn short(&self) -> String {
        self.to_string()[..SHOWN_GROUP].to_string()
    }

    /// The 56 letters of the id, without dashes.
    fn letters(&self) -> String {
        let key = base32::encode(&self.0);
        let mut out = String::with_capacity(ID_LETTERS);
        for group in key.as_bytes().chunks(GROUP) {
            let values = group
                .iter()
                .map(|&c| base32::value(c).expect("encode writes letters"));
            out.push_str(std::str::from_utf8(group).expect("base32 letters are ASCII"));
            out.push(base32::letter(check::check_value(values)));
        }
        out
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters = self.letters();
        for (i, group) in letters.as_bytes().chunks(SHOWN_GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(group).expect("base32 letters are ASCII"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// Why a text is not a peer id. Positions count the id's letters from 1, dashes and spaces
/// not counted, so they match what a user sees when counting along the shown form.
#[derive(Debug, PartialEq, Eq)]
pub enum IdError {
    /// Not 56 letters once dashes and spaces are dropped.
    Length(usize),
    /// A character that is not a base32 letter (`0`, `1`, `8`, `9` and punctuation are not).
    Character { found: char, position: usize },
    /// A group's check letter does not match: a typo or two swapped letters in that group.
    Check {
        group: usize,
        first: usize,
        last: usize,
    },
    /// The letters do not spell a key (the last key letter carries stray bits).
    NotAKey,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Length(n) => write!(
                f,
                "a peer id has {ID_LETTERS} letters (not counting dashes), this has {n}"
            ),
            IdError::Character { found, position } => write!(
                f,
                "letter {position} of the peer id ({}) is not one of A-Z and 2-7",
                found.escape_default()
            ),
            IdError::Check { group, first, last } => write!(
                f,
                "the peer id has a typo or two swapped letters among letters {first}-{last} \
                 (check letter {group} of {GROUPS} does not match)"
            ),
            IdError::NotAKey => {
                f.write_str("the peer id does not spell a key (letter 55 is wrong)")
            }
        }
    }
}

impl std::error::Error for IdError {}

impl FromStr for PeerId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<PeerId, IdError> {
        let mut values = Vec::with_capacity(ID_LETTERS);
        for c in text.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let v = u8::try_from(c.to_ascii_uppercase())
                .ok()
                .and_then(base32::value);
            match v {
                Some(v) if values.len() < ID_LETTERS => values.push(v),
                Some(_) => values.push(0), // only counted: the length check below refuses it
                None => {
                    return Err(IdError::Character {
                        found: c,
                        position: values.len() + 1,
                    });
                }
            }
        }
        if values.len() != ID_LETTERS {
            return Err(IdError::Length(values.len()));
        }
        let mut key_letters = Vec::with_capacity(KEY_LETTERS);
        for (g, group) in values.chunks(GROUP + 1).enumerate() {
            let (data, check_letter) = group.split_at(GROUP);
            if check::check_value(data.iter().copied()) != check_letter[0] {
                let first = g * (GROUP + 1) + 1;
                return Err(IdError::Check {
                    group: g + 1,
                    first,
                    last: first + GROUP,
                });
            }
            key_letters.extend(data.iter().map(|&v| base32::letter(v) as u8));
        }
        let key = base32::decode(&key_letters).ok_or(IdError::NotAKey)?;
        Ok(PeerId(key.try_into().map_err(|_| IdError::NotAKey)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u8) -> PeerId {
        PeerId::from_public_key(std::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ seed))
    }

    #[test]
    fn shown_form_is_eight_groups_of_seven_and_round_trips() {
        for seed in 0..=255u8 {
            let id = sample(seed);
            let text = id.to_string();
            assert_eq!(text.len(), 8 * 7 + 7, "{text}");
            assert!(text.split('-').all(|g| g.len() == 7), "{text}");
            assert_eq!(text.parse::<PeerId>().unwrap(), id);
            assert_eq!(text.to_lowercase().parse::<PeerId>().unwrap(), id);
            assert_eq!(text.replace('-', "").parse::<PeerId>().unwrap(), id);
            let spaced = text.replace('-', " ");
            assert_eq!(format!("  {spaced} ").parse::<PeerId>().unwrap(), id);
            assert_eq!(id.short(), text[..7]);
        }
    }

    /// Every one-letter typo and every swap of two adjacent different letters, dashes not
    /// counted, is refused, and the error points at the group it is in.
    #[test]
    fn typos_and_swaps_are_refused_and_located() {
        for seed in [0u8, 1, 77, 255] {
            let letters: Vec<u8> = sample(seed)
                .to_string()
                .bytes()
                .filter(|&c| c != b'-')
                .collect();
            for i in 0..ID_LETTERS {
                for other in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" {
                    if *other == letters[i] {
                        continue;
                    }
                    let mut typo = letters.clone();
                    typo[i] = *other;
                    let err = String::from_utf8(typo)
                        .unwrap()
                        .parse::<PeerId>()
                        .unwrap_err();
                    match err {
                        IdError::Check { first, last, .. } => {
                            assert!(
                                (first..=last).contains(&(i + 1)),
                                "{err} for letter {}",
                                i + 1
                            )
                        }
                        _ => panic!("unexpected {err}"),
                    }
                }
                if i + 1 < ID_LETTERS && letters[i] != letters[i + 1] {
                    let mut swapped = letters.clone();
                    swapped.swap(i, i + 1);
                    let text = String::from_utf8(swapped).unwrap();
                    assert!(
                        text.parse::<PeerId>().is_err(),
                        "swap at {} accepted",
                        i + 1
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_length_and_characters_are_named() {
        let text = sample(3).to_string();
        assert_eq!(text[..20].parse::<PeerId>(), Err(IdError::Length(18)));
        assert_eq!(
            format!("{text}A").parse::<PeerId>(),
            Err(IdError::Length(57))
        );
        let with_zero = format!("{}0{}", &text[..3], &text[4..]);
        assert_eq!(
            with_zero.parse::<PeerId>(),
            Err(IdError::Character {
                found: '0',
                position: 4
            })
        );
        let err = format!("{}é{}", &text[..9], &text[10..])
            .parse::<PeerId>()
            .unwrap_err();
        assert_eq!(
            err,
            IdError::Character {
                found: 'é',
                position: 9
            }
        );
        assert!(err.to_string().contains("letter 9"), "{err}");
        assert!(matches!("".parse::<PeerId>(), Err(IdError::Length(0))));
    }

    /// Letter 55 (the last key letter) carries one bit and four zero bits; with its check
    /// letter made to match, stray bits there are still refused.
    #[test]
    fn stray_bits_in_the_last_key_letter_are_refused() {
        let mut letters: Vec<u8> = sample(9)
            .to_string()
            .bytes()
            .filter(|&c| c != b'-')
            .collect();
        letters[54] = if letters[54] == b'B' { b'C' } else { b'B' };
        let group: Vec<u8> = letters[42..55]
            .iter()
            .map(|&c| base32::value(c).unwrap())
            .collect();
        letters[55] = base32::letter(check::check_value(group)) as u8;
        let text = String::from_utf8(letters).unwrap();
        assert_eq!(text.parse::<PeerId>(), Err(IdError::NotAKey));
    }
}
