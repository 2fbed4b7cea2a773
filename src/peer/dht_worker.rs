//! The bridge to the `mainline` crate, which runs the DHT node on a thread of its own. This
//! worker owns the crate's handle, takes [`Request`]s over a channel and sends [`Reply`]s
//! back, calling `notify` after each (which wakes the reactor as `Control::Work`), like the
//! hash worker and the resolver. It decides nothing: what to publish and when is `dht.rs`'s.
//!
//! Threads: the worker's own (starting the node, then handing requests out), one that makes
//! the puts one after another (the record, the announcements), and a short-lived one per
//! lookup, so a slow put never holds up a `get`. `mainline`'s blocking API is deprecated: its
//! futures are driven with `futures_lite::future::block_on` on these threads. If the crate's
//! thread dies, its handle panics in whichever of our threads used it; the worker then sends
//! [`Reply::Failed`] once, and the node runs on without the DHT.

use super::dht::{Reply, Request};
use super::dht_record::{RECORD_SALT, ed25519_public, signed_record};
use crate::identity::Identity;
use futures_lite::StreamExt;
use futures_lite::future::block_on;
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id, MutableItem};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

/// How a DHT node is started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhtOptions {
    /// Nodes to join the DHT through (`IP:PORT`); empty: the public Mainline bootstrap nodes.
    pub bootstrap: Vec<SocketAddrV4>,
    /// UDP port of this node (0: the system picks one).
    pub port: u16,
    /// Address to bind to (`None`: every address).
    pub bind: Option<Ipv4Addr>,
    /// Answer other nodes' queries and store their items from the start (`p2p dht-node`).
    pub server: bool,
}

impl DhtOptions {
    /// What the start-up line says the node joins through.
    pub fn bootstrap_text(&self) -> String {
        if self.bootstrap.is_empty() {
            let public = mainline::DEFAULT_BOOTSTRAP_NODES.join(", ");
            format!("the public Mainline DHT ({public})")
        } else {
            let list: Vec<String> = self.bootstrap.iter().map(|a| a.to_string()).collect();
            list.join(", ")
        }
    }

    /// Starts a `mainline` node as these options say (its thread runs until the handle and
    /// every clone of it are dropped).
    pub fn build(&self) -> io::Result<Dht> {
        let mut b = Dht::builder();
        if !self.bootstrap.is_empty() {
            b.bootstrap(&self.bootstrap);
        }
        b.port(self.port);
        if let Some(ip) = self.bind {
            b.bind_address(ip);
        }
        if self.server {
            b.server_mode();
        }
        b.build()
    }
}

pub struct DhtWorker {
    tx: Sender<Request>,
    rx: Receiver<Reply>,
    failed: bool,
}

/// Runs `f`, turning a panic of `mainline`'s handle (its thread is gone) into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| "the DHT thread stopped unexpectedly".to_string())
}

