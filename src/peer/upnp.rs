//! UPnP-IGD port mapping (PROTOCOL.md §19.5), the fallback after PCP and NAT-PMP: a small
//! pure state value [`Upnp`] that decides what to ask and when (map, renew at half the lease,
//! retry after a lost mapping, delete at shutdown) and what to tell the node, and a helper
//! thread (`p2p-upnp`, [`UpnpWorker`]) that does `igd-next`'s blocking calls one job at a
//! time and sends each result back over a channel, waking the reactor.
//!
//! Imports: `igd-next` and std only (no node state); `upnp_glue.rs` is the node's side.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// The lease asked for, in seconds (as for PCP and NAT-PMP: two hours).
pub const LEASE_SECS: u32 = 7200;
/// After a lost mapping (a renewal refused), the next try.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// The description the router shows next to the mapping.
pub const DESCRIPTION: &str = "p2p";
/// How long the SSDP search waits for a gateway's answer in all.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a clean shutdown waits for the gateway to confirm the deletion.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the gateway search goes by default: the SSDP multicast group (UPnP Device
/// Architecture 1.1, §1.3.2).
pub const SSDP_GROUP: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(239, 255, 255, 250),
    1900,
));

/// `--upnp-search`: an IPv4 address, with port 1900 unless another is given.
pub fn parse_search(s: &str) -> Result<SocketAddr, String> {
    super::gateway::ipv4_with_port(s, SSDP_GROUP.port())
        .filter(|a| !a.ip().is_unspecified())
        .map(SocketAddr::V4)
        .ok_or_else(|| {
            format!("'{s}' is not an IPv4 address (IP or IP:PORT, e.g. 192.168.1.1:1900)")
        })
}

/// What the thread is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// Search the gateway (unless found before), read its external address and map
    /// `internal_port`, asking for the same external port first.
    Map { internal_port: u16 },
    /// Ask again for the mapping we hold (AddPortMapping with the same values).
    Renew {
        external_port: u16,
        internal_port: u16,
    },
    /// DeletePortMapping (clean shutdown).
    Remove { external_port: u16 },
}

/// What the thread answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The mapping holds: `external` for `lease`.
    Mapped {
        external: SocketAddr,
        lease: Duration,
    },
    /// Why not, in words.
    Failed { why: String },
    /// The deletion's outcome (`None`: deleted).
    Removed { why_not: Option<String> },
}

/// What the node is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A new external address (the first mapping, or after a lost one, or a changed one).
    Mapped {
        external: SocketAddr,
        lease: Duration,
    },
    /// The first try failed: port mapping is off (said once, with the PCP/NAT-PMP reason).
    Failed { why: String },
    /// A mapping we held is gone (renewal refused); asking again in [`RETRY_AFTER`].
    Lost { why: String },
}

/// The pure state: whether a job is out, the mapping held, the next renewal or retry.
#[derive(Debug)]
pub struct Upnp {
    internal_port: u16,
    /// Some job is with the thread (one at a time).
    busy: bool,
    started: bool,
    /// The mapping held: external address and when to renew.
    mapped: Option<(SocketAddr, Instant)>,
    /// A map attempt to make at this moment (a retry after a lost mapping).
    retry_at: Option<Instant>,
    /// A first result has been reported (mapped or failed).
    said_first: bool,
    stopped: bool,
}

impl Upnp {
    pub fn new(internal_port: u16) -> Upnp {
        Upnp {
            internal_port,
            busy: false,
            started: false,
            mapped: None,
            retry_at: None,
            said_first: false,
            stopped: false,
        }
    }

    /// The first attempt (after PCP and NAT-PMP failed): the job to hand the thread.
    pub fn start(&mut self) -> Option<Job> {
        if self.started || self.stopped {
            return None;
        }
        self.started = true;
        self.busy = true;
        Some(Job::Map {
            internal_port: self.internal_port,
        })
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// The external address mapped to our port now.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.mapped.map(|(a, _)| a)
    }

