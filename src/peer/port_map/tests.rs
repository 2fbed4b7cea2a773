//! The PCP/NAT-PMP client with a fake clock and a gateway played by hand, byte by byte. The
//! NAT-PMP tests start from a gateway that answered our PCP request as a NAT-PMP-only one does
//! (`nat_pmp`); the PCP tests are at the end.

use super::*;

const GW: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 5351));
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const PORT: u16 = 7001;
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

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

fn new_map(t0: Instant) -> PortMap {
    PortMap::new(GW, PORT, CLIENT, NONCE, t0)
}

/// What a NAT-PMP-only gateway answers to a request of another version (RFC 6886 §3.5):
/// version 0, opcode 128 + 1 (PCP's MAP), result 1, its epoch.
fn unsupported_version(epoch: u32) -> Vec<u8> {
    let mut b = vec![0, 129, 0, 1];
    b.extend_from_slice(&epoch.to_be_bytes());
    b
}

/// A machine at `t0` whose gateway answered its PCP request as a NAT-PMP-only one: it has
/// sent the NAT-PMP external address request.
fn nat_pmp(t0: Instant) -> PortMap {
    let mut m = new_map(t0);
    let first = sent(&drain(&mut m));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0][..2], [2, 1], "PCP first");
    m.handle_datagram(GW, &unsupported_version(1), t0);
    assert_eq!(sent(&drain(&mut m)), [vec![0u8, 0]]);
    m
}

/// A machine that has mapped PORT to EXT:40123 for 2 h at `t0` over NAT-PMP, epoch 1000.
fn mapped(t0: Instant) -> PortMap {
    let mut m = nat_pmp(t0);
    m.handle_datagram(GW, &external_answer(0, 1000, EXT), t0);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1000, PORT, 40123, 7200), t0);
    let out = drain(&mut m);
    assert_eq!(
        reports(&out),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40123),
            lifetime: Duration::from_secs(7200),
            via: Protocol::NatPmp,
        }]
    );
    m
}

#[test]
fn asks_the_external_address_then_maps_the_listen_port_with_the_rfcs_bytes() {
    let t0 = Instant::now();
    let mut m = nat_pmp(t0);
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
            via: Protocol::NatPmp,
        }]
    );
    assert_eq!(m.mapped(), Some(SocketAddrV4::new(EXT, 40123)));
    assert_eq!(m.mapped_via(), Some(Protocol::NatPmp));
}

/// §3.1: 250 ms, doubling; the first exchange gives up after FIRST_TRIES requests, says so once
/// with the count and the wait, and starts over RETRY_AFTER later.
#[test]
fn retransmits_at_250ms_doubling_then_gives_up_and_retries_much_later() {
    let t0 = Instant::now();
    let mut m = nat_pmp(t0);
    let mut at = t0;
    let mut sends = vec![t0];
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
                        pcp_tries: 0,
                        nat_pmp_tries: FIRST_TRIES,
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
    let again = sent(&drain(&mut m));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0][..2], [2, 1], "starts over, from PCP");
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
            via: Protocol::NatPmp,
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
        let mut m = nat_pmp(t0);
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
        m.handle_datagram(GW, &unsupported_version(2000), retry);
        assert_eq!(sent(&drain(&mut m)), [vec![0u8, 0]]);
        m.handle_datagram(GW, &external_answer(code, 2000, EXT)[..8], retry);
        assert!(reports(&drain(&mut m)).is_empty(), "code {code}");
        assert!(matches!(m.phase, Phase::Waiting { .. }), "code {code}");
    }
    assert!(
        MapError::NotAuthorized
            .to_string()
            .contains("NAT-PMP result 2")
    );
}

#[test]
fn an_external_address_of_zero_is_no_address() {
    let t0 = Instant::now();
    let mut m = nat_pmp(t0);
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
    let mut m = nat_pmp(t0);
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
        let mut m2 = nat_pmp(t0);
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
    // Without a mapping or a request in flight that could have made one there is nothing to
    // delete (NAT-PMP asking the external address).
    let mut quiet = nat_pmp(t0);
    quiet.shutdown();
    assert!(drain(&mut quiet).is_empty());
}

/// A gateway granting a tiny lifetime cannot make us send every few hundred milliseconds.
#[test]
fn a_tiny_lifetime_is_renewed_no_faster_than_its_whole_length() {
    let t0 = Instant::now();
    let mut m = nat_pmp(t0);
    m.handle_datagram(GW, &external_answer(0, 1, EXT), t0);
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1, PORT, 40123, 1), t0);
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}

// --- PCP (RFC 6887) ---

