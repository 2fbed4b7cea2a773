//! The tracker link through its own API, with fake time: what only process tests covered
//! before (tests/tracker_link.rs, discovery.rs, fallback.rs) runs here in microseconds.

use super::*;

const SEC: Duration = Duration::from_secs(1);
const SEED: u64 = 7;

fn addr() -> SocketAddr {
    "127.0.0.1:7000".parse().unwrap()
}

fn new_link(t0: Instant) -> TrackerLink {
    TrackerLink::new(addr(), "Me", 4000, SEED, t0)
}

fn transmits(link: &mut TrackerLink) -> Vec<Transmit> {
    std::iter::from_fn(|| link.poll_transmit()).collect()
}

fn events(link: &mut TrackerLink) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn registered(ttl_secs: u64) -> Message {
    Message::Registered {
        req: 1,
        ttl_secs,
        relay: false,
    }
}

fn error(code: ErrorCode) -> Message {
    Message::Error {
        req: Some(1),
        code,
        message: format!("{code:?} says the tracker"),
    }
}

fn hello() -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        name: "tracker".into(),
        listen_port: None,
        agent: "test".into(),
    }
}

fn is_register(t: &Transmit, on: ConnId) -> bool {
    matches!(t, Transmit::Send(c, Message::Register { name, listen_port: 4000, .. })
        if *c == on && name == "Me")
}

fn is_list(t: &Transmit, on: ConnId) -> bool {
    matches!(t, Transmit::Send(c, Message::ListPeers { .. }) if *c == on)
}

fn list_req(t: &Transmit) -> u64 {
    match t {
        Transmit::Send(_, Message::ListPeers { req, .. }) => *req,
        other => panic!("not a ListPeers: {other:?}"),
    }
}

/// Connects `link` (due at `at`) over `conn`: `Hello`, `Register` and `ListPeers` go out
/// together (one round trip, not three), then the tracker's `Hello` arrives and asks for
/// nothing more.
fn connect(link: &mut TrackerLink, conn: ConnId, at: Instant) {
    link.handle_timeout(at);
    assert_eq!(transmits(link), [Transmit::Connect(addr())]);
    link.handle_connected(conn, at);
    let out = transmits(link);
    assert!(
        out.len() == 3
            && out[0] == Transmit::Hello(conn)
            && is_register(&out[1], conn)
            && is_list(&out[2], conn),
        "{out:?}"
    );
    link.handle_message(conn, hello(), at);
    assert_eq!(transmits(link), [], "the tracker's Hello asks for nothing");
}

/// The peer list request in flight after `Registered`: the one sent behind `Register`, or a
/// new one the registration asked for.
fn list_in_flight(link: &mut TrackerLink, conn: ConnId) -> u64 {
    let out = transmits(link);
    match &out[..] {
        [] => link.list.expect("a peer list in flight"),
        [t] if is_list(t, conn) => list_req(t),
        other => panic!("{other:?}"),
    }
}

/// A link registered over `conn` at `t0` with a 30 s TTL (keep-alive every 10 s); the peer
/// list it asked for is answered and the events drained.
fn registered_link(conn: ConnId, t0: Instant) -> TrackerLink {
    let mut link = new_link(t0);
    connect(&mut link, conn, t0);
    link.handle_message(conn, registered(30), t0);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: false }]);
    let req = list_in_flight(&mut link, conn);
    answer_list(&mut link, conn, req, t0);
    link
}

/// `Registered` arrives (a new registration, not a keep-alive's answer): returns `again`, after
/// answering the peer list the link asks for.
fn register(link: &mut TrackerLink, conn: ConnId, ttl_secs: u64, at: Instant) -> bool {
    link.handle_message(conn, registered(ttl_secs), at);
    let again = match events(link)[..] {
        [LinkEvent::Registered { again }] => again,
        ref other => panic!("not registered: {other:?}"),
    };
    let req = list_in_flight(link, conn);
    answer_list(link, conn, req, at);
    again
}