    /// A reply from the thread: what to tell the node, if anything.
    pub fn handle_reply(&mut self, reply: Reply, now: Instant) -> Option<Report> {
        self.busy = false;
        if self.stopped {
            return None;
        }
        match reply {
            Reply::Mapped { external, lease } => {
                let before = self.mapped();
                // Renew at half the lease (a lease under 2 s: in a second).
                let renew = (lease / 2).max(Duration::from_secs(1));
                self.mapped = Some((external, now + renew));
                self.retry_at = None;
                self.said_first = true;
                (before != Some(external)).then_some(Report::Mapped { external, lease })
            }
            Reply::Failed { why } => {
                if !self.said_first {
                    self.said_first = true;
                    return Some(Report::Failed { why });
                }
                if self.mapped.take().is_some() {
                    self.retry_at = Some(now + RETRY_AFTER);
                    return Some(Report::Lost { why });
                }
                // A retry that failed again: try later, quietly.
                self.retry_at = Some(now + RETRY_AFTER);
                None
            }
            Reply::Removed { .. } => None,
        }
    }

    /// When [`Upnp::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.busy || self.stopped {
            return None;
        }
        self.mapped.map(|(_, at)| at).or(self.retry_at)
    }

    /// The job due at `now`, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Job> {
        if self.poll_timeout().is_none_or(|at| now < at) {
            return None;
        }
        self.busy = true;
        match self.mapped {
            Some((external, _)) => Some(Job::Renew {
                external_port: external.port(),
                internal_port: self.internal_port,
            }),
            None => {
                self.retry_at = None;
                Some(Job::Map {
                    internal_port: self.internal_port,
                })
            }
        }
    }

    /// Clean shutdown: the deletion to ask for, if a mapping is held. Nothing after it.
    pub fn shutdown(&mut self) -> Option<Job> {
        self.stopped = true;
        let (external, _) = self.mapped.take()?;
        Some(Job::Remove {
            external_port: external.port(),
        })
    }
}

/// Where and how to search the gateway.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Where the M-SEARCH goes (the SSDP group 239.255.255.250:1900, or `--upnp-search`).
    pub search: SocketAddr,
    /// Our address to search from (the listener's, or unspecified).
    pub bind_ip: IpAddr,
}

/// The thread: jobs in, replies out (each reply wakes the reactor through `notify`).
pub struct UpnpWorker {
    jobs: Sender<Job>,
    replies: Receiver<Reply>,
}

impl UpnpWorker {
    pub fn spawn(
        config: SearchConfig,
        notify: impl Fn() + Send + 'static,
    ) -> std::io::Result<UpnpWorker> {
        let (jobs, job_rx) = channel::<Job>();
        let (reply_tx, replies) = channel::<Reply>();
        std::thread::Builder::new()
            .name("p2p-upnp".into())
            .spawn(move || {
                let mut client = Client {
                    config,
                    gateway: None,
                };
                for job in job_rx {
                    let reply = client.run(job);
                    if reply_tx.send(reply).is_err() {
                        return;
                    }
                    notify();
                }
            })?;
        Ok(UpnpWorker { jobs, replies })
    }

    pub fn send(&self, job: Job) {
        // A thread that is gone answers nothing; its last reply said why.
        let _ = self.jobs.send(job);
    }

