use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn started(local: &str) -> Reply {
    Reply::Started { local: addr(local) }
}

fn joined(bootstrapped: bool, public_ip: Option<&str>) -> Reply {
    Reply::Joined {
        bootstrapped,
        public_ip: public_ip.map(|ip| ip.parse().unwrap()),
    }
}

fn up(listen: &str, t0: Instant) -> DhtState {
    let mut d = DhtState::new(addr(listen), 1_700_000_000, t0);
    d.handle_reply(started("127.0.0.1:6881"), t0);
    d
}

fn requests(d: &mut DhtState) -> Vec<Request> {
    std::iter::from_fn(|| d.poll_request()).collect()
}

fn outcomes(d: &mut DhtState) -> Vec<Outcome> {
    std::iter::from_fn(|| d.poll_outcome()).collect()
}

fn hashes(n: u8) -> BTreeSet<[u8; 20]> {
    (0..n).map(|i| [i; 20]).collect()
}

/// Nothing is published before the node runs; then the record at once, with the listener's
/// address and a seq from the wall clock, and again before BEP 44 nodes forget it.
#[test]
fn the_record_is_put_when_the_dht_starts_and_again_before_it_expires() {
    let t0 = Instant::now();
    let mut d = DhtState::new(addr("127.0.0.1:4000"), 1_700_000_000, t0);
    d.handle_contents(hashes(1), t0);
    assert!(requests(&mut d).is_empty(), "published before the DHT ran");
    d.handle_reply(started("127.0.0.1:6881"), t0);
    let out = outcomes(&mut d);
    assert_eq!(
        out,
        [Outcome::Started {
            local: addr("127.0.0.1:6881")
        }]
    );
    let reqs = requests(&mut d);
    let Request::PutRecord { value, seq } = &reqs[0] else {
        panic!("{reqs:?}")
    };
    assert_eq!(*seq, 1_700_000_000);
    let record = parse_record(value).unwrap();
    assert_eq!(record.addrs, [addr("127.0.0.1:4000")]);
    assert_eq!(
        reqs[1],
        Request::Announce {
            info_hash: [0; 20],
            port: 4000
        }
    );
    d.handle_reply(
        Reply::RecordPut {
            seq: *seq,
            result: Ok(()),
        },
        t0,
    );
    let ok = |info_hash| Reply::Announced {
        info_hash,
        result: Ok(()),
    };
    d.handle_reply(ok([0; 20]), t0);
    assert_eq!(d.poll_timeout(), Some(t0 + ANNOUNCE_EVERY));
    d.handle_timeout(t0 + ANNOUNCE_EVERY);
    assert_eq!(
        requests(&mut d),
        [Request::Announce {
            info_hash: [0; 20],
            port: 4000
        }]
    );
    d.handle_reply(ok([0; 20]), t0 + ANNOUNCE_EVERY);
    assert_eq!(d.poll_timeout(), Some(t0 + RECORD_EVERY));
    let later = t0 + RECORD_EVERY;
    d.handle_timeout(later);
    let reqs = requests(&mut d);
    let Request::PutRecord { seq, value } = &reqs[0] else {
        panic!("{reqs:?}")
    };
    assert_eq!(*seq, 1_700_000_000 + RECORD_EVERY.as_secs() as i64);
    assert_eq!(parse_record(value).unwrap().at, *seq as u64);
    assert!(
        RECORD_EVERY < Duration::from_secs(2 * 3600)
            && ANNOUNCE_EVERY < Duration::from_secs(30 * 60)
    );
}

#[test]
fn a_failed_or_unanswered_put_is_tried_again_and_seq_always_grows() {
    let t0 = Instant::now();
    let mut d = up("127.0.0.1:4000", t0);
    let Some(Request::PutRecord { seq: first, .. }) = d.poll_request() else {
        panic!()
    };
    d.handle_reply(
        Reply::RecordPut {
            seq: first,
            result: Err("no nodes".into()),
        },
        t0,
    );
    assert_eq!(d.poll_timeout(), Some(t0 + RETRY_AFTER));
    d.handle_timeout(t0 + RETRY_AFTER);
    let Some(Request::PutRecord { seq: second, .. }) = d.poll_request() else {
        panic!()
    };
    assert!(second > first);
    // Never answered: after PUT_TIMEOUT it goes again.
    assert_eq!(d.poll_timeout(), Some(t0 + RETRY_AFTER + PUT_TIMEOUT));
    d.handle_timeout(t0 + RETRY_AFTER + PUT_TIMEOUT);
    let Some(Request::PutRecord { seq: third, .. }) = d.poll_request() else {
        panic!()
    };
    assert!(third > second);
    // A late answer to an older put changes nothing.
    d.handle_reply(
        Reply::RecordPut {
            seq: second,
            result: Ok(()),
        },
        t0 + RETRY_AFTER + PUT_TIMEOUT,
    );
    assert_eq!(d.poll_timeout(), Some(t0 + RETRY_AFTER + PUT_TIMEOUT * 2));
}