fn answer_list(link: &mut TrackerLink, conn: ConnId, req: u64, at: Instant) {
    let peers = Vec::new();
    link.handle_message(
        conn,
        Message::Peers {
            req,
            peers,
            total: None,
        },
        at,
    );
    let ev = events(link);
    assert!(matches!(ev[..], [LinkEvent::PeerList { .. }]), "{ev:?}");
}

/// Calls `handle_timeout` every 100 ms from `from` until `until`; returns the first time
/// anything came out, with what came out.
fn first_out(
    link: &mut TrackerLink,
    from: Instant,
    until: Instant,
) -> Option<(Instant, Vec<Transmit>)> {
    let mut now = from;
    while now <= until {
        link.handle_timeout(now);
        let out = transmits(link);
        if !out.is_empty() {
            return Some((now, out));
        }
        now += Duration::from_millis(100);
    }
    None
}

fn lost(link: &mut TrackerLink) -> (String, Duration, bool) {
    let ev = events(link);
    match &ev[..] {
        [
            LinkEvent::Lost {
                reason,
                retry_in,
                announce,
            },
        ] => (reason.clone(), *retry_in, *announce),
        other => panic!("not one loss: {other:?}"),
    }
}

#[test]
fn keepalives_are_registers_every_interval_and_their_answers_are_quiet() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    assert_eq!(link.poll_timeout(), Some(t0 + 10 * SEC));
    link.handle_timeout(t0 + 9 * SEC);
    assert_eq!(transmits(&mut link), []);
    link.handle_timeout(t0 + 10 * SEC);
    let out = transmits(&mut link);
    assert!(out.len() == 1 && is_register(&out[0], c), "{out:?}");
    link.handle_message(c, registered(30), t0 + 10 * SEC);
    assert_eq!(events(&mut link), [], "a keep-alive's answer is quiet");
    assert_eq!(transmits(&mut link), []);
    assert_eq!(link.up(), Some(c));
    assert_eq!(link.poll_timeout(), Some(t0 + 20 * SEC), "no answer owed");
    link.handle_timeout(t0 + 20 * SEC);
    let out = transmits(&mut link);
    assert!(out.len() == 1 && is_register(&out[0], c), "{out:?}");
}

/// Keep-alives are `Register`s every TTL/3 for as long as the link lives, each answered; an
/// answer with a shorter TTL pulls the next one in.
#[test]
fn keepalives_go_out_every_third_of_the_ttl() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    register(&mut link, c, 9, t0);
    let mut at = Vec::new();
    let mut now = t0;
    while let Some((when, out)) = first_out(&mut link, now, t0 + 30 * SEC) {
        assert!(out.len() == 1 && is_register(&out[0], c), "{out:?}");
        at.push((when - t0).as_secs());
        link.handle_message(c, registered(9), when);
        now = when + Duration::from_millis(100);
    }
    assert_eq!(at, [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
    // A TTL of 3 s in the next answer: the next keep-alive 1 s after it, not 3.
    let (when, out) = first_out(&mut link, now, now + 10 * SEC).unwrap();
    assert!(is_register(&out[0], c));
    link.handle_message(c, registered(3), when);
    assert_eq!(link.poll_timeout(), Some(when + SEC));
}

/// The whole point of issue 11 item 3: a link that went silently dead is noticed within
/// one keep-alive interval + ANSWER_TIMEOUT of its last answer.
#[test]
fn a_silent_link_is_lost_within_one_interval_plus_the_answer_timeout() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    let bound = t0 + 10 * SEC + ANSWER_TIMEOUT;
    let (keepalive, out) = first_out(&mut link, t0, bound).expect("a keep-alive");
    assert!(is_register(&out[0], c));
    // No second keep-alive while the first is unanswered, only the loss.
    let (at, out) = first_out(&mut link, keepalive, bound).expect("the link is lost");
    assert_eq!(out, [Transmit::Close(c)]);
    assert_eq!(at, bound);
    let (why, delay, announce) = lost(&mut link);
    assert!(why.contains("no answer"), "{why}");
    assert!(announce);
    assert!(delay >= Duration::from_millis(250) && delay <= Duration::from_millis(500));
    assert_eq!(link.conn(), None);
    link.handle_timeout(at + delay);
    assert_eq!(transmits(&mut link), [Transmit::Connect(addr())]);
}

