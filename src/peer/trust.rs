//! The node's side of names bound to keys (`pins.rs`): a `Hello` name checked against the key
//! its connection proved, first contacts pinned and saved, dials told which key to expect, a
//! dial that reached another key explained, and the `trust` / `forget` commands.

use super::event::{Event, PinEntry, Problem, Warning};
use super::node::PeerNode;
use super::pins::{PinCheck, Pins};
use crate::identity::PeerId;
use crate::reactor::ConnId;
use crate::secure::LinkError;
use crate::wire::ErrorCode;
use std::time::Instant;

impl PeerNode {
    /// Installs the pins read at start (`app.rs` reads the file; a damaged one stops the
    /// peer before it starts).
    pub fn set_pins(&mut self, pins: Pins) {
        self.pins = pins;
    }

    /// Reads the pins file of a peer whose downloads folder is `downloads`; none yet is no
    /// pins. An error names the file and the line.
    pub fn load_pins(downloads: &std::path::Path) -> Result<Pins, String> {
        let path = super::layout::pins_path(downloads);
        match std::fs::read_to_string(&path) {
            Ok(text) => Pins::decode(&text).map_err(|why| {
                format!(
                    "{}: {why} (fix the line, or move the file away to forget every pinned \
                     name)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pins::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The key a dial to `name` must reach: the one pinned to the name, else the one whoever
    /// told us of its address listed.
    pub(super) fn expected_key(&self, name: &str) -> Option<PeerId> {
        self.pins
            .get(name)
            .or_else(|| self.known.get(name).and_then(|k| k.id))
    }

    /// Whether `id` is this peer's own key (an entry that lists it under another name is us).
    pub(super) fn is_us(&self, id: Option<PeerId>) -> bool {
        id == Some(self.id)
    }

    /// The `Hello` on `conn` says `name`, and the handshake proved the connection's key: is
    /// that the key pinned to the name? A first contact pins it. False when another key is
    /// pinned to the name: the connection is refused and the user told, naming both keys.
    pub(super) fn name_matches_key(&mut self, conn: ConnId, name: &str, now: Instant) -> bool {
        let Some(session) = self.sessions.get(&conn) else {
            return false;
        };
        let key = session.peer;
        match self.pins.check(name, &key) {
            PinCheck::Known => true,
            PinCheck::New => {
                self.pins.pin(name, key);
                self.save_pins();
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.first_contact = true;
                }
                true
            }
            PinCheck::Conflict { pinned } => {
                let warning = Warning::Impostor {
                    name: name.to_string(),
                    pinned: pinned.to_string(),
                    presented: key.to_string(),
                };
                self.ui.event(&Event::Warning(warning));
                let message = format!(
                    "the name '{name}' is pinned here to another peer ({}), not to yours ({})",
                    pinned.short(),
                    key.short()
                );
                self.refuse_session(conn, ErrorCode::Other, message, now);
                false
            }
        }
    }

    /// The peer table learns the key a connection proved for its (pinned) name.
    pub(super) fn note_proved_key(&mut self, conn: ConnId) {
        if let Some(s) = self.sessions.get(&conn)
            && let Some(name) = &s.name
        {
            self.known.proved_key(name, s.peer);
        }
    }

    /// Why a dial to `name` failed, worded for the user: a wrong key explained (pinned, or
    /// listed by whoever told us of the address), anything else as it came.
    pub(super) fn dial_error_text(&mut self, name: &str, error: &std::io::Error) -> String {
        let wrong = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<LinkError>())
            .and_then(|e| match e {
                LinkError::WrongKey { expected, found } => Some((*expected, *found)),
                _ => None,
            });
        let Some((expected, found)) = wrong else {
            return error.to_string();
        };
        if self.pins.get(name) == Some(expected) {
            let warning = Warning::Impostor {
                name: name.to_string(),
                pinned: expected.to_string(),
                presented: found.to_string(),
            };
            self.ui.event(&Event::Warning(warning));
            format!(
                "the peer there is {found}, but '{name}' is pinned to {expected}; refused \
                 (if {name} has a new key, `trust {name} {found}`)"
            )
        } else {
            format!("the peer there is {found}, not {expected} as listed for '{name}'")
        }
    }

    /// Writes the pins file; a failure is a warning (the pins hold for this run).
    fn save_pins(&mut self) {
        let path = super::layout::pins_path(&self.cfg.downloads_dir);
        let text = self.pins.encode();
        let saved = super::state_file::replace_with(&path, |f| {
            std::io::Write::write_all(f, text.as_bytes())
        });
        if let Err(e) = saved {
            let warning = Warning::PinsWrite {
                path: path.display().to_string(),
                error: e.to_string(),
            };
            self.ui.event(&Event::Warning(warning));
        }
    }

    /// `trust`: the pinned names; `trust NAME ID`: pins `name` to `id` from now on.
    pub(super) fn trust(&mut self, set: Option<(String, PeerId)>) {
        let Some((name, id)) = set else {
            let pins = self
                .pins
                .iter()
                .map(|(name, id)| PinEntry {
                    name: name.to_string(),
                    id: id.to_string(),
                })
                .collect();
            return self.ui.event(&Event::Pins { pins });
        };
        if let Err(why) = crate::names::check_peer_name(&name) {
            return self.fail_op(Problem::Text(why));
        }
        let replaced = self.pins.pin(&name, id).filter(|old| *old != id);
        self.save_pins();
        // Connections under the name that proved the old key are no longer that peer.
        let stale: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.name.as_deref() == Some(name.as_str()) && s.peer != id)
            .map(|(c, _)| *c)
            .collect();
        for conn in stale {
            self.close(conn);
        }
        self.ui.event(&Event::Trusted {
            name,
            id: id.to_string(),
            replaced: replaced.map(|k| k.to_string()),
        });
    }

    /// `forget NAME`: the name is no longer pinned; the next key seen with it is pinned.
    pub(super) fn forget(&mut self, name: String) {
        match self.pins.forget(&name) {
            Some(id) => {
                self.save_pins();
                self.ui.event(&Event::Forgotten {
                    name,
                    id: id.to_string(),
                });
            }
            None => self.fail_op(Problem::Text(format!("'{name}' is not pinned"))),
        }
    }
}
