//! The benchmark of `benches/transfer.rs` at smoke size (16 MiB, 200 tracker peers, a 20 ms
//! delayed link): checks that every row is produced and plausible. No speed thresholds: the
//! machines that run tests are noisy. The full benchmark is `cargo bench --bench transfer`.

#[allow(dead_code)]
#[path = "../benches/perf/mod.rs"]
mod perf;

#[test]
fn benchmark_smoke_produces_sane_figures() {
    let cfg = perf::Config::smoke();
    let results = perf::run(&cfg).unwrap_or_else(|e| panic!("benchmark failed: {e}"));
    let table = results.table(&cfg);
    println!("{table}");
    if let Err(why) = results.check_sane(&cfg) {
        panic!("implausible figure: {why}\n{table}");
    }
}

/// Row 6's packet-level link (where the kernel has no netem): every byte crosses it intact,
/// and the delay is on the packets, so even TCP's own handshake takes the round trip (the
/// TCP proxy of `delay.rs` cannot do that). Needs root and /dev/net/tun; skips saying why.
#[test]
fn the_tun_link_delays_every_packet_and_keeps_every_byte() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: TUN devices and network namespaces need root");
        return;
    }
    if let Err(why) = perf::tun_link::TunLink::available() {
        eprintln!("skipped: no TUN link here: {why}");
        return;
    }
    let one_way = Duration::from_millis(20);
    let link = perf::tun_link::TunLink::create("test", one_way).expect("the link");
    let listener = TcpListener::bind((link.far, 0)).expect("a listener at FAR");
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, from) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        s.read_exact(&mut buf).expect("the bytes");
        s.write_all(&buf).expect("echo");
        from
    });
    let ns = std::fs::File::open(format!("/var/run/netns/{}", link.ns)).expect("netns file");
    let near = std::thread::spawn(move || {
        // This thread alone moves into the namespace: its sockets are at NEAR.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let started = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        let connected = started.elapsed();
        let sent: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
        s.write_all(&sent).expect("send");
        let mut back = vec![0u8; sent.len()];
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.read_exact(&mut back).expect("the echo");
        (connected, started.elapsed(), sent == back)
    });
    let (connected, total, same) = near.join().expect("the near side");
    let from = echo.join().expect("the far side");
    assert_eq!(from.ip(), link.near, "the connection came over the link");
    assert!(same, "the echo differs from what was sent");
    assert!(
        connected >= 2 * one_way,
        "TCP's handshake took {connected:?}, less than the round trip"
    );
    assert!(
        total >= 4 * one_way,
        "connect and echo took {total:?}, less than two round trips"
    );
}