/// tests/tracker_link.rs `a_tracker_link_that_goes_silent_is_dropped_and_registered_again`,
/// in fake time: the 10 s answer rule drops a silent link, the peer connects again, registers
/// again, says so, and asks for the list again.
#[test]
fn a_silent_tracker_is_dropped_and_we_register_again() {
    let (c1, c2, t0) = (ConnId::fake(1), ConnId::fake(2), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c1, t0);
    register(&mut link, c1, 3, t0); // keep-alive every second
    // The tracker goes silent after this answer.
    let (first, _) = first_out(&mut link, t0, t0 + 2 * SEC).expect("a keep-alive");
    assert_eq!(first, t0 + SEC);
    let (at, out) = first_out(&mut link, first, first + 2 * ANSWER_TIMEOUT).expect("a loss");
    assert_eq!(
        at,
        first + ANSWER_TIMEOUT,
        "dropped 10 s after the unanswered keep-alive"
    );
    assert_eq!(out, [Transmit::Close(c1)]);
    let (why, delay, announce) = lost(&mut link);
    assert_eq!(why, "no answer within 10s");
    assert!(announce, "said once");
    assert!(delay <= Duration::from_millis(500));
    assert_eq!(link.poll_timeout(), Some(at + delay));
    connect(&mut link, c2, at + delay);
    // Registered again, said so, and the list is asked for again (`register` checks both).
    assert!(register(&mut link, c2, 3, at + delay));
    assert!(!link.working_without());
}

#[test]
fn a_link_that_closes_is_connected_and_registered_again() {
    let (c1, c2, t0) = (ConnId::fake(1), ConnId::fake(2), Instant::now());
    let mut link = registered_link(c1, t0);
    link.handle_closed(ConnId::fake(9), "not ours", t0 + SEC);
    assert_eq!(
        link.up(),
        Some(c1),
        "another connection closing changes nothing"
    );
    link.handle_closed(c1, "connection reset", t0 + SEC);
    assert_eq!(transmits(&mut link), [], "closed already: nothing to close");
    let (why, delay, announce) = lost(&mut link);
    assert_eq!((why.as_str(), announce), ("connection reset", true));
    assert!(link.working_without());
    assert!(!link.request_peer_list(None), "no tracker to ask");
    // The reconnect fails once: not said again, and the wait grows.
    link.handle_timeout(t0 + SEC + delay);
    assert_eq!(transmits(&mut link), [Transmit::Connect(addr())]);
    link.handle_connect_failed("connection refused", t0 + SEC + delay);
    let (_, second, announce) = lost(&mut link);
    assert!(!announce);
    assert!(second >= SEC / 2 && second <= SEC, "{second:?}");
    let back = t0 + SEC + delay + second;
    connect(&mut link, c2, back);
    link.handle_message(c2, registered(30), back);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: true }]);
    // Lost again: said again (we had been registered in between).
    link.handle_closed(c2, "gone", back + SEC);
    assert!(lost(&mut link).2);
}

