//! `connect HOST:PORT` through a node driven by hand: the lookup runs beside the node, never
//! inside its calls, and the wait for it is bounded.

use crate::peer::index::SharedIndex;
use crate::peer::resolver::{LookupFn, Resolver};
use crate::peer::{Command, Recorder};
use crate::peer::{Mode, PeerConfig, PeerNode};
use crate::reactor::{Action, Control, Driver};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

fn batch_node(dir: &std::path::Path, now: Instant) -> PeerNode {
    let cfg = PeerConfig {
        name: "Me".into(),
        tracker: SocketAddr::from(([127, 0, 0, 1], 9)),
        tracker_id: None,
        shared_dir: dir.join("shared"),
        downloads_dir: dir.to_path_buf(),
        mode: Mode::Batch { then_serve: false },
        retry_for: Duration::from_secs(2),
        bootstrap: Vec::new(),
        lan: None,
        resume_on_start: false,
        rate_limits: Default::default(),
        dht: None,
        port_map: None,
        punch: true,
    };
    PeerNode::new(
        cfg,
        crate::identity::PeerId::from_public_key([1; 32]),
        SharedIndex::default(),
        4000,
        Recorder::new(),
        now,
    )
}

fn actions(node: &mut PeerNode) -> Vec<Action> {
    std::iter::from_fn(|| node.poll_action()).collect()
}

/// The tracker cannot be reached: commands run at once.
fn without_tracker(node: &mut PeerNode, now: Instant) {
    node.handle_timeout(now);
    let tag = actions(node)
        .into_iter()
        .find_map(|a| match a {
            Action::Connect(_, tag, _) => Some(tag),
            _ => None,
        })
        .expect("the node connects to the tracker");
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    node.handle_connect_failed(tag, refused, now);
    let _ = actions(node);
}

fn connects(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect(addr, _, _) => Some(*addr),
            _ => None,
        })
        .collect()
}

/// A resolver whose lookups answer `answer` once `release` sends (or after 30 s), counting
/// its wake-ups in `woken`.
fn gated(answer: Result<SocketAddr, String>) -> (Resolver, mpsc::Sender<()>, Arc<AtomicUsize>) {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let lookup: LookupFn = Arc::new(move |_: &str| {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(30));
        answer.clone()
    });
    let woken = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&woken);
    let notify = move || _ = w.fetch_add(1, Ordering::SeqCst);
    (Resolver::threads_with(notify, lookup), release, woken)
}

fn wait_woken(woken: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while woken.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the lookup never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_host_name_is_looked_up_beside_the_node_and_then_dialed() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut node = batch_node(dir.path(), t0);
    let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
    let (resolver, release, woken) = gated(Ok(peer));
    node.set_resolver(resolver);
    without_tracker(&mut node, t0);
    let started = Instant::now();
    node.handle_command(
        Command::Connect {
            addr: "peer.example:4000".into(),
        },
        t0,
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the node waited for the lookup"
    );
    assert_eq!(connects(&actions(&mut node)), [], "nothing to dial yet");
    release.send(()).unwrap();
    wait_woken(&woken);
    node.handle_control(Control::Work, t0 + Duration::from_millis(5));
    assert_eq!(connects(&actions(&mut node)), [peer]);
}

/// A lookup that does not answer within 10 s fails the command with a clear error (in a
/// batch: status 1); its late answer dials nothing.
#[test]
fn a_lookup_that_does_not_answer_in_time_fails_the_connect() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut node = batch_node(dir.path(), t0);
    let (resolver, release, woken) = gated(Ok("10.0.0.5:4000".parse().unwrap()));
    node.set_resolver(resolver);
    without_tracker(&mut node, t0);
    node.handle_command(
        Command::Connect {
            addr: "slow.example:4000".into(),
        },
        t0,
    );
    let timeout = crate::peer::exchange::LOOKUP_TIMEOUT;
    let due = node.poll_timeout().expect("a deadline");
    assert!(due <= t0 + timeout, "{:?}", due - t0);
    node.handle_timeout(t0 + timeout - Duration::from_millis(1));
    assert!(
        !actions(&mut node)
            .iter()
            .any(|a| matches!(a, Action::Exit(_)))
    );
    node.handle_timeout(t0 + timeout);
    let out = actions(&mut node);
    assert!(out.iter().any(|a| matches!(a, Action::Exit(1))), "{out:?}");
    release.send(()).unwrap();
    wait_woken(&woken);
    node.handle_control(Control::Work, t0 + timeout);
    assert_eq!(connects(&actions(&mut node)), []);
}

#[test]
fn a_name_that_does_not_resolve_fails_the_connect() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut node = batch_node(dir.path(), t0);
    let (resolver, release, woken) = gated(Err("no such host".into()));
    node.set_resolver(resolver);
    without_tracker(&mut node, t0);
    node.handle_command(
        Command::Connect {
            addr: "nowhere.invalid:4000".into(),
        },
        t0,
    );
    release.send(()).unwrap();
    wait_woken(&woken);
    node.handle_control(Control::Work, t0);
    let out = actions(&mut node);
    assert!(out.iter().any(|a| matches!(a, Action::Exit(1))), "{out:?}");
    assert_eq!(connects(&out), []);
}