    pub fn try_recv(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    /// Clean shutdown: `job` (a deletion), waiting at most `timeout` for it to be done.
    /// Replies still queued before it are skipped.
    pub fn finish(&self, job: Job, timeout: Duration) -> Option<Reply> {
        self.send(job);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.replies.recv_timeout(left) {
                Ok(reply @ Reply::Removed { .. }) => return Some(reply),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// The thread's side: `igd-next`'s blocking calls.
struct Client {
    config: SearchConfig,
    gateway: Option<igd_next::Gateway>,
}

impl Client {
    fn run(&mut self, job: Job) -> Reply {
        let (internal_port, want) = match job {
            Job::Map { internal_port } => (internal_port, None),
            Job::Renew {
                external_port,
                internal_port,
            } => (internal_port, Some(external_port)),
            Job::Remove { external_port } => {
                let why_not = match &self.gateway {
                    None => Some("no gateway".to_string()),
                    Some(gw) => gw
                        .remove_port(igd_next::PortMappingProtocol::TCP, external_port)
                        .err()
                        .map(|e| e.to_string()),
                };
                return Reply::Removed { why_not };
            }
        };
        match self.map(internal_port, want) {
            Ok(external) => Reply::Mapped {
                external,
                lease: Duration::from_secs(LEASE_SECS.into()),
            },
            Err(why) => Reply::Failed { why },
        }
    }

    fn gateway(&mut self) -> Result<&igd_next::Gateway, String> {
        if self.gateway.is_none() {
            let mut options = igd_next::SearchOptions::default();
            options.broadcast_address = self.config.search;
            options.bind_addr = SocketAddr::new(self.config.bind_ip, 0);
            options.timeout = Some(SEARCH_TIMEOUT);
            options.single_search_timeout = Some(Duration::from_secs(1));
            // igd-next trusts a description only at the IP that answered the search, and
            // never a loopback one; a search address given by hand (`--upnp-search`, a
            // router or a test's fake on this machine) is trusted as the user named it.
            if !self.config.search.ip().is_multicast() {
                options.allowed_gateway_ips = vec![self.config.search.ip()];
            }
            let gw = igd_next::search_gateway(options).map_err(|e| {
                format!(
                    "no gateway answered the search at {}: {e}",
                    self.config.search
                )
            })?;
            self.gateway = Some(gw);
        }
        Ok(self.gateway.as_ref().expect("just set"))
    }

    /// Maps our port: the same external port (or `want`), else any the gateway gives.
    fn map(&mut self, internal_port: u16, want: Option<u16>) -> Result<SocketAddr, String> {
        let gw = self.gateway()?.clone();
        let external_ip = gw
            .get_external_ip()
            .map_err(|e| format!("the gateway {} gave no external address: {e}", gw.addr))?;
        // A router not connected upstream yet answers 0.0.0.0: nothing to publish.
        if external_ip.is_unspecified() {
            return Err(format!(
                "the gateway {} has no external address yet ({external_ip})",
                gw.addr
            ));
        }
        // The router forwards to the address it sees our requests come from.
        let local_ip =
            crate::reactor::local_ip_towards(SocketAddr::new(self.config.bind_ip, 0), gw.addr)
                .map_err(|e| format!("no route to the gateway {}: {e}", gw.addr))?;
        let local = SocketAddr::new(local_ip, internal_port);
        let tcp = igd_next::PortMappingProtocol::TCP;
        let external_port = want.unwrap_or(internal_port);
        let mut added = gw.add_port(tcp, external_port, local, LEASE_SECS, DESCRIPTION);
        if let Err(igd_next::AddPortError::OnlyPermanentLeasesSupported) = added {
            // Older IGDs (UPnP 1.0) take only lease 0, "until deleted": we still renew it at
            // the same pace and delete it at shutdown.
            added = gw.add_port(tcp, external_port, local, 0, DESCRIPTION);
        }
        match added {
            Ok(()) => Ok(SocketAddr::new(external_ip, external_port)),
            Err(igd_next::AddPortError::PortInUse) if want.is_none() => gw
                .add_any_port(tcp, local, LEASE_SECS, DESCRIPTION)
                .map(|port| SocketAddr::new(external_ip, port))
                .map_err(|e| format!("the gateway {} refused the mapping: {e}", gw.addr)),
            Err(e) => Err(format!("the gateway {} refused the mapping: {e}", gw.addr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(port: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 7], port))
    }

    const LEASE: Duration = Duration::from_secs(7200);

    /// The thread's answer: `ext(port)` mapped for [`LEASE`].
    fn mapped(port: u16) -> Reply {
        Reply::Mapped {
            external: ext(port),
            lease: LEASE,
        }
    }

    #[test]
    fn maps_once_then_renews_at_half_the_lease_without_a_second_report() {
        let t0 = Instant::now();
        let mut u = Upnp::new(4000);
        assert_eq!(u.poll_timeout(), None, "nothing before the start");
        assert_eq!(
            u.start(),
            Some(Job::Map {
                internal_port: 4000
            })
        );
        assert_eq!(u.start(), None, "one start");
        assert_eq!(u.poll_timeout(), None, "busy");
        let r = u.handle_reply(mapped(4000), t0);
        assert_eq!(
            r,
            Some(Report::Mapped {
                external: ext(4000),
                lease: LEASE
            })
        );
        assert_eq!(u.mapped(), Some(ext(4000)));
        let renew = t0 + Duration::from_secs(3600);
        assert_eq!(u.poll_timeout(), Some(renew));
        assert_eq!(u.handle_timeout(renew - Duration::from_secs(1)), None);
        assert_eq!(
            u.handle_timeout(renew),
            Some(Job::Renew {
                external_port: 4000,
                internal_port: 4000
            })
        );
        assert_eq!(u.poll_timeout(), None, "busy while renewing");
        let r = u.handle_reply(mapped(4000), renew);
        assert_eq!(r, None, "a renewal is not news");
        assert_eq!(u.poll_timeout(), Some(renew + Duration::from_secs(3600)));
    }

    #[test]
    fn a_first_failure_is_reported_once_and_nothing_more_is_asked() {
        let t0 = Instant::now();
        let mut u = Upnp::new(4000);
        u.start();
        let r = u.handle_reply(
            Reply::Failed {
                why: "no gateway".into(),
            },
            t0,
        );
        assert_eq!(
            r,
            Some(Report::Failed {
                why: "no gateway".into()
            })
        );
        assert_eq!(u.poll_timeout(), None);
        assert_eq!(u.mapped(), None);
        assert_eq!(u.shutdown(), None, "nothing to delete");
    }

    #[test]
    fn a_refused_renewal_is_a_lost_mapping_and_a_retry_a_minute_later() {
        let t0 = Instant::now();
        let mut u = Upnp::new(4000);
        u.start();
        u.handle_reply(mapped(4001), t0);
        let at = u.poll_timeout().unwrap();
        u.handle_timeout(at);
        let r = u.handle_reply(
            Reply::Failed {
                why: "refused".into(),
            },
            at,
        );
        assert_eq!(
            r,
            Some(Report::Lost {
                why: "refused".into()
            })
        );
        assert_eq!(u.mapped(), None);
        assert_eq!(u.poll_timeout(), Some(at + RETRY_AFTER));
        assert_eq!(
            u.handle_timeout(at + RETRY_AFTER),
            Some(Job::Map {
                internal_port: 4000
            })
        );
        // Failing again is quiet, and tried again later.
        let later = at + RETRY_AFTER;
        assert_eq!(
            u.handle_reply(
                Reply::Failed {
                    why: "still".into()
                },
                later
            ),
            None
        );
        assert_eq!(u.poll_timeout(), Some(later + RETRY_AFTER));
        // Mapped again: news (the address is back).
        u.handle_timeout(later + RETRY_AFTER);
        let r = u.handle_reply(mapped(4001), later);
        assert!(matches!(r, Some(Report::Mapped { .. })));
    }

    #[test]
    fn shutdown_deletes_the_mapping_held_and_then_asks_nothing() {
        let t0 = Instant::now();
        let mut u = Upnp::new(4000);
        u.start();
        u.handle_reply(mapped(5000), t0);
        assert_eq!(
            u.shutdown(),
            Some(Job::Remove {
                external_port: 5000
            })
        );
        assert_eq!(u.mapped(), None);
        assert_eq!(u.poll_timeout(), None);
        assert_eq!(u.start(), None);
        assert_eq!(u.handle_reply(Reply::Removed { why_not: None }, t0), None);
    }

    #[test]
    fn a_search_address_is_ipv4_with_the_ssdp_port_unless_given() {
        assert_eq!(
            parse_search("192.168.1.1"),
            Ok("192.168.1.1:1900".parse().unwrap())
        );
        assert_eq!(
            parse_search("127.0.0.1:4000"),
            Ok("127.0.0.1:4000".parse().unwrap())
        );
        for bad in ["router", "0.0.0.0", "10.0.0.1:0", "[::1]:1900", ""] {
            let why = parse_search(bad).unwrap_err();
            assert!(why.contains("not an IPv4 address"), "{bad}: {why}");
        }
    }

    #[test]
    fn a_short_lease_is_renewed_no_faster_than_every_second() {
        let t0 = Instant::now();
        let mut u = Upnp::new(4000);
        u.start();
        u.handle_reply(
            Reply::Mapped {
                external: ext(1),
                lease: Duration::ZERO,
            },
            t0,
        );
        assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    }
}
