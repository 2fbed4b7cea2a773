//! Peer exchange's schedule and merging rules through their own API, with fake time.

use super::*;
use crate::wire::{Message, decode_message, encode_message};

const SEC: Duration = Duration::from_secs(1);

fn base() -> Instant {
    Instant::now() + Duration::from_secs(100_000)
}

fn discovery(now: Instant) -> Discovery {
    Discovery::new(PathBuf::from("/nonexistent/peers.cbor"), now)
}

fn info(name: &str, port: u16, ms: u64) -> PeerInfo {
    PeerInfo {
        id: crate::identity::PeerId::from_public_key([9; 32]),
        name: name.into(),
        addr: format!("10.0.0.1:{port}"),
        mapped: false,
        last_seen_ms: ms,
    }
}

fn names(t: &PeerTable) -> Vec<&str> {
    t.iter().map(|(n, _)| n.as_str()).collect()
}

/// The worked examples of PROTOCOL.md §14.
#[test]
fn exchange_messages_encode_as_documented() {
    let get = encode_message(&Message::GetPeers { req: 7 });
    assert_eq!(
        hex::encode(&get),
        "00000010a1684765745065657273a16372657107"
    );
    let list = Message::PeerList {
        req: 7,
        peers: vec![PeerInfo {
            id: crate::identity::PeerId::from_public_key([9; 32]),
            name: "Carol".into(),
            addr: "10.0.0.3:4000".into(),
            mapped: false,
            last_seen_ms: 1500,
        }],
    };
    let bytes = encode_message(&list);
    assert_eq!(
        hex::encode(&bytes),
        concat!(
            "0000006b",
            "a1",
            "68506565724c697374",
            "a2",
            "6372657107",
            "65706565727381",
            "a4",
            "646e616d65654361726f6c",
            "626964", // "id"
            "58200909090909090909090909090909090909090909090909090909090909090909",
            "64616464726d31302e302e302e333a34303030",
            "6c6c6173745f7365656e5f6d731905dc",
        )
    );
    assert_eq!(decode_message(&bytes[4..]), Ok(list));
}

/// A session we opened is asked right after its handshake, then every 10 s, never twice at
/// once; an unanswered ask holds the next one back until the answer.
#[test]
fn sessions_are_asked_at_once_then_every_interval_one_ask_at_a_time() {
    let t0 = base();
    let (a, b) = (ConnId::fake(1), ConnId::fake(2));
    let mut d = discovery(t0);
    assert!(!d.ask(a, t0), "not a session we exchange with");
    d.exchange_with(a, t0);
    assert_eq!(d.due(t0), [a]);
    assert!(d.ask(a, t0));
    assert!(!d.ask(a, t0), "one at a time");
    assert_eq!(d.due(t0 + 60 * SEC), [], "unanswered: nothing due");
    d.answered(a);
    assert_eq!(d.due(t0 + 9 * SEC), []);
    assert_eq!(d.poll_timeout(false), Some(t0), "the probe timer");
    assert!(d.probe_due(t0));
    assert_eq!(d.poll_timeout(false), Some(t0 + 2 * SEC));
    d.exchange_with(b, t0 + SEC);
    assert_eq!(d.poll_timeout(false), Some(t0 + SEC));
    assert!(d.ask(b, t0 + SEC));
    assert_eq!(d.due(t0 + EXCHANGE_EVERY), [a]);
    assert!(d.ask(a, t0 + EXCHANGE_EVERY));
    d.gone(a);
    assert!(!d.ask(a, t0 + 30 * SEC), "gone");
}

/// `wait-peer` without a tracker asks every session again, at most once a second.
#[test]
fn a_refresh_asks_every_session_at_most_once_a_second() {
    let t0 = base();
    let mut d = discovery(t0);
    d.exchange_with(ConnId::fake(1), t0);
    d.exchange_with(ConnId::fake(2), t0);
    let mut asked = d.refresh(t0);
    asked.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(asked.len(), 2);
    assert_eq!(d.refresh(t0 + SEC / 2), []);
    assert_eq!(d.refresh(t0 + SEC).len(), 2);
}

/// Looking for neighbours every 2 s; the cache written at most every 10 s, only if changed.
#[test]
fn probes_every_two_seconds_and_saves_only_what_changed() {
    let t0 = base();
    let mut d = discovery(t0);
    assert!(d.probe_due(t0));
    assert!(!d.probe_due(t0 + SEC));
    assert!(d.probe_due(t0 + 2 * SEC));
    assert_eq!(d.poll_timeout(false), Some(t0 + 4 * SEC), "no save pending");
    assert_eq!(d.poll_timeout(true), Some(t0 + 4 * SEC));
    assert!(!d.save_due(true, t0 + 9 * SEC));
    assert!(!d.save_due(false, t0 + 10 * SEC), "nothing changed");
    assert!(
        !d.save_due(true, t0 + 11 * SEC),
        "the next window starts at 20 s"
    );
    assert!(d.save_due(true, t0 + 20 * SEC));
    assert!(d.warn_save_failed());
    assert!(!d.warn_save_failed(), "said once");
    assert_eq!(neighbors_wanted(3), TARGET_NEIGHBORS - 3);
    assert_eq!(neighbors_wanted(TARGET_NEIGHBORS + 1), 0);
}

