//! The peer's link to the tracker when its name is taken, end to end: the `name_refused`
//! event in `--json`, the warning on stderr, and the registration once the name is free.
//!
//! The protocol logic of this file moved to the in-memory harness, where it runs in fake time
//! (`src/sim/tests/tracker_link.rs`): `a_tracker_link_that_goes_silent_is_dropped_and_registered_again`,
//! `a_name_held_by_a_live_registration_is_waited_for` (its retry timing),
//! `a_name_taken_during_a_stall_is_got_back` and
//! `a_name_refused_after_a_reconnect_is_asked_for_again_on_the_same_link`. What stays here is
//! what needs a process: the events as a script reads them and the text a person reads.

mod common;
mod hardening_support;

use common::*;
use hardening_support::{hello, recv, send};
use p2p::identity::Identity;
use p2p::secure::{Role, SecureStream};
use p2p::wire::{ErrorCode, Message};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A hand-made connection that holds `name` at `tracker` under the key `identity` and keeps it
/// alive with heartbeats until the value is dropped (then the connection closes, which ends
/// the registration; the name stays that key's for a day).
struct NameHolder {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NameHolder {
    /// Registers `name`, trying again (every 100 ms, for at most `within`) while it is taken.
    fn take(tracker: SocketAddr, name: &str, identity: &Identity, within: Duration) -> NameHolder {
        let tcp = TcpStream::connect(tracker).expect("holder: connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut s = SecureStream::handshake(tcp, Role::Initiator, identity, None).unwrap();
        send(&mut s, &hello(name)).unwrap();
        assert!(matches!(recv(&mut s), Ok(Message::Hello { .. })));
        let deadline = Instant::now() + within;
        for req in 1.. {
            let register = Message::Register {
                req,
                name: name.to_string(),
                listen_port: 9,
                external: None,
            };
            send(&mut s, &register).unwrap();
            match recv(&mut s) {
                Ok(Message::Registered { .. }) => break,
                Ok(Message::Error {
                    code: ErrorCode::NameTaken,
                    ..
                }) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                other => panic!("holder: cannot register {name}: {other:?}"),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if send(&mut s, &Message::Heartbeat).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            // Dropping `s` closes the connection.
        });
        NameHolder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NameHolder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts NAME with `--serve --json` and waits for its `listening` event.
fn serve_json(name: &str, tracker: SocketAddr, dirs: &PeerDirs) -> Proc {
    let cmd = peer_command(name, tracker, dirs, &["--serve", "--json"]);
    let mut proc = Proc::spawn(name, cmd, None);
    proc.wait_line("a listening event", STARTUP, |l| {
        l.contains("\"type\":\"listening\"")
    });
    proc
}

fn wait_event(proc: &mut Proc, kind: &str, timeout: Duration) -> serde_json::Value {
    let tag = format!("\"type\":\"{kind}\"");
    let line = proc.wait_line(&format!("a {kind} event"), timeout, |l| l.contains(&tag));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

fn assert_refusal_said(proc: &mut Proc, event: &serde_json::Value) {
    assert_eq!(event["name"], "Alice", "{event}");
    let reason = event["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("taken"), "{event}");
    // stderr is read on a thread of its own: the line may trail the JSON event a little.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let err = proc.stderr_text();
        if err.contains("warning: the tracker") && err.contains("refused the name 'Alice'") {
            return;
        }
        if Instant::now() >= deadline {
            panic!("no clear warning on stderr:\n{err}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Started while another key holds its name: the peer reports the refusal as a `name_refused`
/// event and a warning on stderr, and keeps serving. The holder leaves, but the name stays its
/// key's (a peer that stalled past its time to live gets it back, an impostor does not): the
/// peer is refused again, and the holder's key, back from a new connection, has it at once.
#[test]
fn a_name_held_for_another_key_is_refused_and_stays_that_keys() {
    let tracker = Tracker::start();
    let holder_key = Identity::generate().unwrap();
    let holder = NameHolder::take(tracker.addr, "Alice", &holder_key, Duration::ZERO);
    let dirs = PeerDirs::new();
    let mut alice = serve_json("Alice", tracker.addr, &dirs);
    let refused = wait_event(&mut alice, "name_refused", STARTUP);
    assert_refusal_said(&mut alice, &refused);
    assert!(alice.is_running(), "{}", alice.diagnostics());

    drop(holder);
    // Alice asks again within 10 s: refused, as held for the other key.
    let mut tracker = tracker;
    tracker
        .proc
        .wait_line("Alice refused again", Duration::from_secs(15), |l| {
            l.starts_with("refused Alice") && l.contains("the name is held for")
        });
    let registered = alice
        .lines_so_far()
        .iter()
        .any(|l| l.contains("\"type\":\"registered\""));
    assert!(!registered, "{}", alice.diagnostics());
    assert!(alice.is_running());
    let _back = NameHolder::take(tracker.addr, "Alice", &holder_key, Duration::ZERO);
}

/// `tracker --state DIR`, started in a folder of its own: its first two lines are the address
/// and its id.
fn tracker_in(state: &std::path::Path) -> (Proc, SocketAddr, String) {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["tracker", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .current_dir(cwd.path());
    let mut proc = Proc::spawn("tracker", cmd, None);
    let line = proc.next_line("`tracker listening on ADDR`", STARTUP);
    let addr = line
        .strip_prefix("tracker listening on ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let id = proc.next_line("`tracker id ID`", STARTUP);
    let id = id
        .strip_prefix("tracker id ")
        .unwrap_or_else(|| panic!("{id:?}"));
    (proc, addr, id.to_string())
}

/// A tracker stopped and started again on its state folder keeps its id and the names it held:
/// Alice's key registered and left; after the restart another key is refused her name, and
/// her key gets it.
#[test]
fn a_restarted_tracker_keeps_its_key_and_the_names_it_holds() {
    let state = tempfile::tempdir().unwrap();
    let (mut first, addr, id) = tracker_in(state.path());
    let alice = Identity::generate().unwrap();
    drop(NameHolder::take(addr, "Alice", &alice, Duration::ZERO));
    first.wait_line("Alice left", STARTUP, |l| l == "Alice left");
    first.signal(libc::SIGTERM);
    assert!(first.wait_exit(STARTUP).success());
    let holds = std::fs::read_to_string(state.path().join("holds")).expect("holds saved");
    assert!(holds.contains("Alice "), "{holds}");

    let (_second, addr, again) = tracker_in(state.path());
    assert_eq!(again, id, "a restarted tracker keeps its id");
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let other = Identity::generate().unwrap();
    let mut s = SecureStream::handshake(tcp, Role::Initiator, &other, None).unwrap();
    send(&mut s, &hello("Alice")).unwrap();
    assert!(matches!(recv(&mut s), Ok(Message::Hello { .. })));
    let register = Message::Register {
        req: 1,
        name: "Alice".into(),
        listen_port: 9,
        external: None,
    };
    send(&mut s, &register).unwrap();
    match recv(&mut s) {
        Ok(Message::Error {
            code: ErrorCode::NameTaken,
            message,
            ..
        }) => assert!(message.contains("belongs to another peer"), "{message}"),
        other => panic!("another key got a held name: {other:?}"),
    }
    let _back = NameHolder::take(addr, "Alice", &alice, Duration::ZERO);
}

/// `--tracker-id`: a peer given the tracker's id registers; given another id, it finds the
/// tracker's link proving another key, says so and works without it; a malformed id is a
/// usage error.
#[test]
fn tracker_id_pins_the_trackers_key() {
    let state = tempfile::tempdir().unwrap();
    let (_tracker, addr, id) = tracker_in(state.path());
    let dirs = PeerDirs::new();
    let out = run_batch_with(
        "Alice",
        addr,
        &dirs,
        "",
        &["--tracker-id", &id],
        BATCH_TIMEOUT,
    );
    out.assert_success();
    assert!(out.stdout.contains("registered with tracker"), "{out}");

    let other = Identity::generate().unwrap().peer_id().to_string();
    let bob = PeerDirs::new();
    let out = run_batch_with(
        "Bob",
        addr,
        &bob,
        "",
        &["--tracker-id", &other],
        BATCH_TIMEOUT,
    );
    out.assert_success();
    assert!(!out.stdout.contains("registered with tracker"), "{out}");
    assert!(
        out.stderr.contains(&id) && out.stderr.contains(&other),
        "the warning names both keys:\n{out}"
    );

    let out = run_batch_with(
        "Carol",
        addr,
        &bob,
        "",
        &["--tracker-id", "nonsense"],
        BATCH_TIMEOUT,
    );
    assert_eq!(out.code(), Some(2), "{out}");
}
