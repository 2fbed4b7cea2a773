//! The NAT-PMP client with a fake clock and a gateway played by hand, byte by byte.

use super::*;

const GW: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 5351));
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const PORT: u16 = 7001;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain(m: &mut PortMap) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn sent(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, b) => {
                assert_eq!(*to, GW, "every datagram goes to the gateway");
                Some(b.clone())
            }
            Output::Report(_) => None,
        })
        .collect()
}

fn reports(out: &[Output]) -> Vec<Report> {
    out.iter()
        .filter_map(|o| match o {
            Output::Report(r) => Some(r.clone()),
            Output::Send(..) => None,
        })
        .collect()
}

/// The gateway's answer to opcode 0.
fn external_answer(result: u16, epoch: u32, ip: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0, 128];
    b.extend_from_slice(&result.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&ip.octets());
    b
}

/// The gateway's answer to a TCP mapping request.
fn map_answer(result: u16, epoch: u32, internal: u16, external: u16, lifetime: u32) -> Vec<u8> {
    let mut b = vec![0, 130];
    b.extend_from_slice(&result.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&external.to_be_bytes());
    b.extend_from_slice(&lifetime.to_be_bytes());
    b
}

/// A machine that has mapped PORT to EXT:40123 for 2 h at `t0`, epoch 1000.
fn mapped(t0: Instant) -> PortMap {
    let mut m = PortMap::new(GW, PORT, t0);
    drain(&mut m);
    m.handle_datagram(GW, &external_answer(0, 1000, EXT), t0);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1000, PORT, 40123, 7200), t0);
    let out = drain(&mut m);
    assert_eq!(
        reports(&out),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40123),
            lifetime: Duration::from_secs(7200),
        }]
    );
    m
}

#[test]
fn asks_the_external_address_then_maps_the_listen_port_with_the_rfcs_bytes() {
    let t0 = Instant::now();
    let mut m = PortMap::new(GW, PORT, t0);
    assert_eq!(sent(&drain(&mut m)), [vec![0u8, 0]]);
    m.handle_datagram(GW, &external_answer(0, 5, EXT), t0 + ms(10));
    // Version 0, opcode 2 (TCP), reserved 0, internal 7001, suggested 7001, 7200 s.
    assert_eq!(
        sent(&drain(&mut m)),
        [vec![0u8, 2, 0, 0, 0x1b, 0x59, 0x1b, 0x59, 0, 0, 0x1c, 0x20]]
    );
    assert_eq!(m.mapped(), None);
    m.handle_datagram(GW, &map_answer(0, 5, PORT, 40123, 3600), t0 + ms(20));
    let out = drain(&mut m);
    assert!(sent(&out).is_empty());
    assert_eq!(
        reports(&out),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40123),
            lifetime: Duration::from_secs(3600),
        }]
    );
    assert_eq!(m.mapped(), Some(SocketAddrV4::new(EXT, 40123)));
}

/// §3.1: 250 ms, doubling; the first exchange gives up after FIRST_TRIES requests, says so once
/// with the count and the wait, and starts over RETRY_AFTER later.
#[test]
fn retransmits_at_250ms_doubling_then_gives_up_and_retries_much_later() {
    let t0 = Instant::now();
    let mut m = PortMap::new(GW, PORT, t0);
    let mut at = t0;
    let mut sends = vec![t0];
    drain(&mut m);
    loop {
        let next = m.poll_timeout().expect("a timer while asking");
        assert!(next > at, "time moves on");
        at = next;
        m.handle_timeout(at);
        let out = drain(&mut m);
        if !reports(&out).is_empty() {
            let waited = at - t0;
            assert_eq!(
                reports(&out),
                [Report::Failed {
                    why: MapError::NoAnswer {
                        tries: FIRST_TRIES,
                        waited
                    }
                }]
            );
            break;
        }
        assert_eq!(sent(&out), [vec![0u8, 0]]);
        sends.push(at);
    }
    let gaps: Vec<u64> = sends
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    assert_eq!(gaps, [250, 500, 1000, 2000, 4000]);
    assert_eq!(sends.len() as u32, FIRST_TRIES);
    assert_eq!(
        (at - t0).as_millis(),
        250 * 63,
        "gave up 8 s after the last try"
    );
    assert_eq!(m.poll_timeout(), Some(at + RETRY_AFTER));
    m.handle_timeout(at + RETRY_AFTER);
    assert_eq!(sent(&drain(&mut m)), [vec![0u8, 0]], "starts over");
}

