//! The node's side of UPnP-IGD (`upnp.rs`): started when PCP and NAT-PMP failed
//! (`port_map_glue.rs`), its replies taken on the reactor at `Control::Work`, its renewal
//! timer in the node's deadline merge; a mapping goes to the tracker link and the DHT record
//! as PCP's does, and the user hears one line (mapped, or both failures).

use super::event::{Event, Notice, Warning};
use super::node::PeerNode;
use super::upnp::{Job, Report, Upnp, UpnpWorker};
use std::net::SocketAddr;
use std::time::Instant;

pub struct UpnpLink {
    state: Upnp,
    /// The `p2p-upnp` thread, or why there is none (a loopback listener and a gateway
    /// elsewhere, or the system refused the thread): said when UPnP-IGD's turn comes.
    worker: Result<UpnpWorker, String>,
    /// Why PCP and NAT-PMP did not map (named with UPnP's failure); `None` when not asked.
    before: Option<String>,
}

impl UpnpLink {
    pub fn new(state: Upnp, worker: Result<UpnpWorker, String>) -> UpnpLink {
        UpnpLink {
            state,
            worker,
            before: None,
        }
    }
}

/// The start-up line when no protocol mapped: PCP's and NAT-PMP's reason, then UPnP-IGD's.
fn both_failed(before: Option<&str>, upnp: &str) -> String {
    match before {
        Some(pcp) => format!("{pcp}; UPnP-IGD: {upnp}"),
        None => format!("UPnP-IGD: {upnp}"),
    }
}

impl PeerNode {
    /// Hands the node the UPnP-IGD fallback (idle until [`PeerNode::upnp_fallback`]).
    pub fn set_upnp(&mut self, link: UpnpLink) {
        self.upnp = Some(Box::new(link));
    }

    /// PCP and NAT-PMP failed, or could not even be asked (`why`; `None` when they were not
    /// asked): UPnP-IGD next. Without the fallback the user hears `why` at once.
    pub fn upnp_fallback(&mut self, why: Option<String>) {
        let Some(link) = self.upnp.as_mut() else {
            if let Some(why) = why {
                self.ui.event(&Event::Notice(Notice::NoPortMapping { why }));
            }
            return;
        };
        if link.state.started() {
            return;
        }
        match &link.worker {
            Ok(worker) => {
                link.before = why;
                if let Some(job) = link.state.start() {
                    worker.send(job);
                }
            }
            Err(upnp) => {
                let why = both_failed(why.as_deref(), upnp);
                self.upnp = None;
                self.ui.event(&Event::Notice(Notice::NoPortMapping { why }));
            }
        }
    }

    pub(super) fn upnp_mapped(&self) -> Option<SocketAddr> {
        self.upnp.as_ref()?.state.mapped()
    }

    pub(super) fn upnp_reports(&mut self, now: Instant) {
        let Some(link) = self.upnp.as_mut() else {
            return;
        };
        let Ok(worker) = &link.worker else {
            return;
        };
        let mut reports = Vec::new();
        while let Some(reply) = worker.try_recv() {
            reports.extend(link.state.handle_reply(reply, now));
        }
        if reports.is_empty() {
            return;
        }
        let before = link.before.clone();
        for report in reports {
            match report {
                Report::Mapped { external, lease } => {
                    self.ui.event(&Event::Notice(Notice::PortMapped {
                        external: external.to_string(),
                        internal_port: self.listen_port,
                        lifetime_secs: lease.as_secs(),
                        via: "UPnP-IGD".to_string(),
                    }))
                }
                Report::Failed { why } => {
                    let why = both_failed(before.as_deref(), &why);
                    self.ui.event(&Event::Notice(Notice::NoPortMapping { why }));
                }
                Report::Lost { why } => self.ui.event(&Event::Warning(Warning::PortMapLost {
                    why: format!("UPnP-IGD: {why}"),
                })),
            }
        }
        self.publish_mapped(now);
    }

    pub(super) fn upnp_tick(&mut self, now: Instant) {
        let Some(link) = self.upnp.as_mut() else {
            return;
        };
        if let (Ok(worker), Some(job)) = (&link.worker, link.state.handle_timeout(now)) {
            worker.send(job);
        }
    }

    pub(super) fn upnp_deadline(&self) -> Option<Instant> {
        self.upnp.as_ref()?.state.poll_timeout()
    }

    /// Clean shutdown: the mapping is deleted, waiting for the gateway a bounded time
    /// (`upnp::REMOVE_TIMEOUT`) so the request is out before the process exits.
    pub(super) fn upnp_shutdown(&mut self) {
        let Some(link) = self.upnp.as_mut() else {
            return;
        };
        if let (Some(job @ Job::Remove { .. }), Ok(worker)) = (link.state.shutdown(), &link.worker)
        {
            match worker.finish(job, super::upnp::REMOVE_TIMEOUT) {
                Some(super::upnp::Reply::Removed { why_not: None }) => {
                    tracing::info!("UPnP-IGD mapping deleted")
                }
                Some(super::upnp::Reply::Removed { why_not: Some(why) }) => {
                    tracing::info!("UPnP-IGD mapping not deleted: {why}")
                }
                _ => tracing::info!("UPnP-IGD: the gateway did not confirm the deletion in time"),
            }
        }
    }
}
