//! The registration table: who holds which name, at which address, last heard from when.
//!
//! Pure bookkeeping: no sockets, no clock (every call that needs the time is given `now`), no
//! name validation (the caller checks names before registering them).
//!
//! Invariants (kept by every method, checked by `check_invariants` in tests):
//! - `slots` holds each registration once; `by_name` and `by_conn` map its name and its
//!   connection to its index: a connection holds at most one name and a name is held by exactly
//!   one connection.
//! - each slot's `wire` is the encoded `PeerInfo` prefix of its current name and address.
//! - `by_age` holds exactly one `(last_seen, conn)` per registration, so its first element is the
//!   registration that expires first.
//! - `per_ip` holds, for each IP, how many registrations have an address with that IP (no zero
//!   entries).

use crate::identity::PeerId;
use crate::reactor::ConnId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// One live registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The connection that registered the name; only it may refresh or remove it.
    pub conn: ConnId,
    /// Where other peers can reach it: the connection's remote IP with the announced listen port.
    pub addr: SocketAddr,
    /// `addr` is a port mapping on the peer's router (its `Register` named it, and its IP is
    /// the connection's), listed as `mapped`.
    pub mapped: bool,
    /// The key the connection's handshake proved: the name is this key's while registered.
    pub key: PeerId,
    /// The last Register or Heartbeat.
    pub last_seen: Instant,
}

/// The address a registration is listed at, and whether it is a router's port mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub addr: SocketAddr,
    pub mapped: bool,
}

impl From<SocketAddr> for Listed {
    /// A direct address: the connection's IP with the peer's listen port.
    fn from(addr: SocketAddr) -> Listed {
        Listed {
            addr,
            mapped: false,
        }
    }
}

/// How a successful registration changed the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    /// The connection held no name before.
    New,
    /// The connection registered the name it already held (address and time refreshed).
    Renewed,
    /// The same key registered its name from a new connection (a peer that reconnected
    /// before its old connection was noticed gone): the old registration is replaced.
    Reclaimed { old_conn: ConnId },
    /// The connection held another name, which is now free.
    Renamed { old: String },
}

/// Why a registration was refused. The table is unchanged.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another key holds the name, live.
    Taken { by: SocketAddr },
    /// The table is at capacity and the connection holds no name yet.
    Full { capacity: usize },
    /// This IP already holds `limit` registrations and the connection holds no name yet.
    TooManyFromIp { ip: IpAddr, limit: usize },
}

/// One registration as stored: who holds the name, and its `PeerInfo` bytes for answers.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub reg: Registration,
    /// `super::listing::entry_prefix(name, reg.key, reg.addr, reg.mapped)`: rebuilt whenever the name or address
    /// changes, so answers never format or encode anything but `last_seen_ms`.
    pub wire: Vec<u8>,
}