/// The reconnect wait doubles from 0.5 s up to 30 s after each failure, jittered to between
/// half and all of it; the jitter comes from the seed, so the same seed gives the same waits.
/// Once registered, the cap is the keep-alive interval, and a registration starts over.
#[test]
fn the_reconnect_backoff_doubles_to_its_cap_and_replays_from_its_seed() {
    let t0 = Instant::now();
    let failures = |seed: u64, n: usize| {
        let mut link = TrackerLink::new(addr(), "Me", 4000, seed, t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..n {
            link.handle_timeout(now);
            assert_eq!(transmits(&mut link), [Transmit::Connect(addr())]);
            link.handle_connect_failed("refused", now);
            let (_, wait, _) = lost(&mut link);
            assert_eq!(link.poll_timeout(), Some(now + wait));
            link.handle_timeout(now + wait - Duration::from_millis(1));
            assert_eq!(transmits(&mut link), [], "not before its time");
            now += wait;
            waits.push(wait);
        }
        waits
    };
    let waits = failures(SEED, 9);
    let bases = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
    for (wait, base) in waits.iter().zip(bases) {
        let base = Duration::from_secs_f64(base);
        assert!(*wait >= base / 2 && *wait <= base, "{wait:?} for {base:?}");
    }
    assert_eq!(failures(SEED, 9), waits, "the same seed replays");
    assert_ne!(failures(SEED + 1, 9), waits, "another seed does not");

    // Registered with a 6 s TTL: keep-alive every 2 s, so retries wait at most 2 s.
    let c = ConnId::fake(1);
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    register(&mut link, c, 6, t0);
    let mut now = t0;
    for _ in 0..6 {
        link.handle_closed(c, "reset", now);
        let (_, wait, _) = lost(&mut link);
        assert!(wait <= 2 * SEC, "{wait:?}");
        now += wait;
        connect(&mut link, c, now);
    }
    register(&mut link, c, 6, now);
    link.handle_closed(c, "reset", now);
    let (_, wait, _) = lost(&mut link);
    assert!(
        wait <= Duration::from_millis(500),
        "a registration starts over: {wait:?}"
    );
}

#[test]
fn a_refused_name_keeps_the_link_and_is_asked_for_again_with_backoff() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    // Never registered: the TTL is unknown, retries are capped at 10 s.
    link.handle_message(c, error(ErrorCode::NameTaken), t0);
    let ev = events(&mut link);
    assert_eq!(
        ev,
        [LinkEvent::NameRefused {
            reason: "NameTaken says the tracker".into(),
            retry: NAME_RETRY_CAP
        }]
    );
    // The list went out behind `Register`: refused, the link still waits for it.
    let req = list_in_flight(&mut link, c);
    assert_eq!(link.conn(), Some(c), "the connection stays open");
    assert_eq!(link.listing(), Some(c), "the peer list is still asked for");
    assert_eq!(link.up(), None);
    answer_list(&mut link, c, req, t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..6 {
        let (at, out) = first_out(&mut link, now, now + 20 * SEC).expect("a retry");
        assert!(out.len() == 1 && is_register(&out[0], c), "{out:?}");
        waits.push((at - now).as_secs());
        now = at;
        link.handle_message(c, error(ErrorCode::NameTaken), now);
        assert_eq!(events(&mut link), [], "said once");
        assert_eq!(transmits(&mut link), [], "no list, no close");
    }
    assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    link.handle_message(c, registered(30), now);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: false }]);
    assert_eq!(link.up(), Some(c));
}

/// tests/discovery.rs `taken_name_is_refused_then_freed` and tests/tracker_link.rs
/// `a_name_held_by_a_live_registration_is_waited_for`: refused, the peer keeps serving (the
/// link stays up for an hour of refusals, never dropped, never said again), and gets the name
/// once it is free.
#[test]
fn a_name_refused_for_long_is_said_once_and_retried_until_it_is_free() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    link.handle_message(c, error(ErrorCode::BadName), t0);
    assert_eq!(events(&mut link).len(), 1);
    let req = list_in_flight(&mut link, c);
    answer_list(&mut link, c, req, t0);
    let (mut now, mut retries) = (t0, 0);
    while now < t0 + 3600 * SEC {
        let (at, out) = first_out(&mut link, now, now + 11 * SEC).expect("a retry");
        assert!(is_register(&out[0], c), "{out:?}");
        now = at;
        retries += 1;
        link.handle_message(c, error(ErrorCode::NameTaken), now);
        assert_eq!(events(&mut link), []);
    }
    assert!(retries >= 360, "every 10 s at most: {retries}");
    assert_eq!(link.conn(), Some(c));
    assert!(!link.working_without(), "never said to be down");
    link.handle_timeout(now + 10 * SEC);
    link.handle_message(c, registered(30), now + 10 * SEC);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: false }]);
}