/// The MAP request we expect, written out field by field (PCP's layout, `pcp.rs`'s header).
fn pcp_request(lifetime: u32, suggested_port: u16, suggested_ip: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![2, 1, 0, 0];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0xff, 0xff]);
    b.extend_from_slice(&CLIENT.octets());
    b.extend_from_slice(&NONCE);
    b.extend_from_slice(&[6, 0, 0, 0]);
    b.extend_from_slice(&PORT.to_be_bytes());
    b.extend_from_slice(&suggested_port.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0xff, 0xff]);
    b.extend_from_slice(&suggested_ip.octets());
    b
}

/// The gateway's MAP answer: header (R bit, result, lifetime, epoch), our fields back, the
/// assigned port and IPv4-mapped address.
fn pcp_answer(result: u8, lifetime: u32, epoch: u32, nonce: [u8; 12], port: u16) -> Vec<u8> {
    pcp_answer_to(
        result,
        lifetime,
        epoch,
        nonce,
        PORT,
        port,
        EXT.to_ipv6_mapped(),
    )
}

fn pcp_answer_to(
    result: u8,
    lifetime: u32,
    epoch: u32,
    nonce: [u8; 12],
    internal: u16,
    external: u16,
    ip: std::net::Ipv6Addr,
) -> Vec<u8> {
    let mut b = vec![2, 0x81, 0, result];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&nonce);
    b.extend_from_slice(&[6, 0, 0, 0]);
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&external.to_be_bytes());
    b.extend_from_slice(&ip.octets());
    b
}

/// A machine that has mapped PORT to EXT:40123 over PCP for 2 h at `t0`, epoch 1000.
fn pcp_mapped(t0: Instant) -> PortMap {
    let mut m = new_map(t0);
    drain(&mut m);
    m.handle_datagram(GW, &pcp_answer(0, 7200, 1000, NONCE, 40123), t0);
    assert_eq!(
        reports(&drain(&mut m)),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40123),
            lifetime: Duration::from_secs(7200),
            via: Protocol::Pcp,
        }]
    );
    m
}

#[test]
fn pcp_first_one_map_request_with_the_rfcs_bytes_then_the_mapping() {
    let t0 = Instant::now();
    let mut m = new_map(t0);
    let first = sent(&drain(&mut m));
    // Version 2, MAP, 7200 s, ::ffff:192.168.1.20, the nonce, TCP, port 7001 suggesting
    // 7001, no suggested address (::ffff:0.0.0.0).
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        2, 1, 0, 0, 0, 0, 0x1c, 0x20,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        6, 0, 0, 0, 0x1b, 0x59, 0x1b, 0x59,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,
    ];
    assert_eq!(expected, pcp_request(7200, PORT, Ipv4Addr::UNSPECIFIED));
    assert_eq!(first, [expected]);
    m.handle_datagram(GW, &pcp_answer(0, 3600, 5, NONCE, 40123), t0 + ms(10));
    let out = drain(&mut m);
    assert!(sent(&out).is_empty(), "one request is the whole exchange");
    assert_eq!(
        reports(&out),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40123),
            lifetime: Duration::from_secs(3600),
            via: Protocol::Pcp,
        }]
    );
    assert_eq!(m.mapped(), Some(SocketAddrV4::new(EXT, 40123)));
    assert_eq!(m.mapped_via(), Some(Protocol::Pcp));
    assert_eq!(
        m.poll_timeout(),
        Some(t0 + ms(10) + Duration::from_secs(1800))
    );
}

/// Renewal at half the lifetime: the same request, the same nonce, suggesting the port and
/// address held; nothing reported unless something changed.
#[test]
fn pcp_renews_at_half_the_lifetime_with_the_same_nonce() {
    let t0 = Instant::now();
    let mut m = pcp_mapped(t0);
    let half = t0 + Duration::from_secs(3600);
    assert_eq!(m.poll_timeout(), Some(half));
    m.handle_timeout(half - ms(1));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(half);
    assert_eq!(sent(&drain(&mut m)), [pcp_request(7200, 40123, EXT)]);
    m.handle_datagram(GW, &pcp_answer(0, 7200, 4600, NONCE, 40123), half);
    assert!(drain(&mut m).is_empty(), "same mapping: nothing to report");
    let again = half + Duration::from_secs(3600);
    assert_eq!(m.poll_timeout(), Some(again));
    m.handle_timeout(again);
    assert_eq!(sent(&drain(&mut m)), [pcp_request(7200, 40123, EXT)]);
    m.handle_datagram(GW, &pcp_answer(0, 7200, 8200, NONCE, 40999), again);
    assert_eq!(
        reports(&drain(&mut m)),
        [Report::Mapped {
            external: SocketAddrV4::new(EXT, 40999),
            lifetime: Duration::from_secs(7200),
            via: Protocol::Pcp,
        }]
    );
}