/// §3.3: renewal at half the lifetime, suggesting the port we hold; no new report when
/// nothing changed; a changed port is reported.
#[test]
fn renews_at_half_the_lifetime_and_reports_only_changes() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    let half = t0 + Duration::from_secs(3600);
    assert_eq!(m.poll_timeout(), Some(half));
    m.handle_timeout(half - ms(1));
    assert!(drain(&mut m).is_empty(), "nothing before half the lifetime");
    m.handle_timeout(half);
    let suggested = 40123u16.to_be_bytes();
    assert_eq!(
        sent(&drain(&mut m)),
        [vec![
            0u8,
            2,
            0,
            0,
            0x1b,
            0x59,
            suggested[0],
            suggested[1],
            0,
            0,
            0x1c,
            0x20
        ]]
    );
    m.handle_datagram(GW, &map_answer(0, 4600, PORT, 40123, 7200), half);
    assert!(drain(&mut m).is_empty(), "same mapping: nothing to report");
    assert_eq!(m.poll_timeout(), Some(half + Duration::from_secs(3600)));
    let again = half + Duration::from_secs(3600);
    m.handle_timeout(again);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 8200, PORT, 40999, 7200), again);
    assert_eq!(
        reports(&drain(&mut m)),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40999),
            lifetime: Duration::from_secs(7200),
        }]
    );
}

/// A renewal nobody answers keeps the mapping until it expires, then says it is gone.
#[test]
fn an_unanswered_renewal_keeps_the_mapping_until_it_expires() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    let expires = t0 + Duration::from_secs(7200);
    let mut at = t0;
    let mut sends = 0;
    while at < expires {
        at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        let out = drain(&mut m);
        sends += sent(&out).len();
        if at < expires {
            assert!(reports(&out).is_empty(), "at {:?}", at - t0);
            assert!(m.mapped().is_some());
        } else {
            assert!(matches!(
                reports(&out)[..],
                [Report::Failed {
                    why: MapError::NoAnswer { .. }
                }]
            ));
        }
    }
    assert_eq!(at, expires);
    assert_eq!(m.mapped(), None);
    assert!(sends > RFC_TRIES as usize, "kept trying: {sends}");
}

/// §3.6: an epoch that runs backwards means the gateway lost its mappings: map again at once,
/// from the external address (it may have changed), suggesting the port we had.
#[test]
fn an_epoch_going_backwards_means_the_gateway_restarted_and_we_map_again() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    let half = t0 + Duration::from_secs(3600);
    m.handle_timeout(half);
    drain(&mut m);
    // 3600 s later the epoch should be about 1000 + 3150 at least; 12 says it rebooted.
    m.handle_datagram(GW, &map_answer(0, 12, PORT, 40123, 7200), half);
    let out = drain(&mut m);
    assert_eq!(reports(&out), [Report::GatewayRestarted]);
    assert_eq!(sent(&out), [vec![0u8, 0]]);
    assert_eq!(m.mapped(), None);
    m.handle_datagram(GW, &external_answer(0, 13, EXT), half + ms(5));
    let p = 40123u16.to_be_bytes();
    assert_eq!(
        sent(&drain(&mut m)),
        [vec![0u8, 2, 0, 0, 0x1b, 0x59, p[0], p[1], 0, 0, 0x1c, 0x20]]
    );
    m.handle_datagram(GW, &map_answer(0, 13, PORT, 40123, 7200), half + ms(6));
    assert!(matches!(
        reports(&drain(&mut m))[..],
        [Report::Mapped { .. }]
    ));
}

/// An epoch within the RFC's slack (7/8 of the elapsed time, less 2 s) is no restart.
#[test]
fn an_epoch_that_advanced_a_little_slowly_is_no_restart() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    let half = t0 + Duration::from_secs(3600);
    m.handle_timeout(half);
    drain(&mut m);
    // Expected at least 1000 + 3150 = 4150; 4148 is within 2 s.
    m.handle_datagram(GW, &map_answer(0, 4148, PORT, 40123, 7200), half);
    assert!(drain(&mut m).is_empty());
    assert!(m.mapped().is_some());
}