#[test]
fn an_unanswered_retry_for_a_refused_name_loses_the_link() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    link.handle_message(c, error(ErrorCode::NameTaken), t0);
    assert_eq!(events(&mut link).len(), 1);
    let req = list_in_flight(&mut link, c);
    answer_list(&mut link, c, req, t0);
    link.handle_timeout(t0 + SEC);
    assert!(is_register(&transmits(&mut link)[0], c));
    let out = first_out(&mut link, t0 + SEC, t0 + SEC + ANSWER_TIMEOUT);
    assert_eq!(
        out,
        Some((t0 + SEC + ANSWER_TIMEOUT, vec![Transmit::Close(c)]))
    );
    assert!(lost(&mut link).0.contains("no answer"));
}

/// Issue 11 item 4: after a stall the keep-alive finds the name taken. The peer is told
/// once, retries at most one keep-alive interval apart, and is registered "again".
#[test]
fn a_name_taken_after_a_stall_is_retried_within_the_ttl_and_comes_back() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    connect(&mut link, c, t0);
    register(&mut link, c, 6, t0); // keep-alive every 2 s
    let stall_end = t0 + 60 * SEC;
    link.handle_timeout(stall_end);
    assert!(is_register(&transmits(&mut link)[0], c));
    link.handle_message(c, error(ErrorCode::NameTaken), stall_end);
    assert!(matches!(
        events(&mut link)[..],
        [LinkEvent::NameRefused { retry, .. }] if retry == 2 * SEC
    ));
    let req = list_req(&transmits(&mut link)[0]);
    answer_list(&mut link, c, req, stall_end);
    let mut now = stall_end;
    for want in [1, 2, 2] {
        let (at, _) = first_out(&mut link, now, now + 10 * SEC).expect("a retry");
        assert_eq!((at - now).as_secs(), want);
        now = at;
        link.handle_message(c, error(ErrorCode::NameTaken), now);
    }
    link.handle_timeout(now + 2 * SEC);
    let _ = transmits(&mut link);
    assert!(register(&mut link, c, 6, now + 2 * SEC), "registered again");
    // Told again the next time it happens.
    link.handle_timeout(now + 4 * SEC);
    let _ = transmits(&mut link);
    link.handle_message(c, error(ErrorCode::NameTaken), now + 4 * SEC);
    assert!(matches!(
        events(&mut link)[..],
        [LinkEvent::NameRefused { retry, .. }] if retry == 2 * SEC
    ));
}

#[test]
fn a_refusal_on_a_new_link_continues_the_backoff_and_a_registration_resets_it() {
    let (c1, c2, t0) = (ConnId::fake(1), ConnId::fake(2), Instant::now());
    let mut link = registered_link(c1, t0);
    link.handle_closed(c1, "reset", t0 + SEC);
    let (_, delay, _) = lost(&mut link);
    link.handle_timeout(t0 + SEC + delay);
    assert_eq!(transmits(&mut link), [Transmit::Connect(addr())]);
    let t2 = t0 + 2 * SEC;
    link.handle_connected(c2, t2);
    link.handle_message(c2, hello(), t2);
    let _ = transmits(&mut link);
    link.handle_message(c2, error(ErrorCode::NameTaken), t2);
    assert!(matches!(
        events(&mut link)[..],
        [LinkEvent::NameRefused { retry, .. }] if retry == 10 * SEC
    ));
    let req = list_in_flight(&mut link, c2);
    answer_list(&mut link, c2, req, t2);
    assert_eq!(link.poll_timeout(), Some(t0 + 3 * SEC));
    link.handle_timeout(t0 + 3 * SEC);
    assert!(is_register(&transmits(&mut link)[0], c2));
    link.handle_message(c2, registered(30), t0 + 3 * SEC);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: true }]);
    assert_eq!(link.name_backoff, FIRST_NAME_RETRY);
}

#[test]
fn a_registered_out_of_turn_or_on_another_connection_is_ignored() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    link.handle_timeout(t0);
    link.handle_connected(c, t0);
    link.handle_message(c, registered(30), t0);
    assert_eq!(events(&mut link), [], "before the tracker's Hello");
    link.handle_message(c, hello(), t0);
    let _ = transmits(&mut link);
    link.handle_message(ConnId::fake(9), registered(30), t0);
    assert_eq!(events(&mut link), []);
    assert_eq!(link.up(), None);
    link.handle_message(c, error(ErrorCode::NameTaken), t0 + SEC);
    assert_eq!(events(&mut link).len(), 1);
    let _ = transmits(&mut link);
    link.handle_message(c, error(ErrorCode::NotRegistered), t0 + SEC);
    assert_eq!(transmits(&mut link), [], "not registered anyway");
}

