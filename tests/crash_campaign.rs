//! Crash campaign (issue 11): the receiver of one download SIGKILLed at random moments, then
//! restarted, again and again; at the end the file must be identical, and no kill may cost
//! more than what can be in flight (the bytes the seeder sent are measured and printed). Optionally the seeder is frozen (SIGSTOP) mid-download for a
//! while and the download must come back by itself.
//!
//! `cargo test --release` runs a bounded form (5 kills on 256 MiB, no freeze). The full run:
//!
//! ```text
//! P2P_CAMPAIGN_KILLS=100 P2P_CAMPAIGN_MIB=1024 P2P_CAMPAIGN_STOP_SECS=30 \
//!     cargo test --release --test crash_campaign
//! ```
//!
//! `P2P_CAMPAIGN_SEED` picks the kill moments (printed, so a failing run can be replayed).

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Bytes the process has handed to write(2)/send(2) so far (its sockets included).
fn bytes_written(pid: u32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/PID/io")
}

/// xorshift64*: reproducible kill moments from a printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn batch_command(bob: &PeerDirs, tracker: std::net::SocketAddr, retry_for: &str) -> Proc {
    let get = "wait-peer Alice 10\nget Alice big.bin\n";
    spawn_batch("Bob", tracker, bob, get, &["--retry-for", retry_for])
}

fn main() {
    let kills = env_u64("P2P_CAMPAIGN_KILLS", 5);
    let size = env_u64("P2P_CAMPAIGN_MIB", 256) as usize * MIB;
    let stop_secs = env_u64("P2P_CAMPAIGN_STOP_SECS", 0);
    let seed = env_u64(
        "P2P_CAMPAIGN_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    println!(
        "crash campaign: {kills} kills of the receiver, {} MiB, seed {seed}{}",
        size / MIB,
        if stop_secs > 0 {
            format!(", seeder frozen {stop_secs}s")
        } else {
            String::new()
        }
    );
    let started = Instant::now();
    let content = pseudo_random(size, seed);
    let tracker = Tracker::start();
    let mut alice = Peer::serve("Alice", tracker.addr, &[("big.bin", &content)]);
    let alice_pid = alice.proc.pid();
    let bob = PeerDirs::new();
    let final_path = bob.downloads.join("big.bin");
    let sent_before = bytes_written(alice_pid);
    let mut rng = Rng(seed);
    // Each run is killed once the seeder has sent a random amount in this run, on average
    // 1/kills of the file, so the kills spread over the whole download; an amount of 0 kills
    // it while it starts up and re-verifies its partial file.
    let mut done_early = false;
    let mut killed = 0;
    for k in 0..kills {
        let mut run = batch_command(&bob, tracker.addr, "60");
        let run_start = bytes_written(alice_pid);
        let target = rng.below(2 * size as u64 / kills.max(1));
        let deadline = Instant::now() + Duration::from_secs(60);
        while bytes_written(alice_pid) - run_start < target
            && run.is_running()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(500));
        }
        run.signal(libc::SIGKILL);
        run.wait_exit(EXIT_TIMEOUT);
        killed += 1;
        if final_path.exists() {
            // The kill came after the download finished: it must be the exact file.
            assert_file_eq(&final_path, &content);
            println!("  kill {}: the download had already finished", k + 1);
            done_early = true;
            break;
        }
    }
    if !done_early {
        let mut run = batch_command(&bob, tracker.addr, "120");
        if stop_secs > 0 {
            freeze_seeder_midway(&mut run, &mut alice, &bob, size as u64, stop_secs);
        }
        let status = run.wait_exit(Duration::from_secs(300 + stop_secs));
        assert_eq!(
            status.code(),
            Some(0),
            "the last run did not finish\n{}",
            run.diagnostics()
        );
    }
    assert_file_eq(&final_path, &content);
    let sent = bytes_written(alice_pid) - sent_before;
    let ratio = sent as f64 / size as f64;
    println!(
        "crash campaign: identical after {killed} kills; the seeder sent {sent} bytes = {ratio:.3}x \
         the file; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // What a kill may cost is what was in flight: the request window, at most what both
    // kernels buffer (about 10 MiB on loopback here). More than that per kill means a restart
    // fetched again what was already on disk.
    let waste_per_kill = sent.saturating_sub(size as u64) / killed.max(1);
    println!(
        "crash campaign: {:.1} MiB re-sent per kill (issue 11's target: at most 1.2x the file \
         after 100 kills on 1 GiB)",
        waste_per_kill as f64 / MIB as f64,
    );
    assert!(
        waste_per_kill <= 16 * MIB as u64,
        "each kill cost {waste_per_kill} bytes re-sent: more than what can be in flight"
    );
}

/// SIGSTOPs the seeder once a third of the file is here, for `secs`, then SIGCONTs it.
fn freeze_seeder_midway(run: &mut Proc, alice: &mut Peer, bob: &PeerDirs, size: u64, secs: u64) {
    let part = bob.downloads.join(".big.bin.p2p-part");
    let deadline = Instant::now() + Duration::from_secs(120);
    while fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < size / 3 {
        assert!(
            run.is_running() && Instant::now() < deadline,
            "the download ended or stalled before a third\n{}",
            run.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    alice.proc.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(secs));
    alice.proc.signal(libc::SIGCONT);
    println!("  seeder frozen for {secs}s, then continued");
}
