//! LAN discovery in fake time: announcements carried to every peer of the group.

use super::peer_rows;
use crate::sim::{PEER_PORT, PeerSpec, Sim};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// From `tests/lan_netns/` (its waiting part; the namespace test keeps the real link). A
/// peer listening only on 127.0.0.1 says its announcements are off and never announces, over
/// many rounds; a peer on the LAN address is heard and listed as `lan`, the other never.
#[test]
fn a_peer_listening_only_on_loopback_is_never_announced_on_the_lan() {
    let mut sim = Sim::new();
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 70, 80), 9001);
    let carol = sim.add_peer(PeerSpec::new("Carol").lan(group));
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), PEER_PORT);
    let alice = sim.add_peer(PeerSpec::new("Alice").lan(group).at(loopback));
    assert!(
        sim.stdout(alice)
            .iter()
            .any(|l| l.starts_with("LAN announcements are off") && l.contains("127.0.0.1")),
        "{}",
        sim.diagnostics(alice)
    );
    // Carol announces every 5 s (and at once when she hears a newcomer); 12 s covers two of
    // Alice's rounds too, had she announced.
    let bob = sim.add_peer(
        PeerSpec::new("Bob")
            .lan(group)
            .batch("wait-peer Carol 15\nsleep 12\npeers\n"),
    );
    assert_eq!(
        sim.run_to_exit(bob, Duration::from_secs(60)),
        0,
        "Bob never heard Carol over the LAN\n{}",
        sim.diagnostics(bob)
    );
    let out = sim.diagnostics(bob);
    let rows = peer_rows(&sim.stdout(bob));
    let carol_addr = sim.addr(carol).to_string();
    assert!(
        rows.iter()
            .any(|r| r[0] == "Carol" && r[1] == carol_addr && r[3] == "lan"),
        "Carol is not listed as a LAN peer\n{out}"
    );
    assert!(
        !rows.iter().any(|r| r[0] == "Alice"),
        "Alice, listening only on 127.0.0.1, was announced on the LAN\n{out}"
    );
    // And for a minute more: Alice never sends one announcement, Carol keeps announcing.
    let carol_before = sim.datagrams_sent(carol);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.datagrams_sent(alice), 0, "{}", sim.diagnostics(alice));
    assert!(sim.datagrams_sent(carol) >= carol_before + 10);
}