/// A change of the shared index is announced at once; what is no longer shared is not
/// announced again; a big index goes out a few puts at a time without the timer spinning.
#[test]
fn index_changes_are_announced_at_once_within_the_cap() {
    let t0 = Instant::now();
    let mut d = up("127.0.0.1:4000", t0);
    let record = requests(&mut d);
    assert_eq!(record.len(), 1);
    d.handle_contents(hashes(20), t0);
    let first = requests(&mut d);
    assert_eq!(
        first.len(),
        MAX_PUTS_IN_FLIGHT - 1,
        "the record is one of the puts in flight"
    );
    assert_eq!(
        d.poll_timeout(),
        Some(t0 + PUT_TIMEOUT),
        "no due timer while at the cap"
    );
    for r in &first {
        let Request::Announce { info_hash, .. } = r else {
            panic!()
        };
        d.handle_reply(
            Reply::Announced {
                info_hash: *info_hash,
                result: Ok(()),
            },
            t0,
        );
    }
    assert_eq!(requests(&mut d).len(), MAX_PUTS_IN_FLIGHT - 1);
    // Everything but hash 19 goes away; it is announced next, nothing else.
    let mut d = up("127.0.0.1:4000", t0);
    requests(&mut d);
    d.handle_contents(hashes(2), t0);
    assert_eq!(requests(&mut d).len(), 2);
    let t1 = t0 + Duration::from_secs(1);
    d.handle_contents([[9; 20]].into_iter().collect(), t1);
    assert_eq!(
        requests(&mut d),
        [Request::Announce {
            info_hash: [9; 20],
            port: 4000
        }]
    );
    d.handle_reply(
        Reply::Announced {
            info_hash: [0; 20],
            result: Ok(()),
        },
        t1,
    );
    assert_eq!(d.announced(), 1);
}

#[test]
fn a_wildcard_listener_publishes_the_public_address_or_warns_once() {
    let t0 = Instant::now();
    let mut d = DhtState::new(addr("0.0.0.0:4000"), 10, t0);
    d.handle_reply(started("0.0.0.0:6881"), t0);
    assert!(requests(&mut d).is_empty(), "no address to publish yet");
    assert_eq!(
        outcomes(&mut d).len(),
        1,
        "no warning before joining is over"
    );
    d.handle_reply(joined(true, Some("203.0.113.9")), t0);
    let Some(Request::PutRecord { value, .. }) = d.poll_request() else {
        panic!()
    };
    assert_eq!(
        parse_record(&value).unwrap().addrs,
        [addr("203.0.113.9:4000")]
    );

    let mut d = DhtState::new(addr("0.0.0.0:4000"), 10, t0);
    d.handle_reply(started("0.0.0.0:6881"), t0);
    d.handle_reply(joined(false, None), t0);
    assert!(requests(&mut d).is_empty());
    let out = outcomes(&mut d);
    assert_eq!(out[1], Outcome::Lonely, "{out:?}");
    assert!(
        matches!(&out[2], Outcome::Warning(w) if w.contains("not published")),
        "{out:?}"
    );
    d.handle_timeout(t0 + RETRY_AFTER);
    assert!(outcomes(&mut d).is_empty(), "warned once");
}

/// Sources come in batches, each address once, undialable ones dropped; the lookup ends when
/// the worker says so or at its deadline, and late answers are dropped.
#[test]
fn lookups_hand_on_fresh_sources_and_end_by_their_deadline() {
    let t0 = Instant::now();
    let mut d = up("127.0.0.1:4000", t0);
    requests(&mut d);
    outcomes(&mut d);
    let l = d.find_sources([7; 20], t0);
    assert_eq!(
        requests(&mut d),
        [Request::FindSources {
            lookup: l,
            info_hash: [7; 20]
        }]
    );
    let batch = |addrs: &[&str], done| Reply::Sources {
        lookup: l,
        addrs: addrs.iter().map(|a| addr(a)).collect(),
        done,
    };
    d.handle_reply(
        batch(&["127.0.0.1:5000", "0.0.0.0:5001", "127.0.0.1:0"], false),
        t0,
    );
    d.handle_reply(batch(&["127.0.0.1:5000", "127.0.0.1:5002"], true), t0);
    assert_eq!(
        outcomes(&mut d),
        [
            Outcome::Sources {
                lookup: l,
                addrs: vec![addr("127.0.0.1:5000")],
                done: false
            },
            Outcome::Sources {
                lookup: l,
                addrs: vec![addr("127.0.0.1:5002")],
                done: true
            },
        ]
    );
    d.handle_reply(batch(&["127.0.0.1:5003"], true), t0);
    assert!(outcomes(&mut d).is_empty(), "an answer after the end");

    let silent = d.find_sources([8; 20], t0);
    let rec = d.find_record([1; 32], t0);
    assert!(d.poll_timeout().unwrap() <= t0 + LOOKUP_TIMEOUT);
    d.handle_timeout(t0 + LOOKUP_TIMEOUT);
    let out = outcomes(&mut d);
    assert!(out.contains(&Outcome::Sources {
        lookup: silent,
        addrs: vec![],
        done: true
    }));
    assert!(
        out.iter().any(
            |o| matches!(o, Outcome::PeerAddrs { lookup, result: Err(e) }
        if *lookup == rec && e.contains("within"))
        ),
        "{out:?}"
    );
}

