//! The peer table through its API, with fake time.

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A clock far from zero, so tests can look back in time on a machine that just booted.
fn base() -> Instant {
    Instant::now() + Duration::from_secs(100_000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn info(name: &str, addr: &str, ms: u64) -> PeerInfo {
    PeerInfo {
        id: crate::identity::PeerId::from_public_key([9; 32]),
        name: name.into(),
        addr: addr.into(),
        mapped: false,
        last_seen_ms: ms,
    }
}

#[test]
fn invalid_entries_are_refused() {
    let now = base();
    let mut t = PeerTable::new("Me");
    assert_eq!(
        t.offer("Me", addr(1), Source::Exchange, now, now),
        Offered::Refused
    );
    assert_eq!(
        t.offer("a b", addr(1), Source::Exchange, now, now),
        Offered::Refused
    );
    assert_eq!(
        t.offer("", addr(1), Source::Exchange, now, now),
        Offered::Refused
    );
    assert_eq!(
        t.offer("\u{1b}[2J", addr(1), Source::Lan, now, now),
        Offered::Refused
    );
    assert_eq!(
        t.offer("A", addr(0), Source::Exchange, now, now),
        Offered::Refused
    );
    for bad in ["0.0.0.0:5", "[::]:5", "239.1.2.3:5", "255.255.255.255:5"] {
        let a: SocketAddr = bad.parse().unwrap();
        assert_eq!(
            t.offer("A", a, Source::Exchange, now, now),
            Offered::Refused
        );
    }
    assert!(t.is_empty());
    assert_eq!(parse_addr("nonsense"), None);
    assert_eq!(parse_addr(&"1".repeat(100)), None);
}

#[test]
fn first_hand_news_replaces_second_hand_but_not_the_other_way() {
    let t0 = base();
    let now = t0 + secs(100);
    let mut t = PeerTable::new("Me");
    assert_eq!(t.offer("A", addr(1), Source::Cache, t0, now), Offered::New);
    // Exchange ranks like the cache: the label stays "cache", a newer address is taken.
    assert_eq!(
        t.offer("A", addr(2), Source::Exchange, t0 + secs(50), now),
        Offered::Changed
    );
    assert_eq!(t.get("A").unwrap().source, Source::Cache);
    assert_eq!(t.get("A").unwrap().addr, addr(2));
    // An older report does not move the address back.
    t.offer("A", addr(1), Source::Exchange, t0 + secs(10), now);
    assert_eq!(t.get("A").unwrap().addr, addr(2));
    // The tracker outranks both.
    assert_eq!(
        t.offer("A", addr(3), Source::Tracker, t0 + secs(40), now),
        Offered::Changed
    );
    let e = t.get("A").unwrap();
    assert_eq!((e.source, e.addr), (Source::Tracker, addr(3)));
    assert_eq!(e.last_seen, t0 + secs(50), "last_seen never moves back");
    // Second-hand news cannot redirect a first-hand entry...
    t.offer("A", addr(9), Source::Exchange, now, now);
    assert_eq!(t.get("A").unwrap().addr, addr(3));
    // ...unless we failed to reach it since it was last seen.
    t.failed("A", now);
    let later = now + secs(1);
    assert_eq!(
        t.offer("A", addr(9), Source::Exchange, later, later),
        Offered::Changed
    );
    let e = t.get("A").unwrap();
    assert_eq!(
        (e.source, e.addr, e.reach),
        (Source::Exchange, addr(9), Reach::Unknown)
    );
    // The user's word beats everything.
    t.offer("A", addr(7), Source::Manual, later, later);
    t.offer("A", addr(8), Source::Tracker, later, later);
    assert_eq!(t.get("A").unwrap().addr, addr(7));
    assert_eq!(t.get("A").unwrap().source, Source::Manual);
}

#[test]
fn future_last_seen_is_clamped() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Lan, now + secs(100), now);
    assert_eq!(t.get("A").unwrap().last_seen, now);
}