#[test]
fn not_registered_re_registers_once() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    link.handle_message(c, error(ErrorCode::NotRegistered), t0 + SEC);
    let out = transmits(&mut link);
    assert!(out.len() == 1 && is_register(&out[0], c), "{out:?}");
    link.handle_message(c, error(ErrorCode::NotRegistered), t0 + SEC);
    assert_eq!(transmits(&mut link), []);
    link.handle_message(c, registered(30), t0 + SEC);
    assert_eq!(events(&mut link), [LinkEvent::Registered { again: true }]);
}

#[test]
fn busy_drops_the_link_only_in_answer_to_a_register() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    link.handle_message(c, error(ErrorCode::Busy), t0 + SEC);
    assert!(matches!(
        events(&mut link)[..],
        [LinkEvent::TrackerError {
            code: ErrorCode::Busy,
            ..
        }]
    ));
    assert_eq!(link.up(), Some(c));
    link.handle_timeout(t0 + 10 * SEC);
    assert!(is_register(&transmits(&mut link)[0], c));
    link.handle_message(c, error(ErrorCode::Busy), t0 + 10 * SEC);
    assert_eq!(transmits(&mut link), [Transmit::Close(c)]);
    assert!(
        lost(&mut link)
            .0
            .starts_with("the tracker is busy: Busy says")
    );
}

#[test]
fn a_tracker_that_speaks_another_version_or_garbage_is_dropped() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    link.handle_timeout(t0);
    link.handle_connected(c, t0);
    let _ = transmits(&mut link);
    let mut other = hello();
    if let Message::Hello { version, .. } = &mut other {
        *version = PROTOCOL_VERSION + 1;
    }
    link.handle_message(c, other, t0);
    assert_eq!(transmits(&mut link), [Transmit::Close(c)]);
    assert!(lost(&mut link).0.contains("protocol version"));
    link.handle_timeout(t0 + SEC);
    assert_eq!(transmits(&mut link), [Transmit::Connect(addr())]);
    link.handle_connected(c, t0 + SEC);
    let _ = transmits(&mut link);
    link.handle_frame(c, b"\xff\x00garbage", t0 + SEC);
    assert_eq!(transmits(&mut link), [Transmit::Close(c)]);
    assert!(lost(&mut link).0.starts_with("tracker sent"));
}

#[test]
fn the_peer_list_clock_restarts_behind_an_answer() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    assert!(link.request_peer_list(None));
    let req = list_req(&transmits(&mut link)[0]);
    link.handle_timeout(t0);
    assert_eq!(transmits(&mut link), []);
    assert_eq!(link.poll_timeout(), Some(t0 + ANSWER_TIMEOUT));
    answer_list(&mut link, c, req, t0 + SEC);
    assert_eq!(
        link.poll_timeout(),
        Some(t0 + 10 * SEC),
        "only the keep-alive left"
    );
    // A list owed while a keep-alive is answered keeps a running clock.
    assert!(link.request_peer_list(None));
    let _ = transmits(&mut link);
    link.handle_timeout(t0 + 10 * SEC);
    assert!(is_register(&transmits(&mut link)[0], c));
    link.handle_message(c, registered(30), t0 + 11 * SEC);
    assert_eq!(
        link.timers.get(Timer::Answer),
        Some(t0 + 11 * SEC + ANSWER_TIMEOUT)
    );
}