#[test]
fn records_found_are_parsed_strictly() {
    let t0 = Instant::now();
    let mut d = up("127.0.0.1:4000", t0);
    outcomes(&mut d);
    let good = encode_record(&Record {
        addrs: vec![addr("127.0.0.1:7000")],
        at: 1,
    })
    .unwrap();
    let cases = [
        (Some(good), Ok(vec![addr("127.0.0.1:7000")])),
        (None, Err("no record")),
        (Some(vec![0xff; 10]), Err("unusable")),
    ];
    for (value, want) in cases {
        let lookup = d.find_record([2; 32], t0);
        d.handle_reply(Reply::Record { lookup, value }, t0);
        let out = outcomes(&mut d);
        let [Outcome::PeerAddrs { lookup: l, result }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(*l, lookup);
        match (result, want) {
            (Ok(a), Ok(w)) => assert_eq!(a, &w),
            (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

/// A DHT that failed (cannot bind, thread gone) ends the lookups in flight at once and
/// answers new ones at once: nothing waits for it.
#[test]
fn a_dht_that_fails_ends_every_lookup_at_once() {
    let t0 = Instant::now();
    let mut d = up("127.0.0.1:4000", t0);
    outcomes(&mut d);
    let a = d.find_sources([1; 20], t0);
    let b = d.find_record([1; 32], t0);
    d.handle_reply(Reply::Failed("the DHT thread ended".into()), t0);
    let out = outcomes(&mut d);
    assert_eq!(out[0], Outcome::Unavailable("the DHT thread ended".into()));
    assert!(out.contains(&Outcome::Sources {
        lookup: a,
        addrs: vec![],
        done: true
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, Outcome::PeerAddrs { lookup, result: Err(_) } if *lookup == b))
    );
    let c = d.find_record([1; 32], t0);
    assert!(requests(&mut d).is_empty() || !d.is_up());
    assert!(
        matches!(&outcomes(&mut d)[..], [Outcome::PeerAddrs { lookup, result: Err(e) }]
        if *lookup == c && e.contains("not running"))
    );
    assert_eq!(d.poll_timeout(), None);
}

/// PROTOCOL.md §19: a port mapping goes first into the record, put again at once, and every
/// content is announced again with the mapped port (the node storing an announcement sees the
/// router's IP, so only that port reaches us).
#[test]
fn a_mapped_address_is_published_first_and_announced_with_its_port() {
    let t0 = Instant::now();
    let mut d = DhtState::new(addr("192.168.1.20:4000"), 1_700_000_000, t0);
    d.handle_contents(hashes(1), t0);
    d.handle_reply(started("127.0.0.1:6881"), t0);
    let reqs = requests(&mut d);
    let Request::PutRecord { seq, .. } = &reqs[0] else {
        panic!("{reqs:?}")
    };
    d.handle_reply(
        Reply::RecordPut {
            seq: *seq,
            result: Ok(()),
        },
        t0,
    );
    let ok = Reply::Announced {
        info_hash: [0; 20],
        result: Ok(()),
    };
    d.handle_reply(ok.clone(), t0);
    let t1 = t0 + Duration::from_secs(5);
    d.set_mapped(Some(addr("203.0.113.5:40123")), t1);
    let reqs = requests(&mut d);
    let Request::PutRecord { value, .. } = &reqs[0] else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        parse_record(value).unwrap().addrs,
        [addr("203.0.113.5:40123"), addr("192.168.1.20:4000")]
    );
    assert_eq!(
        reqs[1],
        Request::Announce {
            info_hash: [0; 20],
            port: 40123
        }
    );
    d.set_mapped(Some(addr("203.0.113.5:40123")), t1);
    assert!(requests(&mut d).is_empty(), "nothing changed");
}