#[test]
fn tracker_snapshot_drops_what_it_no_longer_lists() {
    let t0 = base();
    let mut t = PeerTable::new("Me");
    t.tracker_snapshot(
        &[info("A", "127.0.0.1:1", 0), info("B", "127.0.0.1:2", 500)],
        t0,
        |_| false,
    );
    assert_eq!(
        t.get("B").unwrap().last_seen,
        t0 - Duration::from_millis(500)
    );
    t.offer("C", addr(3), Source::Cache, t0, t0);
    t.offer("D", addr(4), Source::Exchange, t0, t0);
    t.offer("E", addr(5), Source::Lan, t0, t0);
    t.offer("F", addr(6), Source::Manual, t0, t0);
    t.offer("G", addr(7), Source::Incoming, t0, t0);
    t.offer("H", addr(8), Source::Exchange, t0, t0);
    // Invalid entries in the list are skipped; the rest still count.
    let list = [
        info("A", "127.0.0.1:1", 0),
        info("Me", "127.0.0.1:9", 0),
        info("X", "0.0.0.0:9", 0),
        info("Y", "nonsense", 0),
    ];
    t.tracker_snapshot(&list, t0, |name| name == "H");
    let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["A", "E", "F", "G", "H"]);
}

#[test]
fn failures_age_entries_out_but_not_manual_ones() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Exchange, now, now);
    t.offer("M", addr(2), Source::Manual, now, now);
    for i in 0..MAX_FAILURES {
        let gone = t.failed("A", now) == Failed::Forgotten;
        assert_eq!(gone, i + 1 == MAX_FAILURES);
        t.failed("M", now);
    }
    assert!(!t.contains_key("A"));
    assert_eq!(t.get("M").unwrap().reach, Reach::Unreachable);
    // Success resets the count.
    t.reached("M", now);
    assert_eq!(t.get("M").unwrap().failures, 0);
    assert_eq!(t.get("M").unwrap().reach, Reach::Reachable);
}

#[test]
fn news_newer_than_a_failure_makes_an_entry_worth_trying_again() {
    let t0 = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Tracker, t0, t0);
    t.failed("A", t0 + secs(1));
    assert_eq!(t.get("A").unwrap().reach, Reach::Unreachable);
    // Older news changes nothing.
    t.offer("A", addr(1), Source::Exchange, t0, t0 + secs(2));
    assert_eq!(t.get("A").unwrap().reach, Reach::Unreachable);
    t.offer("A", addr(1), Source::Exchange, t0 + secs(3), t0 + secs(3));
    let e = t.get("A").unwrap();
    assert_eq!((e.reach, e.failures), (Reach::Unknown, 0));
}

#[test]
fn expiry_spares_connected_and_manual_entries() {
    let t0 = base();
    let mut t = PeerTable::new("Me");
    for (name, src) in [
        ("L", Source::Lan),
        ("X", Source::Exchange),
        ("M", Source::Manual),
        ("C", Source::Cache),
    ] {
        t.offer(name, addr(1), src, t0, t0);
    }
    assert_eq!(t.expire(t0 + LAN_STALE, |_| false), 0);
    assert_eq!(t.expire(t0 + LAN_STALE + secs(1), |_| false), 1);
    assert!(!t.contains_key("L"));
    let late = t0 + STALE_AFTER + secs(1);
    assert_eq!(t.expire(late, |n| n == "C"), 1);
    let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["C", "M"]);
}

