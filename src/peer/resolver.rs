//! Host-name lookups off the reactor's thread. `connect HOST:PORT` used to resolve with a
//! blocking `to_socket_addrs` on the reactor: a slow or absent DNS server froze every
//! connection for as long as the system resolver took (seconds per attempt).
//!
//! Like the disk jobs (`disk_jobs.rs`), each lookup runs on a short-lived thread of its own
//! and sends its [`Resolved`] back over a channel, then calls `notify`, which wakes the
//! reactor (as `Control::Work`); the node drains the answers with [`Resolver::try_recv`]. The
//! node waits a bounded time for an answer (`exchange::LOOKUP_TIMEOUT`): a thread stuck in the
//! system resolver is left to finish, and its late answer is dropped. Without a reactor
//! (`Resolver::inline`, for a node driven by hand) a lookup runs at once and its answer waits
//! for the next `try_recv`.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

/// A lookup's number, unique within one [`Resolver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LookupId(u64);

#[derive(Debug)]
pub struct Resolved {
    pub id: LookupId,
    /// The first address the name resolves to, or why there is none.
    pub result: Result<SocketAddr, String>,
}

/// What resolves a `HOST:PORT`: the system's resolver, or a stand-in in tests.
pub type LookupFn = Arc<dyn Fn(&str) -> Result<SocketAddr, String> + Send + Sync>;

enum Mode {
    Threads {
        tx: Sender<Resolved>,
        notify: Arc<dyn Fn() + Send + Sync>,
    },
    Inline,
}

pub struct Resolver {
    mode: Mode,
    lookup: LookupFn,
    rx: Receiver<Resolved>,
    ready: VecDeque<Resolved>,
    next: u64,
}

/// Resolves `host` (`HOST:PORT`) with the system's resolver, blocking.
pub fn system_lookup(host: &str) -> Result<SocketAddr, String> {
    host.to_socket_addrs()
        .map_err(|e| e.to_string())
        .and_then(|mut all| all.next().ok_or_else(|| "no address found".to_string()))
}

impl Resolver {
    /// Lookups on threads of their own; `notify` is called after each answer is sent.
    pub fn threads(notify: impl Fn() + Send + Sync + 'static) -> Resolver {
        Resolver::threads_with(notify, Arc::new(system_lookup))
    }

    /// [`Self::threads`] with `lookup` instead of the system's resolver.
    pub fn threads_with(notify: impl Fn() + Send + Sync + 'static, lookup: LookupFn) -> Resolver {
        let (tx, rx) = channel();
        let notify = Arc::new(notify);
        Resolver {
            mode: Mode::Threads { tx, notify },
            lookup,
            rx,
            ready: VecDeque::new(),
            next: 1,
        }
    }

    /// Lookups run at once by the caller; answers still come out of [`Self::try_recv`].
    pub fn inline() -> Resolver {
        let (_tx, rx) = channel();
        Resolver {
            mode: Mode::Inline,
            lookup: Arc::new(system_lookup),
            rx,
            ready: VecDeque::new(),
            next: 1,
        }
    }

    /// Starts looking `host` up.
    pub fn lookup(&mut self, host: &str) -> LookupId {
        let id = LookupId(self.next);
        self.next += 1;
        let lookup = Arc::clone(&self.lookup);
        match &self.mode {
            Mode::Inline => self.ready.push_back(Resolved {
                id,
                result: lookup(host),
            }),
            Mode::Threads { tx, notify } => {
                let (tx, notify, host_for_thread) =
                    (tx.clone(), Arc::clone(notify), host.to_string());
                let spawned = std::thread::Builder::new()
                    .name("lookup".into())
                    .spawn(move || {
                        let result = lookup(&host_for_thread);
                        if tx.send(Resolved { id, result }).is_ok() {
                            notify();
                        }
                    });
                if let Err(e) = spawned {
                    // No thread to be had (resource limits): say so rather than block here.
                    let result = Err(format!("cannot start a thread to look the name up: {e}"));
                    self.ready.push_back(Resolved { id, result });
                }
            }
        }
        id
    }

    /// The next answer, if any.
    pub fn try_recv(&mut self) -> Option<Resolved> {
        self.ready.pop_front().or_else(|| self.rx.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn wait_for(r: &mut Resolver) -> Resolved {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(done) = r.try_recv() {
                return done;
            }
            assert!(Instant::now() < deadline, "no answer within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_slow_lookup_does_not_hold_up_the_caller_and_wakes_it_when_done() {
        let (release, gate) = channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let slow: LookupFn = Arc::new(move |host: &str| {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(30));
            Ok(format!("10.0.0.1:{}", host.rsplit(':').next().unwrap())
                .parse()
                .unwrap())
        });
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        let mut r = Resolver::threads_with(move || _ = w.fetch_add(1, Ordering::SeqCst), slow);
        let started = Instant::now();
        let id = r.lookup("slow.example:4000");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the caller waited"
        );
        assert!(r.try_recv().is_none());
        release.send(()).unwrap();
        let done = wait_for(&mut r);
        assert_eq!(done.id, id);
        assert_eq!(done.result, Ok("10.0.0.1:4000".parse().unwrap()));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_system_resolver_answers_for_localhost_and_refuses_nonsense() {
        let mut r = Resolver::inline();
        let a = r.lookup("localhost:4000");
        let b = r.lookup("no port here");
        let first = r.try_recv().unwrap();
        assert_eq!(first.id, a);
        let addr = first.result.unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 4000, "{addr}");
        let second = r.try_recv().unwrap();
        assert_eq!(second.id, b);
        assert!(second.result.is_err());
    }
}
