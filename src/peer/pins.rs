//! Names bound to keys: the first key a name is seen with is pinned (trust on first use), and
//! from then on that name is that key. A peer's name is only a label it claims; its key is what
//! the secure handshake proves. A different key under a pinned name is an impostor (or a peer
//! that lost its key), refused until the user decides with `trust NAME ID` or `forget NAME`.
//!
//! Plain state plus its file format (`DOWNLOADS/.p2p/pins`); the node saves it when it changes.
//! The file is text so that a user can read it: one `NAME ID` line per pin, `#` comments. A
//! damaged file is an error that names the line, never silently dropped: losing the pins would
//! accept the next impostor as a first contact.

use crate::identity::PeerId;
use crate::names::check_peer_name;
use std::collections::BTreeMap;

/// What the pins say of a name proved to hold a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinCheck {
    /// No key is pinned to the name yet: first contact.
    New,
    /// The name is pinned to this very key.
    Known,
    /// The name is pinned to another key.
    Conflict { pinned: PeerId },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    by_name: BTreeMap<String, PeerId>,
}

const HEADER: &str = "# p2p: peer names pinned to their keys (trust on first use).\n\
                      # Change with the commands `trust NAME ID` and `forget NAME`.\n";

impl Pins {
    pub fn check(&self, name: &str, key: &PeerId) -> PinCheck {
        match self.by_name.get(name) {
            None => PinCheck::New,
            Some(pinned) if pinned == key => PinCheck::Known,
            Some(pinned) => PinCheck::Conflict { pinned: *pinned },
        }
    }

    /// The key pinned to `name`.
    pub fn get(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// Pins `name` to `key`, replacing what it was pinned to (returned).
    pub fn pin(&mut self, name: &str, key: PeerId) -> Option<PeerId> {
        self.by_name.insert(name.to_string(), key)
    }

    /// Unpins `name`; the key it was pinned to, if it was.
    pub fn forget(&mut self, name: &str) -> Option<PeerId> {
        self.by_name.remove(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PeerId)> {
        self.by_name.iter().map(|(n, k)| (n.as_str(), k))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn encode(&self) -> String {
        let mut out = String::from(HEADER);
        for (name, key) in &self.by_name {
            out.push_str(&format!("{name} {key}\n"));
        }
        out
    }

    /// Reads a pins file; an error names the line and what is wrong with it.
    pub fn decode(text: &str) -> Result<Pins, String> {
        let mut pins = Pins::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| format!("line {}: {why}", n + 1);
            let Some((name, id)) = line.split_once(char::is_whitespace) else {
                return Err(bad("expected a name and a peer id".into()));
            };
            check_peer_name(name).map_err(bad)?;
            let key: PeerId = id.trim().parse().map_err(|e| bad(format!("{e}")))?;
            if pins.pin(name, key).is_some() {
                return Err(bad(format!("'{name}' is pinned twice")));
            }
        }
        Ok(pins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PeerId {
        PeerId::from_public_key([b; 32])
    }

    #[test]
    fn first_key_is_pinned_and_another_is_a_conflict() {
        let mut pins = Pins::default();
        assert_eq!(pins.check("alice", &key(1)), PinCheck::New);
        pins.pin("alice", key(1));
        assert_eq!(pins.check("alice", &key(1)), PinCheck::Known);
        assert_eq!(
            pins.check("alice", &key(2)),
            PinCheck::Conflict { pinned: key(1) }
        );
        // One key may go by several names (a peer renamed itself); each is pinned on its own.
        assert_eq!(pins.check("alicia", &key(1)), PinCheck::New);
        assert_eq!(pins.forget("alice"), Some(key(1)));
        assert_eq!(pins.check("alice", &key(2)), PinCheck::New);
    }

    #[test]
    fn the_file_round_trips_and_damage_names_the_line() {
        let mut pins = Pins::default();
        pins.pin("alice", key(1));
        pins.pin("bob", key(7));
        let text = pins.encode();
        assert_eq!(Pins::decode(&text), Ok(pins));
        assert!(text.starts_with("# p2p"));

        let truncated = &text[..text.len() - 5];
        let err = Pins::decode(truncated).unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
        let err = Pins::decode("alice\n").unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("name and a peer id"),
            "{err}"
        );
        let dup = format!("alice {}\nalice {}\n", key(1), key(2));
        assert!(Pins::decode(&dup).unwrap_err().contains("pinned twice"));
        let bad_name = format!("al\u{1b}ice {}\n", key(1));
        assert!(Pins::decode(&bad_name).unwrap_err().contains("line 1"));
        assert_eq!(Pins::decode(""), Ok(Pins::default()));
    }
}
