//! The peer's link to the tracker when things go wrong quietly: a tracker that stops answering
//! without closing (a seeder whose address changed), and a tracker that gives our name to
//! someone else (started while a stale registration lives, or after a stall). In every case the
//! peer keeps running, says why, and gets its registration back by itself.

mod common;
mod hardening_support;

use common::*;
use hardening_support::{hello, recv, recv_until, send};
use p2p::wire::{ErrorCode, Message};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

/// What a scripted fake tracker saw on one connection.
#[derive(Debug)]
struct Seen {
    /// 0 for the first connection, 1 for the next, ...
    conn: usize,
    /// When the last answer of the script went out (the silence starts there).
    at: Instant,
    /// The `Register` frames the script read on this connection.
    registers: usize,
}

/// A fake tracker on 127.0.0.1: each accepted connection is handed to `script` with its number;
/// what the script reports goes to the returned channel. Connections are held open (unread)
/// after the script returns, like a tracker whose host vanished.
fn fake_tracker(
    script: impl Fn(usize, &mut TcpStream, &Sender<Seen>) + Send + 'static,
) -> (SocketAddr, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake tracker");
    let addr = listener.local_addr().expect("local_addr");
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut held = Vec::new();
        for (n, s) in listener.incoming().enumerate() {
            let Ok(mut s) = s else { return };
            // Every read in a script is bounded: a peer that sends nothing fails the test,
            // it does not hang it.
            let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
            script(n, &mut s, &tx);
            held.push(s);
        }
    });
    (addr, rx)
}

/// Reads the peer's `Hello` and answers it like a tracker.
fn handshake(s: &mut TcpStream) -> bool {
    matches!(recv(s), Ok(Message::Hello { .. })) && send(s, &hello("")).is_ok()
}

/// Reads frames up to the next `Register` and returns its `req`.
fn next_register(s: &mut TcpStream) -> Option<u64> {
    match recv_until(s, |m| matches!(m, Message::Register { .. })) {
        Ok(Message::Register { req, .. }) => Some(req),
        _ => None,
    }
}

/// Answers the first `ListPeers` (the peer asks right after `Registered`) with an empty list.
fn answer_list(s: &mut TcpStream) -> bool {
    match recv_until(s, |m| matches!(m, Message::ListPeers { .. })) {
        Ok(Message::ListPeers { req, .. }) => send(
            s,
            &Message::Peers {
                req,
                peers: Vec::new(),
                total: None,
            },
        )
        .is_ok(),
        _ => false,
    }
}

fn registered(s: &mut TcpStream, req: u64, ttl_secs: u64) -> bool {
    send(s, &Message::Registered { req, ttl_secs }).is_ok()
}

/// Hello, Register and ListPeers answered (TTL 3 s: a heartbeat interval of 1 s); then silence.
fn answer_then_go_silent(n: usize, s: &mut TcpStream, tx: &Sender<Seen>) {
    let ok =
        handshake(s) && next_register(s).is_some_and(|req| registered(s, req, 3)) && answer_list(s);
    if ok {
        let _ = tx.send(Seen {
            conn: n,
            at: Instant::now(),
            registers: 1,
        });
    }
}

/// A tracker link that goes silently dead (the tracker's host vanished: nothing is read,
/// nothing answered, nothing closed) is noticed and replaced: a new connection registers again
/// within one heartbeat interval + the 10 s answer timeout + the first reconnect delay. Before,
/// heartbeats went unanswered by design and the peer never noticed.
#[test]
fn a_tracker_link_that_goes_silent_is_dropped_and_registered_again() {
    let (addr, seen) = fake_tracker(answer_then_go_silent);
    let dirs = PeerDirs::new();
    let mut alice = Proc::spawn(
        "Alice",
        peer_command("Alice", addr, &dirs, &["--serve"]),
        None,
    );
    let first = seen.recv_timeout(STARTUP).expect("a first registration");
    let second = seen
        .recv_timeout(Duration::from_secs(25))
        .unwrap_or_else(|_| panic!("no second registration\n{}", alice.diagnostics()));
    assert_eq!((first.conn, second.conn), (0, 1));
    let noticed = second.at - first.at;
    // 1 s heartbeat interval + 10 s answer timeout + 0.25-0.5 s reconnect delay.
    assert!(
        noticed >= Duration::from_secs(10) && noticed < Duration::from_secs(14),
        "registered again {noticed:?} after the tracker went silent"
    );
    assert!(alice.is_running(), "{}", alice.diagnostics());
    let err = alice.stderr_text();
    assert!(err.contains("no answer within 10s"), "{err}");
}

