//! The dialer: which address to dial for a peer's name, and what a failed dial means for the
//! next one. Every decision of the kind "where do I call Alice" is made here, from what the
//! peer table (`peer_table.rs`) knows: the address an entry is known by (first-hand news over
//! what others passed on), the other first-hand addresses it keeps as alternates, whether the
//! last attempt got through, and how long to leave a failing entry alone.
//!
//! [`Dialer`] is a view over the table, not a copy of it: the table stays the one record of
//! what we know about reaching each peer (it is also what `peers` shows and the peer cache
//! saves), and the dialer is the one place that reads it to dial. Plain values, time passed
//! in, no sockets; the node opens the connection the dialer names and reports back
//! ([`Dialer::failed`], [`Dialer::reached`]).
//!
//! Two callers, two rules:
//! - someone waiting now (a command, a download's source) dials the entry's best address at
//!   once, reachable or not: the user asked, and a failure moves the entry on to its next
//!   address ([`Failed::Switched`]) for the retry;
//! - the background search for neighbours without a tracker ([`Dialer::probe`]) leaves an
//!   entry alone for a while after each attempt, twice as long after each failure.

use super::peer_table::{Failed, PeerTable};
use std::net::SocketAddr;
use std::time::Instant;

pub struct Dialer<'t> {
    table: &'t mut PeerTable,
}