impl DhtWorker {
    /// Starts the worker; it starts the DHT node and reports [`Reply::Started`] or
    /// [`Reply::Failed`] first. `identity` signs the address record.
    pub fn spawn(
        options: DhtOptions,
        identity: Arc<Identity>,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> io::Result<DhtWorker> {
        let (tx, requests) = channel::<Request>();
        let (replies, rx) = channel::<Reply>();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(notify);
        std::thread::Builder::new()
            .name("dht".into())
            .spawn(move || run(options, identity, requests, replies, notify))?;
        Ok(DhtWorker {
            tx,
            rx,
            failed: false,
        })
    }

    /// Hands `request` to the worker (dropped if the worker is gone: it has said so).
    pub fn send(&self, request: Request) {
        let _ = self.tx.send(request);
    }

    /// The next reply, if any; a worker that ended says [`Reply::Failed`] once.
    pub fn try_recv(&mut self) -> Option<Reply> {
        match self.rx.try_recv() {
            Ok(reply) => Some(reply),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => (!std::mem::replace(&mut self.failed, true))
                .then(|| Reply::Failed("the DHT worker ended".into())),
        }
    }
}

type Notify = Arc<dyn Fn() + Send + Sync>;

fn reply(replies: &Sender<Reply>, notify: &Notify, r: Reply) -> bool {
    let sent = replies.send(r).is_ok();
    if sent {
        notify();
    }
    sent
}

fn run(
    options: DhtOptions,
    identity: Arc<Identity>,
    requests: Receiver<Request>,
    replies: Sender<Reply>,
    notify: Notify,
) {
    // `mainline` mostly returns an error for a port it cannot bind, but now and then its
    // thread ends first and the builder panics instead: both are the same failure.
    let built = guarded(|| options.build()).and_then(|b| b.map_err(|e| e.to_string()));
    let dht = match built {
        Ok(dht) => dht.as_async(),
        Err(e) => {
            let why = format!(
                "cannot start the DHT node on UDP port {}: {e}",
                options.port
            );
            reply(&replies, &notify, Reply::Failed(why));
            return;
        }
    };
    let info = guarded(|| block_on(dht.info()));
    let local = match info {
        Ok(info) => info.local_addr(),
        Err(why) => {
            reply(&replies, &notify, Reply::Failed(why));
            return;
        }
    };
    let started = Reply::Started {
        local: local.into(),
    };
    if !reply(&replies, &notify, started) {
        return;
    }
    // Whether any node answers is known only after a query times out (2 s): lookups and puts
    // do not wait for it.
    let joining = {
        let (dht, replies, notify) = (dht.clone(), replies.clone(), notify.clone());
        move || {
            let joined = guarded(|| {
                block_on(async {
                    let bootstrapped = dht.bootstrapped().await;
                    let public = dht.info().await.public_address();
                    (bootstrapped, public.map(|a| (*a.ip()).into()))
                })
            });
            let r = match joined {
                Ok((bootstrapped, public_ip)) => Reply::Joined {
                    bootstrapped,
                    public_ip,
                },
                Err(why) => Reply::Failed(why),
            };
            reply(&replies, &notify, r);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("dht-join".into())
        .spawn(joining)
    {
        reply(
            &replies,
            &notify,
            Reply::Failed(format!("cannot start a DHT thread: {e}")),
        );
        return;
    }
    // Each request on a thread of its own: a put waits for the slowest of the closest nodes
    // (up to the 2 s request timeout), and `dht.rs` keeps at most a few puts in flight.
    for request in requests {
        let (dht, identity, replies, notify) = (
            dht.clone(),
            Arc::clone(&identity),
            replies.clone(),
            notify.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("dht-query".into())
            .spawn(move || match request {
                Request::PutRecord { .. } | Request::Announce { .. } => {
                    let r = put(&dht, &identity, request);
                    reply(&replies, &notify, r);
                }
                Request::FindSources { .. } | Request::FindRecord { .. } => {
                    lookup(&dht, request, &replies, &notify)
                }
            });
        if let Err(e) = spawned {
            // The deadlines of `dht.rs` answer for the request.
            tracing::warn!("cannot start a DHT query thread: {e}");
        }
    }
}

fn put(dht: &AsyncDht, identity: &Identity, request: Request) -> Reply {
    match request {
        Request::PutRecord { value, seq } => {
            let item = signed_record(identity.private_key(), &value, seq);
            let result = guarded(|| block_on(dht.put_mutable(item, None)))
                .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
            Reply::RecordPut { seq, result }
        }
        Request::Announce { info_hash, port } => {
            let result = guarded(|| block_on(dht.announce_peer(Id::from(info_hash), Some(port))))
                .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
            Reply::Announced { info_hash, result }
        }
        other => unreachable!("not a put: {other:?}"),
    }
}

fn lookup(dht: &AsyncDht, request: Request, replies: &Sender<Reply>, notify: &Notify) {
    match request {
        Request::FindSources { lookup, info_hash } => {
            let streamed = guarded(|| {
                block_on(async {
                    let mut stream = dht.get_peers(Id::from(info_hash));
                    while let Some(batch) = stream.next().await {
                        let addrs = batch.into_iter().map(SocketAddr::V4).collect();
                        let r = Reply::Sources {
                            lookup,
                            addrs,
                            done: false,
                        };
                        if !reply(replies, notify, r) {
                            return;
                        }
                    }
                })
            });
            if let Err(why) = streamed {
                tracing::warn!("DHT lookup: {why}");
            }
            let done = Reply::Sources {
                lookup,
                addrs: Vec::new(),
                done: true,
            };
            reply(replies, notify, done);
        }
        Request::FindRecord { lookup, key } => {
            let value = ed25519_public(&key)
                .and_then(|public| most_recent(dht, public))
                .map(|item| item.value().to_vec());
            reply(replies, notify, Reply::Record { lookup, value });
        }
        other => unreachable!("not a lookup: {other:?}"),
    }
}

/// `p2p dht-node`: a DHT node in server mode on `listen`, joining through `bootstrap` (none:
/// the first node of a new network; never the public nodes). Prints `dht node listening on
/// ADDR` and serves until SIGINT or SIGTERM.
pub fn run_dht_node(listen: SocketAddrV4, bootstrap: Vec<SocketAddrV4>) -> io::Result<i32> {
    use std::io::Write;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let mut b = Dht::builder();
    if bootstrap.is_empty() {
        b.no_bootstrap();
    } else {
        b.bootstrap(&bootstrap);
    }
    let dht = b
        .port(listen.port())
        .bind_address(*listen.ip())
        .server_mode()
        .build()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?
        .as_async();
    let local = guarded(|| block_on(dht.info()))
        .map_err(io::Error::other)?
        .local_addr();
    let mut out = io::stdout().lock();
    writeln!(out, "dht node listening on {local}")?;
    out.flush()?;
    drop(out);
    signals.forever().next();
    Ok(0)
}

/// How long a record lookup waits, after the first record arrives, for a more recent one
/// (the query itself ends only when its slowest node answers or times out, 2 s).
const RECORD_GRACE: Duration = Duration::from_millis(250);

/// The most recent record of `public` that arrives within [`RECORD_GRACE`] of the first one.
fn most_recent(dht: &AsyncDht, public: [u8; 32]) -> Option<MutableItem> {
    let (items, arriving) = channel::<MutableItem>();
    let dht = dht.clone();
    let spawned = std::thread::Builder::new()
        .name("dht-get".into())
        .spawn(move || {
            let streamed = guarded(|| {
                block_on(async {
                    let mut stream = dht.get_mutable(&public, Some(RECORD_SALT), None);
                    while let Some(item) = stream.next().await {
                        if items.send(item).is_err() {
                            return;
                        }
                    }
                })
            });
            if let Err(why) = streamed {
                tracing::warn!("DHT lookup: {why}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a DHT query thread: {e}");
        return None;
    }
    let mut best = arriving.recv().ok()?;
    let until = Instant::now() + RECORD_GRACE;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match arriving.recv_timeout(left) {
            Ok(item) if item.seq() > best.seq() => best = item,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::dht::LookupId;
    use crate::peer::dht_record::{Record, content_info_hash, encode_record, parse_record};

    fn next(w: &mut DhtWorker) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = w.try_recv() {
                return r;
            }
            assert!(Instant::now() < deadline, "no reply within 20 s");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Against `mainline`'s own test network on 127.0.0.1: the record put through the worker
    /// (signed by XEdDSA) is stored by nodes that check BEP 44 signatures, and found again by
    /// the key alone; an announcement is found by its info-hash.
    #[test]
    fn records_and_announcements_round_trip_through_a_local_testnet() {
        let testnet = mainline::Testnet::builder(5).build().unwrap();
        let bootstrap = (testnet.bootstrap.iter())
            .map(|a| a.parse().unwrap())
            .collect();
        let options = DhtOptions {
            bootstrap,
            port: 0,
            bind: Some(Ipv4Addr::LOCALHOST),
            server: false,
        };
        let id = Arc::new(Identity::generate().unwrap());
        let mut w = DhtWorker::spawn(options, Arc::clone(&id), || {}).unwrap();
        assert!(matches!(next(&mut w), Reply::Started { .. }));
        assert!(matches!(
            next(&mut w),
            Reply::Joined {
                bootstrapped: true,
                ..
            }
        ));
        let record = Record {
            addrs: vec!["127.0.0.1:4321".parse().unwrap()],
            at: 77,
        };
        let value = encode_record(&record).unwrap();
        w.send(Request::PutRecord { value, seq: 77 });
        assert_eq!(
            next(&mut w),
            Reply::RecordPut {
                seq: 77,
                result: Ok(())
            }
        );
        let info_hash = content_info_hash(&format!("cid1:{}", "01".repeat(32)));
        w.send(Request::Announce {
            info_hash,
            port: 4321,
        });
        assert_eq!(
            next(&mut w),
            Reply::Announced {
                info_hash,
                result: Ok(())
            }
        );

        w.send(Request::FindRecord {
            lookup: LookupId(1),
            key: *id.public_key(),
        });
        let Reply::Record {
            lookup: LookupId(1),
            value: Some(found),
        } = next(&mut w)
        else {
            panic!("no record found")
        };
        assert_eq!(parse_record(&found).unwrap(), record);
        let other = Identity::generate().unwrap();
        w.send(Request::FindRecord {
            lookup: LookupId(2),
            key: *other.public_key(),
        });
        assert_eq!(
            next(&mut w),
            Reply::Record {
                lookup: LookupId(2),
                value: None
            }
        );

        w.send(Request::FindSources {
            lookup: LookupId(3),
            info_hash,
        });
        let mut found = Vec::new();
        loop {
            match next(&mut w) {
                Reply::Sources { addrs, done, .. } => {
                    found.extend(addrs);
                    if done {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            found.contains(&"127.0.0.1:4321".parse().unwrap()),
            "{found:?}"
        );
    }

    /// A node that cannot bind says so, and the worker ends cleanly.
    #[test]
    fn a_dht_that_cannot_start_says_why() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = DhtOptions {
            bootstrap: vec!["127.0.0.1:9".parse().unwrap()],
            port: taken.local_addr().unwrap().port(),
            bind: Some(Ipv4Addr::LOCALHOST),
            server: false,
        };
        let id = Arc::new(Identity::generate().unwrap());
        let mut w = DhtWorker::spawn(options, id, || {}).unwrap();
        let Reply::Failed(why) = next(&mut w) else {
            panic!()
        };
        assert!(why.contains("cannot start the DHT node"), "{why}");
        assert!(
            matches!(next(&mut w), Reply::Failed(_)),
            "the ended worker says so"
        );
        assert!(w.try_recv().is_none(), "once");
    }
}