/// An unanswered PCP renewal is retried (never handed to NAT-PMP while the mapping holds)
/// until the mapping expires.
#[test]
fn an_unanswered_pcp_renewal_keeps_trying_pcp_until_the_mapping_expires() {
    let t0 = Instant::now();
    let mut m = pcp_mapped(t0);
    let expires = t0 + Duration::from_secs(7200);
    let mut at = t0;
    while at < expires {
        at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        let out = drain(&mut m);
        for b in sent(&out) {
            assert_eq!(b, pcp_request(7200, 40123, EXT));
        }
        if at < expires {
            assert!(reports(&out).is_empty());
        } else {
            assert!(matches!(
                reports(&out)[..],
                [Report::Failed {
                    why: MapError::NoAnswer {
                        nat_pmp_tries: 0,
                        ..
                    }
                }]
            ));
        }
    }
    assert_eq!(m.mapped(), None);
}

/// §11.4: an answer with another nonce is not ours; nor one about another port or protocol,
/// from another address, of another version or opcode, without the R bit, of a bad length.
#[test]
fn pcp_answers_not_ours_or_malformed_are_ignored() {
    let t0 = Instant::now();
    let mut m = new_map(t0);
    drain(&mut m);
    let good = pcp_answer(0, 7200, 1000, NONCE, 40123);
    let mut other_nonce = NONCE;
    other_nonce[11] ^= 1;
    let mut udp = good.clone();
    udp[36] = 17;
    let mut no_r = good.clone();
    no_r[1] = 1;
    let mut announce = good.clone();
    announce[1] = 0x80;
    let mut v3 = good.clone();
    v3[0] = 3;
    let stranger = SocketAddr::from(([192, 168, 1, 9], 5351));
    m.handle_datagram(stranger, &good, t0);
    let other_port = pcp_answer_to(0, 7200, 1000, NONCE, PORT + 1, 1, EXT.to_ipv6_mapped());
    let error_other_nonce = pcp_answer(2, 0, 1000, other_nonce, 0);
    for bad in [
        &pcp_answer(0, 7200, 1000, other_nonce, 40123),
        &error_other_nonce,
        &other_port,
        &udp,
        &no_r,
        &announce,
        &v3,
        &good[..59],
        &good[..56],
        &good[..24],
        &[&good[..], &[0]].concat(),
        &[&good[..], &[0; 1044]].concat(),
        &[][..],
        &[2, 0x81, 0],
        // A NAT-PMP answer that is not "unsupported version".
        &external_answer(0, 1, EXT),
        // A header-only error that cannot carry the nonce, for a code that needs it.
        &pcp_answer(2, 0, 1000, NONCE, 0)[..24],
    ] {
        m.handle_datagram(GW, bad, t0);
        assert!(drain(&mut m).is_empty(), "{bad:?}");
    }
    assert_eq!(m.mapped(), None);
    // Options after the MAP fields are skipped.
    let with_option = [&good[..], &[0x80, 0, 0, 0]].concat();
    m.handle_datagram(GW, &with_option, t0);
    assert!(matches!(
        reports(&drain(&mut m))[..],
        [Report::Mapped { .. }]
    ));
}

/// §8.5: an epoch that ran backwards, or ahead of our clock by far more than the slack,
/// means the gateway lost its mappings: PCP again at once (suggesting the port we had); one
/// within the slack is no restart.
#[test]
fn a_pcp_epoch_out_of_step_means_the_gateway_restarted_and_we_map_again() {
    for (epoch, restarted) in [
        (12u32, true),
        (1000 + 3600 * 2, true),
        // 3600 s here: the gateway's 3600 - 225 - 2 - 1 is too few, 3600 - 225 enough.
        (1000 + 3600 - 3600 / 16 - 3, true),
        (1000 + 3600 - 3600 / 16, false),
        (1000 + 3600 + 200, false),
    ] {
        let t0 = Instant::now();
        let mut m = pcp_mapped(t0);
        let half = t0 + Duration::from_secs(3600);
        m.handle_timeout(half);
        drain(&mut m);
        m.handle_datagram(GW, &pcp_answer(0, 7200, epoch, NONCE, 40123), half);
        let out = drain(&mut m);
        if !restarted {
            assert!(out.is_empty(), "epoch {epoch}: {out:?}");
            assert!(m.mapped().is_some());
            continue;
        }
        assert_eq!(reports(&out), [Report::GatewayRestarted], "epoch {epoch}");
        assert_eq!(
            sent(&out),
            [pcp_request(7200, 40123, Ipv4Addr::UNSPECIFIED)]
        );
        assert_eq!(m.mapped(), None);
        m.handle_datagram(GW, &pcp_answer(0, 7200, epoch, NONCE, 40123), half + ms(5));
        assert!(matches!(
            reports(&drain(&mut m))[..],
            [Report::Mapped {
                via: Protocol::Pcp,
                ..
            }]
        ));
    }
    assert!(pcp::epoch_valid(1000, 1000, 0));
    assert!(pcp::epoch_valid(1000, 998, 0));
    assert!(!pcp::epoch_valid(1000, 997, 0));
}

