//! The registration table: who holds which name, at which address, last heard from when.
//!
//! Pure bookkeeping: no sockets, no clock (every call that needs the time is given `now`), no
//! name validation (the caller checks names before registering them).
//!
//! Invariants (kept by every method, checked by `check_invariants` in tests):
//! - `by_name` and `by_conn` are inverse maps: a connection holds at most one name and a name is
//!   held by exactly one connection.
//! - `by_age` holds exactly one `(last_seen, conn)` per registration, so its first element is the
//!   registration that expires first.
//! - `per_ip` holds, for each IP, how many registrations have an address with that IP (no zero
//!   entries).

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
    /// The last Register or Heartbeat.
    pub last_seen: Instant,
}

/// How a successful registration changed the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    /// The connection held no name before.
    New,
    /// The connection registered the name it already held (address and time refreshed).
    Renewed,
    /// The connection held another name, which is now free.
    Renamed { old: String },
}

/// Why a registration was refused. The table is unchanged.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another connection holds the name.
    Taken { by: SocketAddr },
    /// The table is at capacity and the connection holds no name yet.
    Full { capacity: usize },
    /// This IP already holds `limit` registrations and the connection holds no name yet.
    TooManyFromIp { ip: IpAddr, limit: usize },
}

#[derive(Debug)]
pub struct Registry {
    capacity: usize,
    max_per_ip: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Sorted by name, so listing needs no sort.
    by_name: BTreeMap<String, Registration>,
    by_conn: HashMap<ConnId, String>,
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
            by_name: BTreeMap::new(),
            by_conn: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The name `conn` holds, if any.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        self.by_conn.get(&conn).map(String::as_str)
    }

    /// Every registration, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Registration)> {
        self.by_name.iter().map(|(name, reg)| (name.as_str(), reg))
    }

    /// Gives `name` to `conn` at `addr`. A connection that already holds a name (the same or
    /// another) has it replaced; a name held by another connection is refused.
    pub fn register(
        &mut self,
        conn: ConnId,
        name: String,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<Registered, RegisterError> {
        if let Some(holder) = self.by_name.get(&name)
            && holder.conn != conn
        {
            return Err(RegisterError::Taken { by: holder.addr });
        }
        let outcome = match self.by_conn.get(&conn) {
            Some(old) if *old == name => Registered::Renewed,
            // Remove the old name first; `remove_conn` keeps the three maps consistent.
            Some(_) => match self.remove_conn(conn) {
                Some((old, _)) => Registered::Renamed { old },
                None => Registered::New,
            },
            None if self.by_name.len() >= self.capacity => {
                return Err(RegisterError::Full {
                    capacity: self.capacity,
                });
            }
            None if self.per_ip.get(&addr.ip()).copied().unwrap_or(0) >= self.max_per_ip => {
                return Err(RegisterError::TooManyFromIp {
                    ip: addr.ip(),
                    limit: self.max_per_ip,
                });
            }
            None => Registered::New,
        };
        let reg = Registration {
            conn,
            addr,
            last_seen: now,
        };
        if let Some(prev) = self.by_name.insert(name.clone(), reg) {
            // Renewed: drop the old age entry and IP count.
            self.by_age.remove(&(prev.last_seen, prev.conn));
            self.uncount(prev.addr.ip());
        }
        *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
        self.by_age.insert((now, conn));
        self.by_conn.insert(conn, name);
        Ok(outcome)
    }

    /// Marks `conn`'s registration as heard from at `now`. False if it holds none.
    pub fn refresh(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(name) = self.by_conn.get(&conn) else {
            return false;
        };
        let Some(reg) = self.by_name.get_mut(name) else {
            debug_assert!(false, "by_conn names a registration by_name lacks");
            return false;
        };
        self.by_age.remove(&(reg.last_seen, conn));
        reg.last_seen = now;
        self.by_age.insert((now, conn));
        true
    }

    /// Removes `conn`'s registration, returning it.
    pub fn remove_conn(&mut self, conn: ConnId) -> Option<(String, Registration)> {
        let name = self.by_conn.remove(&conn)?;
        let reg = self.by_name.remove(&name)?;
        self.by_age.remove(&(reg.last_seen, conn));
        self.uncount(reg.addr.ip());
        Some((name, reg))
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
        assert_eq!(self.by_name.len(), self.by_conn.len());
        assert_eq!(self.by_name.len(), self.by_age.len());
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for (name, reg) in &self.by_name {
            assert_eq!(self.by_conn.get(&reg.conn), Some(name));
            assert!(self.by_age.contains(&(reg.last_seen, reg.conn)));
            *per_ip.entry(reg.addr.ip()).or_insert(0) += 1;
        }
        assert_eq!(per_ip, self.per_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn rename_frees_the_old_name_and_keeps_the_maps_consistent() {
        let t0 = Instant::now();
        let mut r = Registry::new(10, 10);
        let a = ConnId::fake(1);
        assert_eq!(
            r.register(a, "Alice".into(), addr(1), t0),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(a, "Alice".into(), addr(2), t0),
            Ok(Registered::Renewed)
        );
        assert_eq!(
            r.register(a, "Bob".into(), addr(3), t0),
            Ok(Registered::Renamed {
                old: "Alice".into()
            })
        );
        r.check_invariants();
        assert_eq!(r.len(), 1);
        assert_eq!(r.name_of(a), Some("Bob"));
        let b = ConnId::fake(2);
        assert_eq!(
            r.register(b, "Alice".into(), addr(4), t0),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(b, "Bob".into(), addr(4), t0),
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
        r.register(ConnId::fake(1), "a".into(), addr(1), t0)
            .unwrap();
        r.register(ConnId::fake(2), "b".into(), addr(2), t0)
            .unwrap();
        assert_eq!(
            r.register(ConnId::fake(3), "c".into(), addr(3), t0),
            Err(RegisterError::Full { capacity: 2 })
        );
        // A holder may still rename while the table is full.
        assert_eq!(
            r.register(ConnId::fake(2), "c".into(), addr(2), t0),
            Ok(Registered::Renamed { old: "b".into() })
        );
        r.check_invariants();
    }

    #[test]
    fn one_ip_holds_at_most_max_per_ip_names() {
        let t0 = Instant::now();
        let mut r = Registry::new(100, 2);
        let other = SocketAddr::from(([10, 0, 0, 2], 1));
        r.register(ConnId::fake(1), "a".into(), addr(1), t0)
            .unwrap();
        r.register(ConnId::fake(2), "b".into(), addr(2), t0)
            .unwrap();
        assert_eq!(
            r.register(ConnId::fake(3), "c".into(), addr(3), t0),
            Err(RegisterError::TooManyFromIp {
                ip: addr(3).ip(),
                limit: 2
            })
        );
        // Other addresses are not affected; holders may renew and rename.
        r.register(ConnId::fake(4), "d".into(), other, t0).unwrap();
        assert_eq!(
            r.register(ConnId::fake(2), "b".into(), addr(9), t0),
            Ok(Registered::Renewed)
        );
        assert_eq!(
            r.register(ConnId::fake(2), "e".into(), addr(9), t0),
            Ok(Registered::Renamed { old: "b".into() })
        );
        r.check_invariants();
        // A name that goes (unregistered, closed or expired) makes room.
        r.remove_conn(ConnId::fake(1));
        r.register(ConnId::fake(3), "c".into(), addr(3), t0)
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
        r.register(ConnId::fake(1), "a".into(), addr(1), t0)
            .unwrap();
        r.register(
            ConnId::fake(2),
            "b".into(),
            addr(2),
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
        r.register(ConnId::fake(1), "a".into(), addr(1), t0)
            .unwrap();
        assert_eq!(r.next_expiry(Duration::MAX), None);
        assert!(
            r.expire(t0 + Duration::from_secs(1 << 20), Duration::MAX)
                .is_empty()
        );
        assert_eq!(r.len(), 1);
    }
}