#[test]
fn advertised_list_is_bounded_newest_first_and_skips_the_asker_and_the_unreachable() {
    let t0 = base();
    let now = t0 + secs(1000);
    let mut t = PeerTable::new("Me");
    for i in 0..100u64 {
        t.offer(
            &format!("P{i}"),
            addr(1000 + i as u16),
            Source::Exchange,
            now - secs(i),
            now,
        );
        let key = crate::identity::PeerId::from_public_key([i as u8; 32]);
        t.listed_key(&format!("P{i}"), addr(1000 + i as u16), key);
    }
    t.offer("Old", addr(5), Source::Exchange, t0, now);
    // An entry whose key nobody told us is not passed on (a `PeerInfo` carries the key).
    t.offer("Keyless", addr(6), Source::Exchange, now, now);
    t.failed("P0", now);
    let list = t.advertise(now, "P1");
    assert!(list.iter().all(|p| p.name != "Keyless"));
    assert_eq!(list.len(), MAX_EXCHANGE);
    assert_eq!(list[0].name, "P2");
    assert_eq!(list[0].last_seen_ms, 2000);
    assert!(
        list.windows(2)
            .all(|w| w[0].last_seen_ms <= w[1].last_seen_ms)
    );
    assert!(
        list.iter()
            .all(|p| !["P0", "P1", "Old"].contains(&p.name.as_str()))
    );
}

#[test]
fn probe_candidates_back_off_after_attempts() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Cache, now - secs(5), now);
    t.offer("B", addr(2), Source::Cache, now - secs(1), now);
    t.offer("C", addr(3), Source::Cache, now, now);
    let names = |v: Vec<(String, SocketAddr)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(t.probe_candidates(now, 2, |n| n == "C")), ["B", "A"]);
    t.attempt("B", now);
    t.failed("A", now);
    assert_eq!(names(t.probe_candidates(now, 5, |_| false)), ["C"]);
    // A failed entry waits twice as long as one merely tried.
    let t1 = now + RETRY_BASE;
    assert_eq!(names(t.probe_candidates(t1, 5, |_| false)), ["C", "B"]);
    let t2 = now + RETRY_BASE * 2;
    assert_eq!(names(t.probe_candidates(t2, 5, |_| false)), ["C", "B", "A"]);
}

#[test]
fn table_stays_bounded() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("Keep", addr(1), Source::Manual, now - secs(500), now);
    for i in 0..MAX_KNOWN as u64 + 10 {
        let name = format!("P{i}");
        let seen = now - secs(400) + Duration::from_millis(i);
        t.offer(&name, addr(2), Source::Exchange, seen, now);
    }
    assert_eq!(t.len(), MAX_KNOWN);
    assert!(t.contains_key("Keep"), "manual entries are never evicted");
    assert!(!t.contains_key("P0"), "the stalest entry went first");
    assert!(t.contains_key(&format!("P{}", MAX_KNOWN + 9)));
}

#[test]
fn rows_show_source_and_reachability() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Tracker, now - secs(3), now);
    t.offer("B", addr(2), Source::Lan, now, now);
    t.offer("C", addr(3), Source::Cache, now, now);
    t.failed("C", now);
    let peers = t.listing(now, |n| n == "B");
    // How these rows read: repl/event.rs, `peer_rows_show_source_and_reachability`.
    let rows: Vec<_> = (peers.iter())
        .map(|p| (p.name.as_str(), p.addr.as_str(), p.last_seen_secs))
        .collect();
    assert_eq!(
        rows,
        [
            ("A", "127.0.0.1:1", 3),
            ("B", "127.0.0.1:2", 0),
            ("C", "127.0.0.1:3", 0)
        ]
    );
    let how: Vec<_> = peers.iter().map(|p| (p.source, p.reachable)).collect();
    assert_eq!(
        how,
        [
            ("tracker", None),
            ("lan", Some(true)),
            ("cache", Some(false))
        ]
    );
}