#[test]
fn pcp_result_codes_become_clear_failures() {
    for code in (2u8..=13).chain([99]) {
        let t0 = Instant::now();
        let mut m = new_map(t0);
        drain(&mut m);
        m.handle_datagram(GW, &pcp_answer(code, 1800, 1, NONCE, 0), t0);
        let out = drain(&mut m);
        let why = MapError::Pcp(pcp::ResultCode(code));
        assert_eq!(reports(&out), [Report::Failed { why: why.clone() }]);
        assert!(
            sent(&out).is_empty(),
            "no fallback on an answer: code {code}"
        );
        let text = why.to_string();
        assert!(text.contains(&format!("PCP result {code}")), "{text}");
        assert_eq!(m.mapped(), None);
        assert_eq!(m.poll_timeout(), Some(t0 + RETRY_AFTER));
    }
    assert_eq!(
        MapError::Pcp(pcp::ResultCode(2)).to_string(),
        "the gateway refused the mapping (PCP result 2: NOT_AUTHORIZED; port mapping may be \
         turned off in the router)"
    );
    // A header-only answer for the codes where the gateway may not have read our fields.
    for code in [3u8, 4] {
        let t0 = Instant::now();
        let mut m = new_map(t0);
        drain(&mut m);
        m.handle_datagram(GW, &pcp_answer(code, 0, 1, NONCE, 0)[..24], t0);
        assert_eq!(
            reports(&drain(&mut m)),
            [Report::Failed {
                why: MapError::Pcp(pcp::ResultCode(code))
            }]
        );
    }
    // A mapping we cannot use: an IPv6 external address, 0.0.0.0, port 0.
    let t0 = Instant::now();
    let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    for (answer, why) in [
        (
            pcp_answer_to(0, 7200, 1, NONCE, PORT, 40123, v6),
            MapError::PcpUnusable {
                external: SocketAddr::new(v6.into(), 40123),
                lifetime: 7200,
            },
        ),
        (
            pcp_answer_to(
                0,
                7200,
                1,
                NONCE,
                PORT,
                40123,
                Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
            ),
            MapError::NoExternalAddress,
        ),
        (
            pcp_answer(0, 7200, 1, NONCE, 0),
            MapError::PcpUnusable {
                external: SocketAddr::from((EXT, 0)),
                lifetime: 7200,
            },
        ),
    ] {
        let mut m = new_map(t0);
        drain(&mut m);
        m.handle_datagram(GW, &answer, t0);
        assert_eq!(reports(&drain(&mut m)), [Report::Failed { why }]);
    }
}

