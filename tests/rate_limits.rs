//! Rate limits with the real binary over 127.0.0.1: a download limited globally with
//! `--max-down` and one limited per connection take as long as the limit says. Bounds are
//! generous because the machines that run tests are shared. The target figures (200 MiB
//! at 20 MB/s, a second peer at 5 MB/s) run only with `P2P_RATE_TARGET=1`.

mod common;

use std::time::Duration;

use common::*;

/// Seconds from the `saved ... in 3.14s` line.
fn saved_seconds(out: &BatchOutput, name: &str) -> f64 {
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved ") && l.contains(name))
        .unwrap_or_else(|| panic!("no `saved` line for {name}\n{out}"))
        .to_string();
    let after = line.split(" in ").nth(1).expect("` in ` in the saved line");
    let secs = after.split('s').next().expect("seconds");
    secs.parse()
        .unwrap_or_else(|_| panic!("no seconds in {line:?}"))
}

/// Bob downloads `size` bytes from Alice with `flags`; returns the seconds it took.
fn limited_download(size: usize, flags: &[&str], timeout: Duration) -> f64 {
    let content = pseudo_random(size, 17);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    let bob = PeerDirs::new();
    let batch = "wait-peer Alice 10\nget Alice big.bin\n";
    let out = run_batch_with("Bob", tracker.addr, &bob, batch, flags, timeout);
    out.assert_success();
    assert_file_eq(&bob.downloads.join("big.bin"), &content);
    let secs = saved_seconds(&out, "big.bin");
    println!("{flags:?}: {size} bytes in {secs:.2}s");
    secs
}

/// 12 MiB at 8 MB/s: 1.6 s (less the first bucket's 0.8 MB); an unlimited loopback download
/// of the same file takes a small fraction of that. (It was 24 MiB, 3.1 s: the size is not the
/// subject, the rate is, and the bound is the same ± 25%.)
#[test]
fn max_down_bounds_a_download_to_the_limit() {
    let secs = limited_download(12 << 20, &["--max-down", "8MB/s"], Duration::from_secs(60));
    let expected = (12 << 20) as f64 / 8e6;
    assert!(
        (secs - expected).abs() <= expected * 0.25,
        "took {secs:.2}s, expected {expected:.2}s ± 25%"
    );
}

/// The per-connection limit, given in binary units: 6 MiB at 4 MiB/s is 1.5 s (it was 12 MiB,
/// 3 s; same bound ± 25%).
#[test]
fn max_down_per_peer_bounds_a_download_from_one_peer() {
    let secs = limited_download(
        6 << 20,
        &["--max-down-per-peer", "4MiB/s"],
        Duration::from_secs(60),
    );
    assert!(
        (1.125..=1.875).contains(&secs),
        "took {secs:.2}s, expected 1.5s ± 25%"
    );
}

/// The upload side: Alice limits what she sends to 8 MB/s (12 MiB, 1.6 s; it was 16 MiB).
#[test]
fn max_up_on_the_source_bounds_the_download() {
    let content = pseudo_random(12 << 20, 5);
    let tracker = Tracker::start();
    let dirs = PeerDirs::with_files(&[("up.bin", &content)]);
    let _alice = Peer::serve_in("Alice", tracker.addr, dirs, &["--max-up", "8MB/s"]);
    let bob = PeerDirs::new();
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nget Alice up.bin\n",
        Duration::from_secs(60),
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("up.bin"), &content);
    let secs = saved_seconds(&out, "up.bin");
    println!("--max-up 8MB/s on the source: 12 MiB in {secs:.2}s");
    let expected = (12 << 20) as f64 / 8e6;
    assert!(
        (secs - expected).abs() <= expected * 0.25,
        "took {secs:.2}s, expected {expected:.2}s ± 25%"
    );
}

/// The target: with `--max-down 20MB/s` 200 MiB takes 10 s ± 10%, and a second peer
/// limited per peer to 5 MB/s gets 5 MB/s ± 10%. Opt-in: `P2P_RATE_TARGET=1 cargo test
/// --release --test rate_limits -- --nocapture target`.
#[test]
fn target_figures_200_mib_at_20_mb_s_and_5_mb_s_per_peer() {
    if std::env::var_os("P2P_RATE_TARGET").is_none() {
        eprintln!("skipped: set P2P_RATE_TARGET=1 to run");
        return;
    }
    let size = 200 << 20;
    let secs = limited_download(size, &["--max-down", "20MB/s"], Duration::from_secs(120));
    println!(
        "--max-down 20MB/s, 200 MiB: {secs:.2}s = {:.2} MB/s",
        size as f64 / secs / 1e6
    );
    let size2 = 50 << 20;
    let secs2 = limited_download(
        size2,
        &["--max-down-per-peer", "5MB/s"],
        Duration::from_secs(120),
    );
    let rate2 = size2 as f64 / secs2 / 1e6;
    println!("--max-down-per-peer 5MB/s, 50 MiB: {secs2:.2}s = {rate2:.2} MB/s");
    assert!((9.0..=11.0).contains(&secs), "{secs:.2}s");
    assert!((4.5..=5.5).contains(&rate2), "{rate2:.2} MB/s");
}

/// `limit down RATE` in a batch applies at once, and `limit` shows the limits (12 MiB at
/// 8 MB/s, 1.6 s; it was 16 MiB).
#[test]
fn the_limit_command_sets_and_shows_the_limits() {
    let content = pseudo_random(12 << 20, 9);
    let tracker = Tracker::start();
    let _alice = Peer::serve("Alice", tracker.addr, &[("lim.bin", &content)]);
    let bob = PeerDirs::new();
    let out = run_batch_timeout(
        "Bob",
        tracker.addr,
        &bob,
        "wait-peer Alice 10\nlimit down 8MB/s\nget Alice lim.bin\nlimit up-per-peer 1.5M\nlimit\n",
        Duration::from_secs(60),
    );
    out.assert_success();
    assert_file_eq(&bob.downloads.join("lim.bin"), &content);
    let lines = out.stdout_lines();
    assert!(
        lines.contains(&"rate limits: down 8 MB/s, up off; per peer: down off, up off"),
        "{out}"
    );
    assert!(
        lines.contains(&"rate limits: down 8 MB/s, up off; per peer: down off, up 1.5 MB/s"),
        "{out}"
    );
    let secs = saved_seconds(&out, "lim.bin");
    let expected = (12 << 20) as f64 / 8e6;
    assert!(
        (secs - expected).abs() <= expected * 0.25,
        "took {secs:.2}s, expected {expected:.2}s ± 25%"
    );
}