/// A raw connection that holds `name` at `tracker` and keeps it alive with heartbeats until the
/// value is dropped (then the connection closes, which frees the name at once).
struct NameHolder {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NameHolder {
    /// Registers `name`, trying again (every 100 ms, for at most `within`) while it is taken.
    fn take(tracker: SocketAddr, name: &str, within: Duration) -> NameHolder {
        let mut s = TcpStream::connect(tracker).expect("holder: connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &hello(name)).unwrap();
        assert!(matches!(recv(&mut s), Ok(Message::Hello { .. })));
        let deadline = Instant::now() + within;
        for req in 1.. {
            let register = Message::Register {
                req,
                name: name.to_string(),
                listen_port: 9,
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

/// The peer is still running `for_at_least` from now (it was told its name is taken; before,
/// it exited with status 1 at once).
fn assert_keeps_running(proc: &mut Proc, for_at_least: Duration) {
    if let Some(status) = proc.try_wait_for(for_at_least) {
        panic!(
            "exited ({status:?}) instead of going on\n{}",
            proc.diagnostics()
        );
    }
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

/// Started while a live registration holds its name (a restart within the TTL, or a namesake):
/// the peer warns, keeps serving without the tracker, and registers as soon as the name is free.
#[test]
fn a_name_held_by_a_live_registration_is_waited_for() {
    let tracker = Tracker::start();
    let holder = NameHolder::take(tracker.addr, "Alice", Duration::ZERO);
    let dirs = PeerDirs::new();
    let mut alice = serve_json("Alice", tracker.addr, &dirs);
    let refused = wait_event(&mut alice, "name_refused", STARTUP);
    assert_refusal_said(&mut alice, &refused);
    // Past the first two retries (1 s, then 2 s later).
    assert_keeps_running(&mut alice, Duration::from_secs(4));

    drop(holder);
    // Retries come at most 10 s apart while the tracker's TTL is unknown.
    let back = wait_event(&mut alice, "registered", Duration::from_secs(15));
    assert_eq!(back["again"], false, "{back}");
    assert!(alice.is_running());
}

/// A stall longer than the TTL (SIGSTOP) lets the registration expire and someone else take
/// the name; the returning peer is refused, keeps running, and gets its name back once the
/// other registration goes away.
#[test]
fn a_name_taken_during_a_stall_is_got_back() {
    let tracker = Tracker::start_with(&["--peer-ttl", "2"]);
    let dirs = PeerDirs::new();
    let mut alice = serve_json("Alice", tracker.addr, &dirs);
    wait_event(&mut alice, "registered", STARTUP);

    alice.signal(libc::SIGSTOP);
    // Taken as soon as Alice's registration expires (2 s after her last keep-alive).
    let holder = NameHolder::take(tracker.addr, "Alice", Duration::from_secs(10));
    alice.signal(libc::SIGCONT);

    let refused = wait_event(&mut alice, "name_refused", Duration::from_secs(10));
    assert_refusal_said(&mut alice, &refused);
    assert_keeps_running(&mut alice, Duration::from_secs(2));

    drop(holder);
    // Retries come at most one heartbeat interval (TTL / 3) apart.
    let back = wait_event(&mut alice, "registered", Duration::from_secs(10));
    assert_eq!(back["again"], true, "{back}");
}

/// Registered, then the link drops; on the new connection the name is refused as taken. The
/// peer keeps the connection, asks again on it, and is registered when the tracker agrees.
#[test]
fn a_name_refused_after_a_reconnect_is_asked_for_again_on_the_same_link() {
    let (addr, seen) = fake_tracker(|n, s, tx| {
        if !handshake(s) {
            return;
        }
        let Some(req) = next_register(s) else { return };
        if n == 0 {
            // Registered, then the link breaks.
            if registered(s, req, 30) && answer_list(s) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            return;
        }
        let taken = Message::Error {
            req: Some(req),
            code: ErrorCode::NameTaken,
            message: "the name 'Alice' is taken by a live peer at 127.0.0.1:9".into(),
        };
        if send(s, &taken).is_err() {
            return;
        }
        if let Some(req) = next_register(s)
            && registered(s, req, 30)
        {
            let _ = tx.send(Seen {
                conn: n,
                at: Instant::now(),
                registers: 2,
            });
        }
    });
    let dirs = PeerDirs::new();
    let mut alice = serve_json("Alice", addr, &dirs);
    wait_event(&mut alice, "registered", STARTUP);
    let refused = wait_event(&mut alice, "name_refused", Duration::from_secs(10));
    assert_refusal_said(&mut alice, &refused);
    let seen = seen
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no second Register\n{}", alice.diagnostics()));
    assert_eq!((seen.conn, seen.registers), (1, 2));
    let back = wait_event(&mut alice, "registered", Duration::from_secs(5));
    assert_eq!(back["again"], true, "{back}");
    assert!(alice.is_running());
}
