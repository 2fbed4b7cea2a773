//! The node's side of the tracker link (`tracker_link.rs`): feeds it what the reactor reports,
//! carries out its transmits, and acts on its events (tell the user, merge the peer list, let
//! waiting commands and downloads go on). No rule of the link lives here.

use super::event::{Event, Warning};
use super::exchange::merge_tracker_list;
use super::node::{ConnectPurpose, PeerNode};
use super::tracker_link::{LinkEvent, Transmit};
use crate::reactor::ConnId;
use std::time::Instant;

impl PeerNode {
    pub(super) fn tracker_tick(&mut self, now: Instant) {
        self.tracker.handle_timeout(now);
        self.tracker_drain(now);
    }

    pub(super) fn tracker_connected(&mut self, conn: ConnId, now: Instant) {
        self.tracker.handle_connected(conn, now);
        self.tracker_drain(now);
    }

    pub(super) fn tracker_connect_failed(&mut self, why: &str, now: Instant) {
        self.tracker.handle_connect_failed(why, now);
        self.tracker_drain(now);
    }

    pub(super) fn tracker_closed(&mut self, conn: ConnId, why: &str, now: Instant) {
        self.tracker.handle_closed(conn, why, now);
        self.tracker_drain(now);
    }

    pub(super) fn tracker_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        self.tracker.handle_frame(conn, body, now);
        self.tracker_drain(now);
    }

    /// Asks the tracker for the peer list (once at a time). Returns false if there is no
    /// tracker to ask.
    pub(super) fn request_peer_list(&mut self) -> bool {
        self.request_peer_list_naming(None)
    }

    /// [`Self::request_peer_list`], asking for `name` by name (see
    /// [`TrackerLink::request_peer_list`]).
    pub(super) fn request_peer_list_naming(&mut self, name: Option<&str>) -> bool {
        let asked = self.tracker.request_peer_list(name);
        self.tracker_transmits();
        asked
    }

    /// On exit: tell the tracker we are leaving (closing the connection does it too).
    pub(super) fn tracker_goodbye(&mut self) {
        self.tracker.goodbye();
        self.tracker_transmits();
    }

    /// Carries out what the link asks, then acts on what it reports, until it has nothing
    /// more (acting on an event may ask the link for the list again).
    fn tracker_drain(&mut self, now: Instant) {
        loop {
            self.tracker_transmits();
            let Some(event) = self.tracker.poll_event() else {
                return;
            };
            self.tracker_event(event, now);
        }
    }

    fn tracker_transmits(&mut self) {
        while let Some(t) = self.tracker.poll_transmit() {
            match t {
                Transmit::Connect(addr) => {
                    let expected = self.cfg.tracker_id;
                    self.connect(addr, ConnectPurpose::Tracker, expected)
                }
                Transmit::Hello(conn) => self.send_hello(conn),
                Transmit::Send(conn, msg) => self.send(conn, &msg),
                Transmit::Close(conn) => self.close(conn),
            }
        }
    }

    fn tracker_event(&mut self, event: LinkEvent, now: Instant) {
        let tracker = self.tracker.addr().to_string();
        match event {
            LinkEvent::Registered { again } => {
                self.ui.event(&Event::Registered { tracker, again });
            }
            LinkEvent::NameRefused { reason, retry } => {
                self.ui.event(&Event::NameRefused {
                    tracker,
                    name: self.cfg.name.clone(),
                    reason,
                    retry_secs: retry.as_secs().max(1),
                });
            }
            LinkEvent::Lost {
                reason, announce, ..
            } => {
                if announce && !self.exiting {
                    let event = Event::TrackerUnreachable { tracker, reason };
                    self.ui.event(&event);
                }
                self.ready = true;
                // A command waiting for the peer list gets its answer: there is none.
                self.op_peer_list_arrived(now);
                self.downloads_peer_event(now);
            }
            LinkEvent::PeerList { peers, sample } => {
                self.ready = true;
                let connected = self.connected_names();
                merge_tracker_list(&mut self.known, &peers, sample, now, |n| {
                    connected.contains(n)
                });
                self.op_peer_list_arrived(now);
                self.downloads_peer_event(now);
            }
            LinkEvent::TrackerError { message, .. } => {
                self.ui.event(&Event::Warning(Warning::Tracker { message }));
            }
            LinkEvent::RelayOffer { session, from } => self.relay_offer(session, from, now),
        }
    }
}
