//! The node's side of port mapping: the PCP/NAT-PMP machine (`port_map.rs`) on the reactor's
//! port-mapping UDP socket, its timer in the node's deadline merge, and what a mapping changes:
//! the external address goes to the tracker link (`Register`'s `external`) and the DHT record,
//! and the user hears one line at start. `app.rs` opens the socket and finds the gateway.
//! When PCP and NAT-PMP fail, UPnP-IGD is asked next (`upnp_glue.rs`).

use super::event::{Event, Notice, Warning};
use super::node::PeerNode;
use super::port_map::{Output, PortMap, Report};
use crate::reactor::{Action, UdpSocketId};
use std::net::SocketAddr;
use std::time::Instant;

/// Port mapping is on: the routers to ask, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapConfig {
    /// Whether PCP and NAT-PMP are asked (not with `--no-lan` unless `--gateway` is given).
    pub pcp: bool,
    /// `--gateway` (`P2P_GATEWAY`); `None`: the default route's gateway (`gateway.rs`).
    pub gateway: Option<SocketAddr>,
    /// Where UPnP-IGD's SSDP search goes (`--upnp-search`, or the SSDP group
    /// 239.255.255.250:1900); `None`: UPnP-IGD is not tried (`--no-lan` without
    /// `--upnp-search`).
    pub upnp_search: Option<SocketAddr>,
}

pub struct PortMapLink {
    map: PortMap,
    /// The reactor's socket the gateway is asked from (and answers to).
    socket: UdpSocketId,
    /// The start-up line (mapped, or why not) has been said.
    said_first: bool,
}

impl PortMapLink {
    pub fn new(map: PortMap, socket: UdpSocketId) -> PortMapLink {
        PortMapLink {
            map,
            socket,
            said_first: false,
        }
    }
}

impl PeerNode {
    /// Asks for a port mapping through `link` (on by default; `app.rs`).
    pub fn set_port_map(&mut self, link: PortMapLink, now: Instant) {
        self.port_map = Some(Box::new(link));
        self.port_map_pump(now);
    }

    /// The external address a router maps to our listen port now, if any: PCP's or
    /// NAT-PMP's, else UPnP-IGD's.
    pub fn mapped_addr(&self) -> Option<SocketAddr> {
        let pcp = self.port_map.as_ref().and_then(|l| l.map.mapped());
        pcp.map(SocketAddr::V4).or_else(|| self.upnp_mapped())
    }

    /// The mapped address, whichever protocol made it, to the tracker link (`Register`'s
    /// `external`) and the DHT record.
    pub(super) fn publish_mapped(&mut self, now: Instant) {
        let mapped = self.mapped_addr();
        self.tracker.set_external(mapped, now);
        if let Some(dht) = self.dht.as_mut() {
            dht.set_mapped(mapped, now);
        }
    }

    /// A datagram on `socket`: the gateway's if it is the port-mapping socket (true).
    pub(super) fn port_map_datagram(
        &mut self,
        socket: UdpSocketId,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> bool {
        let Some(link) = self.port_map.as_mut().filter(|l| l.socket == socket) else {
            return false;
        };
        link.map.handle_datagram(from, bytes, now);
        self.port_map_pump(now);
        true
    }

    pub(super) fn port_map_tick(&mut self, now: Instant) {
        if let Some(link) = self.port_map.as_mut() {
            link.map.handle_timeout(now);
            self.port_map_pump(now);
        }
    }

    pub(super) fn port_map_deadline(&self) -> Option<Instant> {
        self.port_map.as_ref()?.map.poll_timeout()
    }

    /// Clean shutdown: the mapping is deleted (the datagram goes out before the reactor's
    /// `Exit`, which comes after it in the action queue).
    pub(super) fn port_map_shutdown(&mut self, now: Instant) {
        if let Some(link) = self.port_map.as_mut() {
            link.map.shutdown();
            self.port_map_pump(now);
        }
    }

    /// Carries out what the machine asks: datagrams to the gateway, reports to the user, the
    /// new address to the tracker link and the DHT.
    fn port_map_pump(&mut self, now: Instant) {
        let Some(link) = self.port_map.as_mut() else {
            return;
        };
        let mut reports = Vec::new();
        while let Some(out) = link.map.poll_output() {
            match out {
                Output::Send(to, bytes) => {
                    self.actions
                        .push_back(Action::SendDatagramOn(link.socket, to, bytes));
                }
                Output::Report(r) => reports.push(r),
            }
        }
        let first = !link.said_first;
        if !reports.is_empty() {
            link.said_first = true;
        }
        let gateway = link.map.gateway();
        for report in reports {
            match report {
                Report::Mapped {
                    external,
                    lifetime,
                    via,
                } => {
                    self.ui.event(&Event::Notice(Notice::PortMapped {
                        external: external.to_string(),
                        internal_port: self.listen_port,
                        lifetime_secs: lifetime.as_secs(),
                        via: via.to_string(),
                    }));
                }
                // UPnP-IGD is the next to ask; it says the start-up line, naming both.
                Report::Failed { why } if first => {
                    self.upnp_fallback(Some(format!("{why} (gateway {gateway})")));
                }
                Report::Failed { why } => {
                    self.ui.event(&Event::Warning(Warning::PortMapLost {
                        why: format!("{why} (gateway {gateway})"),
                    }));
                }
                Report::GatewayRestarted => {
                    tracing::info!("the gateway {gateway} restarted; mapping the port again")
                }
            }
        }
        self.publish_mapped(now);
    }
}