/// RFC 6887 Appendix A: a NAT-PMP-only gateway's "unsupported version" (and a PCP v1
/// gateway's `UNSUPP_VERSION`) switches to NAT-PMP at once; the mapping is said to be
/// NAT-PMP's, and its renewal is NAT-PMP's too.
#[test]
fn an_unsupported_version_answer_falls_back_to_nat_pmp_at_once() {
    let t0 = Instant::now();
    let mut m = mapped(t0);
    assert_eq!(m.mapped_via(), Some(Protocol::NatPmp));
    let half = t0 + Duration::from_secs(3600);
    m.handle_timeout(half);
    let renewal = sent(&drain(&mut m));
    assert_eq!(renewal.len(), 1);
    assert_eq!(renewal[0][..2], [0, 2], "NAT-PMP renews a NAT-PMP mapping");

    let mut v1 = vec![1, 0x81, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
    v1.extend_from_slice(&[0; 12]);
    let mut m = new_map(t0);
    drain(&mut m);
    m.handle_datagram(GW, &v1, t0 + ms(3));
    assert_eq!(sent(&drain(&mut m)), [vec![0u8, 0]]);
    // A late PCP answer now means nothing.
    m.handle_datagram(GW, &pcp_answer(0, 7200, 1000, NONCE, 40123), t0 + ms(4));
    assert!(drain(&mut m).is_empty());
}

/// A gateway that never answers PCP: 3 PCP tries (0, 250, 750 ms), NAT-PMP from 1.75 s
/// with its own 6 tries, one failure naming both at 17.5 s, bounded.
#[test]
fn silence_to_pcp_falls_back_to_nat_pmp_and_the_first_attempt_is_bounded() {
    let t0 = Instant::now();
    let mut m = new_map(t0);
    let mut log = vec![(0u64, sent(&drain(&mut m)))];
    let why = loop {
        let at = m.poll_timeout().expect("a timer");
        assert!(at - t0 < Duration::from_secs(20), "bounded");
        m.handle_timeout(at);
        let out = drain(&mut m);
        if let [Report::Failed { why }] = &reports(&out)[..] {
            assert_eq!(at - t0, ms(1750 + 15750));
            break why.clone();
        }
        log.push(((at - t0).as_millis() as u64, sent(&out)));
    };
    let pcp = pcp_request(7200, PORT, Ipv4Addr::UNSPECIFIED);
    let times: Vec<u64> = log.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        [0, 250, 750, 1750, 2000, 2500, 3500, 5500, 9500],
        "PCP at 0/250/750, NAT-PMP from 1750"
    );
    for (t, datagrams) in &log {
        let expected = if *t < 1750 { pcp.clone() } else { vec![0, 0] };
        assert_eq!(datagrams, &[expected], "at {t} ms");
    }
    assert_eq!(
        why,
        MapError::NoAnswer {
            pcp_tries: PCP_FIRST_TRIES,
            nat_pmp_tries: FIRST_TRIES,
            waited: ms(17500),
        }
    );
    assert_eq!(
        why.to_string(),
        "no answer from the gateway to PCP or NAT-PMP (3 + 6 tries over 17s)"
    );
    // Once NAT-PMP answers after the silence, it maps.
    let mut m = new_map(t0);
    drain(&mut m);
    for at in [250, 750, 1750] {
        m.handle_timeout(t0 + ms(at));
    }
    assert_eq!(sent(&drain(&mut m)).last().unwrap(), &vec![0u8, 0]);
    m.handle_datagram(GW, &external_answer(0, 1, EXT), t0 + ms(1800));
    drain(&mut m);
    m.handle_datagram(GW, &map_answer(0, 1, PORT, 40123, 7200), t0 + ms(1810));
    assert_eq!(m.mapped_via(), Some(Protocol::NatPmp));
}

/// A clean shutdown deletes a PCP mapping with its nonce (lifetime 0); a PCP request in
/// flight may have made one, so it is deleted too.
#[test]
fn pcp_shutdown_deletes_the_mapping_with_its_nonce() {
    let t0 = Instant::now();
    let mut m = pcp_mapped(t0);
    m.shutdown();
    assert_eq!(
        sent(&drain(&mut m)),
        [pcp_request(0, 0, Ipv4Addr::UNSPECIFIED)]
    );
    m.shutdown();
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), None);
    let mut fresh = new_map(t0);
    drain(&mut fresh);
    fresh.shutdown();
    assert_eq!(
        sent(&drain(&mut fresh)),
        [pcp_request(0, 0, Ipv4Addr::UNSPECIFIED)]
    );
}

/// Every prefix and every single-byte change of good PCP answers, and stray lengths of
/// garbage: no panic, and nothing ever reported but a mapping or a failure.
#[test]
fn garbage_pcp_answers_never_panic() {
    let t0 = Instant::now();
    let answers = [
        pcp_answer(0, 7200, 1000, NONCE, 40123),
        pcp_answer(2, 0, 1000, NONCE, 0),
        unsupported_version(5),
    ];
    for answer in &answers {
        for n in 0..=answer.len() {
            let mut m = new_map(t0);
            m.handle_datagram(GW, &answer[..n], t0);
        }
        for i in 0..answer.len() {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0x81, 0xff] {
                let mut b = answer.clone();
                b[i] = v;
                let mut m = new_map(t0);
                drain(&mut m);
                m.handle_datagram(GW, &b, t0);
                for o in drain(&mut m) {
                    assert!(!matches!(o, Output::Report(Report::GatewayRestarted)));
                }
            }
        }
    }
    let mut m = new_map(t0);
    for len in [4usize, 8, 20, 24, 28, 56, 60, 64, 1096, 1100, 1104, 4000] {
        m.handle_datagram(GW, &vec![0xff; len], t0);
        m.handle_datagram(GW, &vec![2; len], t0);
    }
}