/// A tracker with more peers than one answer holds (issue 17): asking for a peer by name puts
/// the name in `ListPeers`; one request at a time; an answer with `total` above what it
/// lists is a sample, so the list no longer counts as complete; answers to other requests
/// are ignored.
#[test]
fn a_bounded_answer_is_a_sample_and_the_sought_name_is_asked_for() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    assert!(link.list_is_complete());
    assert!(link.request_peer_list(Some("Zed")));
    let out = transmits(&mut link);
    let req = match &out[..] {
        [
            Transmit::Send(
                on,
                Message::ListPeers {
                    req,
                    want: None,
                    names,
                },
            ),
        ] if *on == c && names == &["Zed".to_string()] => *req,
        other => panic!("{other:?}"),
    };
    assert!(link.list_in_flight());
    assert!(
        link.request_peer_list(Some("Other")),
        "in flight: still a tracker to ask"
    );
    assert_eq!(transmits(&mut link), [], "one request at a time");
    let zed = PeerInfo {
        id: crate::identity::PeerId::from_public_key([9; 32]),
        name: "Zed".into(),
        addr: "10.0.0.9:4000".into(),
        mapped: false,
        last_seen_ms: 0,
    };
    let answer = |req, total| Message::Peers {
        req,
        peers: vec![zed.clone()],
        total,
    };
    link.handle_message(c, answer(req + 100, Some(500)), t0);
    assert_eq!(events(&mut link), [], "not our request");
    link.handle_message(c, answer(req, Some(500)), t0);
    assert_eq!(
        events(&mut link),
        [LinkEvent::PeerList {
            peers: vec![zed.clone()],
            sample: true
        }]
    );
    assert!(!link.list_in_flight());
    assert!(
        !link.list_is_complete(),
        "a sample says who is there, not who is not"
    );
    // A later answer that lists everyone makes it complete again.
    link.request_peer_list(None);
    let req = list_req(&transmits(&mut link)[0]);
    link.handle_message(c, answer(req, Some(1)), t0);
    assert!(matches!(
        events(&mut link)[..],
        [LinkEvent::PeerList { sample: false, .. }]
    ));
    assert!(link.list_is_complete());
}

#[test]
fn goodbye_unregisters_only_a_registered_link() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = new_link(t0);
    link.goodbye();
    assert_eq!(transmits(&mut link), []);
    let mut link = registered_link(c, t0);
    link.goodbye();
    assert_eq!(
        transmits(&mut link),
        [Transmit::Send(c, Message::Unregister)]
    );
}

/// PROTOCOL.md §19: once a router maps our port, every `Register` carries the external
/// address; a registered link registers again at once (the tracker lists the new address
/// without waiting for a keep-alive), and a mapping gone goes out as a `Register` without it.
#[test]
fn a_mapped_address_is_registered_at_once_and_with_every_keepalive() {
    let (c, t0) = (ConnId::fake(1), Instant::now());
    let mut link = registered_link(c, t0);
    let ext: SocketAddr = "203.0.113.5:40123".parse().unwrap();
    let external_of = |t: &Transmit| match t {
        Transmit::Send(_, Message::Register { external, .. }) => external.clone(),
        other => panic!("not a Register: {other:?}"),
    };
    link.set_external(Some(ext), t0 + SEC);
    let out = transmits(&mut link);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(external_of(&out[0]).as_deref(), Some("203.0.113.5:40123"));
    link.set_external(Some(ext), t0 + SEC);
    assert_eq!(transmits(&mut link), [], "nothing changed, nothing sent");
    link.handle_message(c, registered(30), t0 + SEC);
    link.handle_timeout(t0 + 11 * SEC);
    let out = transmits(&mut link);
    assert_eq!(external_of(&out[0]).as_deref(), Some("203.0.113.5:40123"));
    link.handle_message(c, registered(30), t0 + 11 * SEC);
    link.set_external(None, t0 + 12 * SEC);
    let out = transmits(&mut link);
    assert_eq!(external_of(&out[0]), None);
    // A change while a `Register` is on its way goes out as soon as it is answered.
    link.set_external(Some(ext), t0 + 12 * SEC);
    assert_eq!(transmits(&mut link), [], "one Register in flight at a time");
    link.handle_message(c, registered(30), t0 + 13 * SEC);
    assert_eq!(link.poll_timeout(), Some(t0 + 13 * SEC));
    link.handle_timeout(t0 + 13 * SEC);
    let out = transmits(&mut link);
    assert_eq!(external_of(&out[0]).as_deref(), Some("203.0.113.5:40123"));
}
