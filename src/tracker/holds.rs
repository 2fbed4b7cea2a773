//! Which key held a name lately: a name stays its key's for [`NAME_HOLD`] after its last
//! registration ends (expired, unregistered, closed), so a peer that stalled past its time to
//! live gets its name back and another key is refused it meanwhile. (Tried before this existed:
//! a peer frozen 23 s lost its name to an impostor, which then received its messages.)
//!
//! Plain state with the time passed in, and its file format: the tracker keeps holds across
//! restarts in `STATE/holds` (one `NAME ID UNIX-SECONDS` line each, the time the hold ends), so
//! a restart is no window for an impostor either. Live registrations are held too; the
//! registry refuses other keys while they are live, the hold covers what comes after.

use crate::identity::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a name stays its last key's.
pub const NAME_HOLD: Duration = Duration::from_secs(24 * 3600);
/// Most holds kept; past it the one ending first goes (a tracker of 10,000 peers churning
/// names stays well below).
pub const MAX_HOLDS: usize = 200_000;

#[derive(Debug, Default)]
pub struct Holds {
    by_name: HashMap<String, (PeerId, Instant)>,
    /// Changed since the last `take_dirty`.
    dirty: bool,
}

impl Holds {
    /// The key `name` is held for at `now`, if a hold has not ended.
    pub fn holder(&self, name: &str, now: Instant) -> Option<PeerId> {
        self.by_name
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(key, _)| *key)
    }

    /// `name` is `key`'s until `now + NAME_HOLD`.
    pub fn hold(&mut self, name: &str, key: PeerId, now: Instant) {
        let until = now + NAME_HOLD;
        let old = self.by_name.insert(name.to_string(), (key, until));
        // A renewal by the same key less than an hour later is not worth a save.
        let changed = old.is_none_or(|(k, u)| k != key || until > u + Duration::from_secs(3600));
        self.dirty |= changed;
        if self.by_name.len() > MAX_HOLDS {
            self.drop_ended(now);
        }
        if self.by_name.len() > MAX_HOLDS
            && let Some(first) = self
                .by_name
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(n, _)| n.clone())
        {
            self.by_name.remove(&first);
        }
    }

    fn drop_ended(&mut self, now: Instant) {
        let before = self.by_name.len();
        self.by_name.retain(|_, (_, until)| *until > now);
        self.dirty |= self.by_name.len() != before;
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether the holds changed since the last call (then they should be saved).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The file: one `NAME ID UNIX-SECONDS` line per hold not ended at `now` (`wall` being
    /// the wall clock at `now`).
    pub fn encode(&self, now: Instant, wall: SystemTime) -> String {
        let mut lines: Vec<String> = self
            .by_name
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|(name, (key, until))| {
                let ends = wall + (*until - now);
                let secs = ends
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                format!("{name} {key} {secs}\n")
            })
            .collect();
        lines.sort();
        let mut out = String::from("# p2p tracker: names held for their keys (NAME ID UNTIL)\n");
        out.extend(lines);
        out
    }

    /// Reads the file (`now` and `wall` as in `encode`); holds that ended are skipped. An
    /// error names the line.
    pub fn decode(text: &str, now: Instant, wall: SystemTime) -> Result<Holds, String> {
        let mut holds = Holds::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, id, secs] = fields[..] else {
                return Err(bad("expected NAME ID UNTIL"));
            };
            crate::names::check_peer_name(name).map_err(|e| bad(&e))?;
            let key: PeerId = id.parse().map_err(|e| bad(&format!("{e}")))?;
            let secs: u64 = secs.parse().map_err(|_| bad("UNTIL is no number"))?;
            let ends = UNIX_EPOCH + Duration::from_secs(secs);
            let Ok(left) = ends.duration_since(wall) else {
                continue; // ended while the tracker was down
            };
            let left = left.min(NAME_HOLD);
            holds.by_name.insert(name.to_string(), (key, now + left));
        }
        Ok(holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PeerId {
        PeerId::from_public_key([b; 32])
    }

    #[test]
    fn a_name_is_held_for_a_day_then_free() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        assert_eq!(h.holder("alice", t0), None);
        h.hold("alice", key(1), t0);
        assert!(h.take_dirty());
        assert_eq!(h.holder("alice", t0 + NAME_HOLD / 2), Some(key(1)));
        assert_eq!(h.holder("alice", t0 + NAME_HOLD), None);
        // Renewing at once changes nothing worth saving; another key does.
        h.hold("alice", key(1), t0 + Duration::from_secs(1));
        assert!(!h.take_dirty());
        h.hold("alice", key(2), t0 + Duration::from_secs(2));
        assert!(h.take_dirty());
    }

    #[test]
    fn the_file_keeps_holds_across_a_restart() {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = Holds::default();
        h.hold("alice", key(1), t0);
        h.hold("bob", key(2), t0);
        let text = h.encode(t0 + Duration::from_secs(3600), wall);
        // An hour later the tracker is back: alice and bob are held for 23 hours more.
        let t1 = t0 + Duration::from_secs(99);
        let back = Holds::decode(&text, t1, wall + Duration::from_secs(1)).unwrap();
        assert_eq!(back.holder("alice", t1), Some(key(1)));
        let left = Duration::from_secs(23 * 3600 - 1);
        assert_eq!(
            back.holder("bob", t1 + left - Duration::from_secs(1)),
            Some(key(2))
        );
        assert_eq!(back.holder("bob", t1 + left + Duration::from_secs(1)), None);
        // Down for two days: nothing is held any more.
        let late = Holds::decode(&text, t1, wall + 2 * NAME_HOLD).unwrap();
        assert_eq!(late.len(), 0);
        let err = Holds::decode("alice nokey 5\n", t1, wall).unwrap_err();
        assert!(err.starts_with("line 1"), "{err}");
    }
}