/// Commands wait for the `--peer` connections: each counts once it failed or its first
/// exchange was answered; after 3 s they run anyway.
#[test]
fn commands_wait_for_the_peer_flags_briefly() {
    let t0 = base();
    let (a, b) = (ConnId::fake(1), ConnId::fake(2));
    let mut d = discovery(t0);
    d.start(2, t0);
    assert!(!d.startup_done(t0));
    assert_eq!(d.poll_timeout(false), Some(t0));
    d.probe_due(t0);
    assert_eq!(d.poll_timeout(false), Some(t0 + 2 * SEC));
    let boot = |port| Bootstrap {
        addr: SocketAddr::from(([10, 0, 0, 1], port)),
        command: false,
        startup: true,
        via_dht: false,
    };
    d.bootstrap_connected(a, boot(1));
    d.bootstrap_connected(b, boot(2));
    assert!(d.is_bootstrap(a));
    // a's handshake is done and it is asked; b fails before its handshake.
    assert_eq!(d.take_bootstrap(a).unwrap().addr.port(), 1);
    d.startup_conn(a);
    d.exchange_with(a, t0);
    assert_eq!(d.gone(b).unwrap().addr.port(), 2);
    d.startup_step();
    assert!(!d.startup_done(t0));
    d.answered(a);
    assert!(d.startup_done(t0));
    d.answered(a);
    d.gone(a);
    assert_eq!(d.startup_left, 0, "counted once");
    let mut late = discovery(t0);
    late.start(1, t0);
    assert!(late.startup_done(t0 + 3 * SEC));
}

/// With the tracker's whole list, gossip only refreshes known peers; with a sample or
/// without a tracker it adds new ones. At most 64 entries of an answer are taken, invalid
/// ones skipped, and the sender counts as heard from.
#[test]
fn gossip_adds_peers_only_where_the_tracker_list_is_not_the_whole_truth() {
    let now = base();
    let mut t = PeerTable::new("Me");
    t.offer(
        "Known",
        "10.0.0.1:1".parse().unwrap(),
        Source::Tracker,
        now - 60 * SEC,
        now,
    );
    t.offer(
        "Sender",
        "10.0.0.1:2".parse().unwrap(),
        Source::Tracker,
        now - 60 * SEC,
        now,
    );
    let list = [info("Known", 1, 0), info("New", 3, 100)];
    merge_exchange(&mut t, "Sender", &list, true, now);
    assert_eq!(names(&t), ["Known", "Sender"]);
    assert_eq!(t.get("Known").unwrap().last_seen, now, "refreshed");
    assert_eq!(
        t.get("Sender").unwrap().last_seen,
        now,
        "the sender was heard from"
    );
    merge_exchange(&mut t, "Sender", &list, false, now);
    assert_eq!(names(&t), ["Known", "New", "Sender"]);
    assert_eq!(t.get("New").unwrap().source, Source::Exchange);
    let mut long: Vec<PeerInfo> = (0..100)
        .map(|i| info(&format!("P{i:03}"), 10 + i, 0))
        .collect();
    long.insert(
        0,
        PeerInfo {
            id: crate::identity::PeerId::from_public_key([9; 32]),
            name: "Bad".into(),
            addr: "nonsense".into(),
            mapped: false,
            last_seen_ms: 0,
        },
    );
    long.insert(1, info("Me", 9, 0));
    let mut t = PeerTable::new("Me");
    merge_exchange(&mut t, "X", &long, false, now);
    assert_eq!(
        t.len(),
        MAX_EXCHANGE - 2,
        "the first 64, less the two refused"
    );
    assert!(!t.contains_key(&format!("P{:03}", MAX_EXCHANGE)));
}

/// A complete tracker list is a snapshot (what it lacks goes, unless connected); a sample
/// only adds (issue 17), or each answer would forget what the previous one listed.
#[test]
fn a_sampled_tracker_list_adds_and_a_complete_one_replaces() {
    let now = base();
    let mut t = PeerTable::new("Me");
    merge_tracker_list(
        &mut t,
        &[info("A", 1, 0), info("B", 2, 0)],
        false,
        now,
        |_| false,
    );
    merge_tracker_list(&mut t, &[info("C", 3, 0)], true, now, |_| false);
    assert_eq!(names(&t), ["A", "B", "C"], "a sample forgets nobody");
    assert_eq!(t.get("C").unwrap().source, Source::Tracker);
    merge_tracker_list(&mut t, &[info("C", 3, 0)], false, now, |n| n == "B");
    assert_eq!(names(&t), ["B", "C"], "B is connected: kept");
}

/// `connect HOST:PORT` waits a bounded time for its lookup; a late answer, or one for
/// another lookup, is not taken.
#[test]
fn a_host_lookup_is_waited_for_a_bounded_time() {
    let t0 = base();
    let mut d = discovery(t0);
    let mut r = Resolver::inline();
    let stale = r.lookup("no port");
    let id = r.lookup("also no port");
    d.looking_up(id, "peer.example:4000", t0);
    assert_eq!(d.poll_timeout(false), Some(t0), "the probe timer first");
    d.probe_due(t0);
    assert_eq!(d.poll_timeout(false), Some(t0 + 2 * SEC));
    assert!(d.lookup_answered(stale).is_none());
    assert!(d.lookup_expired(t0 + LOOKUP_TIMEOUT - SEC).is_none());
    let gone = d.lookup_expired(t0 + LOOKUP_TIMEOUT).expect("timed out");
    assert_eq!(gone.host, "peer.example:4000");
    assert!(d.lookup_answered(id).is_none(), "too late");
    d.looking_up(id, "peer.example:4000", t0);
    assert_eq!(d.lookup_answered(id).unwrap().id, id);
}