#[derive(Debug)]
pub struct Registry {
    capacity: usize,
    max_per_ip: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Every registration, densely packed (order is arbitrary: a removal moves the last slot
    /// into the hole), so a random sample is a random index.
    slots: Vec<Slot>,
    /// Name → slot. Sorted by name, so a full listing needs no sort.
    by_name: BTreeMap<String, usize>,
    by_conn: HashMap<ConnId, usize>,
    /// `(last_seen, conn)` per registration, oldest first.
    by_age: BTreeSet<(Instant, ConnId)>,
}

impl Registry {
    /// An empty table that holds at most `capacity` registrations, at most `max_per_ip` of them
    /// with the same IP.
    pub fn new(capacity: usize, max_per_ip: usize) -> Registry {
        Registry {
            capacity,
            max_per_ip,
            per_ip: HashMap::new(),
            slots: Vec::new(),
            by_name: BTreeMap::new(),
            by_conn: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The name `conn` holds, if any.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        let &slot = self.by_conn.get(&conn)?;
        Some(self.slots[slot].name.as_str())
    }

    /// Every registration, in no particular order (index = slot).
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The slot holding `name`.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every slot, sorted by name.
    pub fn slots_by_name(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_name.values().copied()
    }

    /// Gives `name` to `conn` (proved to hold `key`) at `addr`. A connection that already
    /// holds a name (the same or another) has it replaced; a name held by another connection
    /// is refused, unless that connection proved the same key (then it is a stale connection
    /// of the same peer, and the new one takes over).
    pub fn register(
        &mut self,
        conn: ConnId,
        name: String,
        addr: impl Into<Listed>,
        key: PeerId,
        now: Instant,
    ) -> Result<Registered, RegisterError> {
        let addr = addr.into();
        let mut reclaimed = None;
        if let Some(&slot) = self.by_name.get(&name)
            && self.slots[slot].reg.conn != conn
        {
            let holder = &self.slots[slot].reg;
            if holder.key != key {
                return Err(RegisterError::Taken { by: holder.addr });
            }
            let old_conn = holder.conn;
            self.remove_conn(old_conn);
            reclaimed = Some(old_conn);
        }
        let outcome = self.register_free(conn, name, addr, key, now)?;
        Ok(match (reclaimed, outcome) {
            (Some(old_conn), Registered::New) => Registered::Reclaimed { old_conn },
            (_, outcome) => outcome,
        })
    }

    /// `register` for a name no other connection holds.
    fn register_free(
        &mut self,
        conn: ConnId,
        name: String,
        addr: Listed,
        key: PeerId,
        now: Instant,
    ) -> Result<Registered, RegisterError> {
        let outcome = match self.by_conn.get(&conn).copied() {
            Some(slot) if self.slots[slot].name == name => {
                self.renew(slot, addr, now);
                return Ok(Registered::Renewed);
            }
            // Remove the old name first; `remove_conn` keeps the maps consistent.
            Some(_) => match self.remove_conn(conn) {
                Some((old, _)) => Registered::Renamed { old },
                None => Registered::New,
            },
            None if self.slots.len() >= self.capacity => {
                return Err(RegisterError::Full {
                    capacity: self.capacity,
                });
            }
            None if self.per_ip.get(&addr.addr.ip()).copied().unwrap_or(0) >= self.max_per_ip => {
                return Err(RegisterError::TooManyFromIp {
                    ip: addr.addr.ip(),
                    limit: self.max_per_ip,
                });
            }
            None => Registered::New,
        };
        self.insert(conn, name, addr, key, now);
        Ok(outcome)
    }

    /// The holder registered its own name again: refresh the time, and the address (with its
    /// encoded entry) only if it changed, so a keep-alive costs no encoding.
    fn renew(&mut self, slot: usize, listed: Listed, now: Instant) {
        let old = self.slots[slot].reg.clone();
        self.by_age.remove(&(old.last_seen, old.conn));
        self.by_age.insert((now, old.conn));
        let Listed { addr, mapped } = listed;
        if old.addr != addr || old.mapped != mapped {
            self.uncount(old.addr.ip());
            *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
            let s = &mut self.slots[slot];
            s.wire = super::listing::entry_prefix(&s.name, &s.reg.key, addr, mapped);
            s.reg.addr = addr;
            s.reg.mapped = mapped;
        }
        self.slots[slot].reg.last_seen = now;
    }

    fn insert(&mut self, conn: ConnId, name: String, listed: Listed, key: PeerId, now: Instant) {
        let Listed { addr, mapped } = listed;
        let slot = self.slots.len();
        *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
        self.by_age.insert((now, conn));
        self.by_conn.insert(conn, slot);
        self.by_name.insert(name.clone(), slot);
        self.slots.push(Slot {
            wire: super::listing::entry_prefix(&name, &key, addr, mapped),
            name,
            reg: Registration {
                conn,
                addr,
                mapped,
                key,
                last_seen: now,
            },
        });
    }

    /// Marks `conn`'s registration as heard from at `now`. False if it holds none.
    pub fn refresh(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(&slot) = self.by_conn.get(&conn) else {
            return false;
        };
        let reg = &mut self.slots[slot].reg;
        self.by_age.remove(&(reg.last_seen, conn));
        reg.last_seen = now;
        self.by_age.insert((now, conn));
        true
    }

    /// Removes `conn`'s registration, returning it.
    pub fn remove_conn(&mut self, conn: ConnId) -> Option<(String, Registration)> {
        let slot = self.by_conn.remove(&conn)?;
        let gone = self.slots.swap_remove(slot);
        self.by_name.remove(&gone.name);
        // The last slot moved into the hole: point its two indexes at its new place.
        if let Some(moved) = self.slots.get(slot) {
            self.by_conn.insert(moved.reg.conn, slot);
            if let Some(at) = self.by_name.get_mut(&moved.name) {
                *at = slot;
            }
        }
        self.by_age.remove(&(gone.reg.last_seen, conn));
        self.uncount(gone.reg.addr.ip());
        Some((gone.name, gone.reg))
    }

    fn uncount(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// The instant the oldest registration expires, given the time to live.
    pub fn next_expiry(&self, ttl: Duration) -> Option<Instant> {
        let (oldest, _) = self.by_age.first()?;
        oldest.checked_add(ttl)
    }

    /// Removes and returns every registration not heard from for `ttl` or more at `now`.
    /// (At exactly `last_seen + ttl` it expires, so a timer set by `next_expiry` always fires it.)
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<(String, Registration)> {
        let mut gone = Vec::new();
        while let Some(&(last_seen, conn)) = self.by_age.first() {
            // `None` means the deadline is past the end of time: neither this nor any younger
            // registration is due.
            match last_seen.checked_add(ttl) {
                Some(deadline) if deadline <= now => {}
                _ => break,
            }
            match self.remove_conn(conn) {
                Some(entry) => gone.push(entry),
                None => {
                    // Unreachable while the invariants hold; never loop forever if they break.
                    debug_assert!(false, "by_age names a connection with no registration");
                    self.by_age.remove(&(last_seen, conn));
                }
            }
        }
        gone
    }

    #[cfg(test)]
    pub fn check_invariants(&self) {
        assert_eq!(self.slots.len(), self.by_name.len());
        assert_eq!(self.slots.len(), self.by_conn.len());
        assert_eq!(self.slots.len(), self.by_age.len());
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            assert_eq!(self.by_name.get(&s.name), Some(&i));
            assert_eq!(self.by_conn.get(&s.reg.conn), Some(&i));
            assert!(self.by_age.contains(&(s.reg.last_seen, s.reg.conn)));
            // The cached entry is the one this name and address encode to.
            assert_eq!(
                s.wire,
                super::listing::entry_prefix(&s.name, &s.reg.key, s.reg.addr, s.reg.mapped)
            );
            *per_ip.entry(s.reg.addr.ip()).or_insert(0) += 1;
        }
        assert_eq!(per_ip, self.per_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of its own for each test connection.
    fn key_of(conn: crate::reactor::ConnId) -> PeerId {
        PeerId::from_public_key([conn.index as u8; 32])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn rename_frees_the_old_name_and_keeps_the_maps_consistent() {
        let t0 = Instant::now();
        let mut r = Registry::new(10, 10);
        let a = ConnId::fake(1);
        assert_eq!(
            r.register(a, "Alice".into(), addr(1), key_of(a), t0),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(a, "Alice".into(), addr(2), key_of(a), t0),
            Ok(Registered::Renewed)
        );
        assert_eq!(
            r.register(a, "Bob".into(), addr(3), key_of(a), t0),
            Ok(Registered::Renamed {
                old: "Alice".into()
            })
        );
        r.check_invariants();
        assert_eq!(r.len(), 1);
        assert_eq!(r.name_of(a), Some("Bob"));
        let b = ConnId::fake(2);
        assert_eq!(
            r.register(b, "Alice".into(), addr(4), key_of(b), t0),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(b, "Bob".into(), addr(4), key_of(b), t0),
            Err(RegisterError::Taken { by: addr(3) })
        );
        // The refused rename left b's registration alone.
        assert_eq!(r.name_of(b), Some("Alice"));
        r.check_invariants();
    }

    #[test]
    fn capacity_refuses_new_connections_only() {
        let t0 = Instant::now();
        let mut r = Registry::new(2, 10);
        r.register(
            ConnId::fake(1),
            "a".into(),
            addr(1),
            key_of(ConnId::fake(1)),
            t0,
        )
        .unwrap();
        r.register(
            ConnId::fake(2),
            "b".into(),
            addr(2),
            key_of(ConnId::fake(2)),
            t0,
        )
        .unwrap();
        assert_eq!(
            r.register(
                ConnId::fake(3),
                "c".into(),
                addr(3),
                key_of(ConnId::fake(3)),
                t0
            ),
            Err(RegisterError::Full { capacity: 2 })
        );
        // A holder may still rename while the table is full.
        assert_eq!(
            r.register(
                ConnId::fake(2),
                "c".into(),
                addr(2),
                key_of(ConnId::fake(2)),
                t0
            ),
            Ok(Registered::Renamed { old: "b".into() })
        );
        r.check_invariants();
    }

    #[test]
    fn one_ip_holds_at_most_max_per_ip_names() {
        let t0 = Instant::now();
        let mut r = Registry::new(100, 2);
        let other = SocketAddr::from(([10, 0, 0, 2], 1));
        r.register(
            ConnId::fake(1),
            "a".into(),
            addr(1),
            key_of(ConnId::fake(1)),
            t0,
        )
        .unwrap();
        r.register(
            ConnId::fake(2),
            "b".into(),
            addr(2),
            key_of(ConnId::fake(2)),
            t0,
        )
        .unwrap();
        assert_eq!(
            r.register(
                ConnId::fake(3),
                "c".into(),
                addr(3),
                key_of(ConnId::fake(3)),
                t0
            ),
            Err(RegisterError::TooManyFromIp {
                ip: addr(3).ip(),
                limit: 2
            })
        );
        // Other addresses are not affected; holders may renew and rename.
        r.register(
            ConnId::fake(4),
            "d".into(),
            other,
            key_of(ConnId::fake(4)),
            t0,
        )
        .unwrap();
        assert_eq!(
            r.register(
                ConnId::fake(2),
                "b".into(),
                addr(9),
                key_of(ConnId::fake(2)),
                t0
            ),
            Ok(Registered::Renewed)
        );
        assert_eq!(
            r.register(
                ConnId::fake(2),
                "e".into(),
                addr(9),
                key_of(ConnId::fake(2)),
                t0
            ),
            Ok(Registered::Renamed { old: "b".into() })
        );
        r.check_invariants();
        // A name that goes (unregistered, closed or expired) makes room.
        r.remove_conn(ConnId::fake(1));
        r.register(
            ConnId::fake(3),
            "c".into(),
            addr(3),
            key_of(ConnId::fake(3)),
            t0,
        )
        .unwrap();
        assert_eq!(
            r.expire(t0 + Duration::from_secs(60), Duration::from_secs(30))
                .len(),
            3
        );
        r.check_invariants();
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn expiry_is_oldest_first_and_refresh_postpones_it() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut r = Registry::new(10, 10);
        r.register(
            ConnId::fake(1),
            "a".into(),
            addr(1),
            key_of(ConnId::fake(1)),
            t0,
        )
        .unwrap();
        r.register(
            ConnId::fake(2),
            "b".into(),
            addr(2),
            key_of(ConnId::fake(2)),
            t0 + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.next_expiry(ttl), Some(t0 + ttl));
        assert!(r.refresh(ConnId::fake(1), t0 + Duration::from_secs(10)));
        assert!(!r.refresh(ConnId::fake(9), t0));
        assert_eq!(r.next_expiry(ttl), Some(t0 + Duration::from_secs(35)));
        assert!(r.expire(t0 + Duration::from_secs(34), ttl).is_empty());
        let gone = r.expire(t0 + Duration::from_secs(35), ttl);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "b");
        assert_eq!(r.next_expiry(ttl), Some(t0 + Duration::from_secs(40)));
        r.check_invariants();
    }

    #[test]
    fn an_unrepresentable_deadline_never_expires() {
        let t0 = Instant::now();
        let mut r = Registry::new(10, 10);
        r.register(
            ConnId::fake(1),
            "a".into(),
            addr(1),
            key_of(ConnId::fake(1)),
            t0,
        )
        .unwrap();
        assert_eq!(r.next_expiry(Duration::MAX), None);
        assert!(
            r.expire(t0 + Duration::from_secs(1 << 20), Duration::MAX)
                .is_empty()
        );
        assert_eq!(r.len(), 1);
    }
}