impl<'t> Dialer<'t> {
    pub fn new(table: &'t mut PeerTable) -> Dialer<'t> {
        Dialer { table }
    }

    /// The address to dial for `name` now, or `None` if we know of no way to reach it.
    pub fn dial(&self, name: &str) -> Option<SocketAddr> {
        self.table.get(name).map(|e| e.addr)
    }

    /// Whether a dial to `name` now would try an address nobody has tried yet (after a
    /// failure: the entry moved on to another address, or fresh news came for it).
    pub fn has_untried_address(&self, name: &str) -> bool {
        self.table.has_untried_address(name)
    }

    /// A dial to `name` failed (the connection was refused, or its handshake did not get
    /// through): the entry moves on to its next address ([`Failed::Switched`], worth dialing
    /// at once), or is marked unreachable, or is forgotten after too many failures.
    pub fn failed(&mut self, name: &str, now: Instant) -> Failed {
        self.table.failed(name, now)
    }

    /// A dial to `name` got through its handshake.
    pub fn reached(&mut self, name: &str, now: Instant) {
        self.table.reached(name, now);
    }

    /// Up to `want` peers worth dialing now in the background, with the address to dial:
    /// not `busy` (connected or being connected), and not tried too recently. Reachable ones
    /// first, then the most recently seen. The attempts are recorded.
    pub fn probe(
        &mut self,
        now: Instant,
        want: usize,
        busy: impl Fn(&str) -> bool,
    ) -> Vec<(String, SocketAddr)> {
        let picked = self.table.probe_candidates(now, want, busy);
        for (name, _) in &picked {
            self.table.attempt(name, now);
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::peer_table::Source;
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn base() -> Instant {
        Instant::now() + Duration::from_secs(100_000)
    }

    const SEC: Duration = Duration::from_secs(1);

    /// Dials `name`, fails, and returns the next address the dialer names, if any.
    fn fail_and_redial(table: &mut PeerTable, name: &str, now: Instant) -> Option<SocketAddr> {
        let mut d = Dialer::new(table);
        match d.failed(name, now) {
            Failed::Switched(next) => {
                assert_eq!(d.dial(name), Some(next));
                assert!(d.has_untried_address(name));
                Some(next)
            }
            _ => None,
        }
    }

    #[test]
    fn a_name_nobody_told_us_of_is_not_dialed() {
        let mut t = PeerTable::new("Me");
        let mut d = Dialer::new(&mut t);
        assert_eq!(d.dial("Alice"), None);
        assert_eq!(d.failed("Alice", base()), Failed::Unknown);
        assert!(d.probe(base(), 8, |_| false).is_empty());
    }

    /// What the user typed and what the peer or the tracker said beat what others passed on:
    /// hearsay never redirects a dial away from a first-hand address, unless that address
    /// failed since it was heard.
    #[test]
    fn first_hand_addresses_are_dialed_before_hearsay() {
        let t0 = base();
        let mut t = PeerTable::new("Me");
        t.offer("Alice", addr(1), Source::Tracker, t0, t0);
        t.offer("Alice", addr(9), Source::Exchange, t0 + SEC, t0 + SEC);
        assert_eq!(Dialer::new(&mut t).dial("Alice"), Some(addr(1)));
        assert_eq!(
            fail_and_redial(&mut t, "Alice", t0 + 2 * SEC),
            None,
            "no alternate"
        );
        let later = t0 + 3 * SEC;
        t.offer("Alice", addr(9), Source::Exchange, later, later);
        let d = Dialer::new(&mut t);
        assert_eq!(
            d.dial("Alice"),
            Some(addr(9)),
            "news newer than the failure"
        );
        assert!(d.has_untried_address("Alice"));
    }

    /// tests/addresses.rs `a_stale_manual_address_gives_way_to_the_new_one`: the user's address
    /// is dialed first; when it fails the tracker's is next, then the LAN's; the user's comes
    /// back last, and only then is the peer unreachable (never forgotten: the user gave it).
    #[test]
    fn a_failed_dial_moves_on_to_the_next_first_hand_address() {
        let t0 = base();
        let mut t = PeerTable::new("Me");
        t.offer("Eve", addr(1), Source::Manual, t0, t0);
        t.offer("Eve", addr(2), Source::Tracker, t0, t0);
        t.offer("Eve", addr(3), Source::Lan, t0, t0);
        assert_eq!(Dialer::new(&mut t).dial("Eve"), Some(addr(1)));
        let mut tried = vec![addr(1)];
        let mut now = t0;
        while let Some(next) = fail_and_redial(&mut t, "Eve", now) {
            tried.push(next);
            now += SEC;
        }
        assert_eq!(tried, [addr(1), addr(2), addr(3), addr(1)]);
        let mut d = Dialer::new(&mut t);
        assert!(!d.has_untried_address("Eve"));
        assert_eq!(
            d.dial("Eve"),
            Some(addr(1)),
            "a command still dials it: the user asks"
        );
        for _ in 0..5 {
            assert_eq!(d.failed("Eve", now), Failed::Unreachable);
        }
        d.reached("Eve", now);
        assert_eq!(d.dial("Eve"), Some(addr(1)));
    }

    /// An address heard second-hand that keeps failing is forgotten after three tries.
    #[test]
    fn hearsay_that_keeps_failing_is_forgotten() {
        let t0 = base();
        let mut t = PeerTable::new("Me");
        t.offer("Bob", addr(5), Source::Exchange, t0, t0);
        let mut d = Dialer::new(&mut t);
        assert_eq!(d.failed("Bob", t0), Failed::Unreachable);
        assert_eq!(d.failed("Bob", t0), Failed::Unreachable);
        assert_eq!(d.failed("Bob", t0), Failed::Forgotten);
        assert_eq!(d.dial("Bob"), None);
    }

    /// The background search: reachable peers first, newest first, never one that is busy,
    /// at most `want`; each attempt leaves an entry alone for 5 s, each failure in a row
    /// doubles that.
    #[test]
    fn probes_back_off_after_each_attempt_and_failure() {
        let t0 = base();
        let mut t = PeerTable::new("Me");
        t.offer("Old", addr(1), Source::Cache, t0 - 5 * SEC, t0);
        t.offer("New", addr(2), Source::Cache, t0, t0);
        t.offer("Known", addr(3), Source::Cache, t0 - 9 * SEC, t0);
        t.offer("Busy", addr(4), Source::Cache, t0, t0);
        t.reached("Known", t0 - 10 * SEC);
        let names =
            |v: Vec<(String, SocketAddr)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let mut d = Dialer::new(&mut t);
        assert_eq!(
            names(d.probe(t0, 1, |n| n == "Busy")),
            ["Known"],
            "at most want"
        );
        let rest = d.probe(t0, 8, |n| n == "Busy");
        assert_eq!(rest[0], ("New".to_string(), addr(2)));
        assert_eq!(names(rest), ["New", "Old"]);
        assert!(
            d.probe(t0 + SEC, 8, |n| n == "Busy").is_empty(),
            "all just tried"
        );

        let mut t = PeerTable::new("Me");
        t.offer("M", addr(1), Source::Manual, t0, t0);
        let mut d = Dialer::new(&mut t);
        assert_eq!(names(d.probe(t0, 8, |_| false)), ["M"]);
        let (mut now, mut waits) = (t0, Vec::new());
        for _ in 0..4 {
            let tried = now;
            while d.probe(now, 8, |_| false).is_empty() {
                now += SEC;
            }
            waits.push((now - tried).as_secs());
            assert_eq!(
                d.failed("M", now),
                Failed::Unreachable,
                "manual: never forgotten"
            );
        }
        assert_eq!(waits, [5, 10, 20, 40]);
    }
}