#[test]
fn result_codes_become_clear_failures_said_once() {
    for (code, why) in [
        (1, MapError::UnsupportedVersion),
        (2, MapError::NotAuthorized),
        (3, MapError::NetworkFailure),
        (4, MapError::OutOfResources),
        (5, MapError::UnsupportedOpcode),
        (77, MapError::Unknown(77)),
    ] {
        let t0 = Instant::now();
        let mut m = PortMap::new(GW, PORT, t0);
        drain(&mut m);
        m.handle_datagram(GW, &external_answer(0, 1, EXT), t0);
        drain(&mut m);
        m.handle_datagram(GW, &map_answer(code, 1, PORT, 0, 0), t0);
        let out = drain(&mut m);
        assert_eq!(reports(&out), [Report::Failed { why: why.clone() }]);
        assert!(!why.to_string().is_empty());
        assert_eq!(m.mapped(), None);
        // The retry fails the same way: not said again.
        let retry = t0 + RETRY_AFTER;
        m.handle_timeout(retry);
        drain(&mut m);
        m.handle_datagram(GW, &external_answer(code, 2000, EXT)[..8], retry);
        assert!(reports(&drain(&mut m)).is_empty(), "code {code}");
    }
    assert!(MapError::NotAuthorized.to_string().contains("result 2"));
}

#[test]
fn an_external_address_of_zero_is_no_address() {
    let t0 = Instant::now();
    let mut m = PortMap::new(GW, PORT, t0);
    drain(&mut m);
    m.handle_datagram(GW, &external_answer(0, 1, Ipv4Addr::UNSPECIFIED), t0);
    assert_eq!(
        reports(&drain(&mut m)),
        [Report::Failed {
            why: MapError::NoExternalAddress
        }]
    );
}

/// Garbage, answers from elsewhere, answers to what we did not ask and about other ports are
/// ignored: the machine goes on waiting, and never panics.
#[test]
fn garbage_and_stray_datagrams_are_ignored() {
    let t0 = Instant::now();
    let mut m = PortMap::new(GW, PORT, t0);
    drain(&mut m);
    let stranger = SocketAddr::from(([192, 168, 1, 9], 5351));
    let good = external_answer(0, 1, EXT);
    m.handle_datagram(stranger, &good, t0);
    let mut wrong_version = good.clone();
    wrong_version[0] = 2;
    let mut not_an_answer = good.clone();
    not_an_answer[1] = 0;
    let wrong_opcode = map_answer(0, 1, PORT, 1, 1);
    for bad in [
        &[][..],
        &[0],
        &[0, 128, 0],
        &good[..11],
        &[&good[..], &[0]].concat(),
        &wrong_version,
        &not_an_answer,
        &wrong_opcode,
        &[0, 129, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
        &[0xff; 64],
    ] {
        m.handle_datagram(GW, bad, t0);
    }
    assert!(drain(&mut m).is_empty());
    m.handle_datagram(GW, &good, t0);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1, PORT + 1, 40000, 7200), t0);
    assert!(drain(&mut m).is_empty(), "another port's mapping");
    assert_eq!(m.mapped(), None);
    // Every prefix and every single-byte change of a good answer: no panic.
    let answer = map_answer(0, 1, PORT, 40123, 7200);
    for n in 0..=answer.len() {
        let mut m2 = PortMap::new(GW, PORT, t0);
        m2.handle_datagram(GW, &answer[..n], t0);
        for i in 0..answer.len() {
            for v in [0u8, 1, 0x80, 0xff] {
                let mut b = answer.clone();
                b[i] = v;
                m2.handle_datagram(GW, &b, t0);
            }
        }
    }
}

/// §3.4: a clean shutdown deletes the mapping (lifetime 0, suggested port 0), once, and sends
/// nothing more.
#[test]
fn shutdown_deletes_the_mapping_and_goes_quiet() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    m.shutdown();
    assert_eq!(
        sent(&drain(&mut m)),
        [vec![0u8, 2, 0, 0, 0x1b, 0x59, 0, 0, 0, 0, 0, 0]]
    );
    m.shutdown();
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(t0 + Duration::from_secs(9000));
    assert!(drain(&mut m).is_empty());
    // Without a mapping or a request in flight there is nothing to delete.
    let mut quiet = PortMap::new(GW, PORT, t0);
    drain(&mut quiet);
    quiet.shutdown();
    assert!(drain(&mut quiet).is_empty());
}

/// A gateway granting a tiny lifetime cannot make us send every few hundred milliseconds.
#[test]
fn a_tiny_lifetime_is_renewed_no_faster_than_its_whole_length() {
    let t0 = Instant::now();
    let mut m = PortMap::new(GW, PORT, t0);
    drain(&mut m);
    m.handle_datagram(GW, &external_answer(0, 1, EXT), t0);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1, PORT, 40123, 1), t0);
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}