/// A peer that restarted on another port: the tracker has the new address while the user's
/// (or the LAN's) is stale. The failed attempt moves on to the other address at once.
#[test]
fn a_failed_address_gives_way_to_another_first_hand_one() {
    let t0 = base();
    let mut t = PeerTable::new("Me");
    t.offer("Eve", addr(1), Source::Manual, t0, t0);
    // The tracker's word does not displace the user's, but is kept.
    t.offer("Eve", addr(2), Source::Tracker, t0 + secs(1), t0 + secs(1));
    t.offer("Eve", addr(3), Source::Lan, t0 + secs(2), t0 + secs(2));
    // Second-hand news is not kept as an alternate.
    t.offer("Eve", addr(4), Source::Exchange, t0 + secs(3), t0 + secs(3));
    let e = t.get("Eve").unwrap();
    assert_eq!(e.addr, addr(1));
    let alts: Vec<SocketAddr> = e.alternates.iter().map(|a| a.addr).collect();
    assert_eq!(alts, [addr(2), addr(3)], "best first: tracker, then LAN");

    assert_eq!(t.failed("Eve", t0 + secs(4)), Failed::Switched(addr(2)));
    let e = t.get("Eve").unwrap();
    assert_eq!(
        (e.addr, e.source, e.reach),
        (addr(2), Source::Tracker, Reach::Unknown)
    );
    assert_eq!(t.failed("Eve", t0 + secs(5)), Failed::Switched(addr(3)));
    // The user's address comes back last, then the entry is unreachable (never forgotten:
    // it is manual).
    assert_eq!(t.failed("Eve", t0 + secs(6)), Failed::Switched(addr(1)));
    assert_eq!(t.failed("Eve", t0 + secs(7)), Failed::Unreachable);
    assert_eq!(t.get("Eve").unwrap().reach, Reach::Unreachable);
}

/// A LAN address replaced by the tracker's stays as an alternate, and the other way round.
#[test]
fn a_replaced_first_hand_address_stays_an_alternate() {
    let t0 = base();
    let mut t = PeerTable::new("Me");
    t.offer("A", addr(1), Source::Lan, t0, t0);
    t.offer("A", addr(2), Source::Tracker, t0, t0);
    let e = t.get("A").unwrap();
    assert_eq!(e.addr, addr(2));
    assert_eq!(e.alternates.len(), 1);
    assert_eq!(e.alternates[0].addr, addr(1));
    // The same source moving on (a restart on a new port) drops the old address.
    t.offer("A", addr(5), Source::Tracker, t0 + secs(1), t0 + secs(1));
    let e = t.get("A").unwrap();
    assert_eq!(e.addr, addr(5));
    let alts: Vec<SocketAddr> = e.alternates.iter().map(|a| a.addr).collect();
    assert_eq!(alts, [addr(1)]);
    for port in 10..20 {
        t.offer("A", addr(port), Source::Incoming, t0, t0);
    }
    assert!(t.get("A").unwrap().alternates.len() <= MAX_ALTERNATES);
    assert!(
        t.get("A")
            .unwrap()
            .alternates
            .iter()
            .all(|a| a.addr != addr(5))
    );
}

/// PROTOCOL.md §19: an address listed as a port mapping shows as `mapped` in `peers` and is
/// passed on marked; an exchange answer without the mark (an older peer) takes none away, the
/// tracker's list does.
#[test]
fn addresses_listed_as_mapped_show_and_travel_as_mapped() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer("Alice", addr(1), Source::Tracker, now, now);
    t.listed_key(
        "Alice",
        addr(1),
        crate::identity::PeerId::from_public_key([9; 32]),
    );
    let via = |t: &PeerTable| t.listing(now, |_| false)[0].via;
    assert_eq!(via(&t), "direct");
    t.note_mapped(addr(1), true, true);
    assert_eq!(via(&t), "mapped");
    assert!(t.advertise(now, "Bob")[0].mapped);
    t.note_mapped(addr(1), false, false);
    assert_eq!(via(&t), "mapped", "an exchange answer without the mark");
    t.note_mapped(addr(1), false, true);
    assert_eq!(via(&t), "direct", "the tracker's word");
    assert!(!t.advertise(now, "Bob")[0].mapped);
}
