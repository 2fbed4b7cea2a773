//! Connections to other peers: the `Hello` handshake, answering their requests (file list,
//! manifests, chunks, chat) and routing their answers to ours. The sender of a request is the
//! peer named in that connection's handshake, never a name inside the request.

use super::event::{Event, Warning};
use super::node::{PeerNode, Purpose};
use super::op::Lost;
use super::session::MAX_CHAT_LEN;
use crate::names::{check_peer_name, printable};
use crate::reactor::ConnId;
use crate::wire::{ContentId, ErrorCode, Message, PROTOCOL_VERSION, decode_message};
use std::time::Instant;

/// Bytes of file entries one `Files` answer may carry: well below the frame limit whatever the
/// names, so a huge shared folder gives a shorter list rather than a frame every receiver
/// refuses (about 13,000 files with 255-byte names, 40,000 with short ones).
const LISTING_BUDGET: usize = crate::wire::MAX_FRAME_LEN - 64 * 1024;

/// The first entries of `files` whose encoding fits in [`LISTING_BUDGET`].
fn fit_listing(mut files: Vec<crate::wire::FileInfo>) -> Vec<crate::wire::FileInfo> {
    // Per entry: the map and its four keys (~30 bytes), a string header (≤ 3), a u64 (≤ 9), a
    // 32-byte hash with its header (34) and a bool: 96 is a safe upper bound besides the name.
    let mut used = 64;
    let fit = files
        .iter()
        .take_while(|f| {
            used += 96 + f.name.len();
            used <= LISTING_BUDGET
        })
        .count();
    files.truncate(fit);
    files
}

/// The port a peer at `remote` can call us back at: our listen port, or the router's external
/// port that maps to it (`mapped`, PCP or NAT-PMP) when `remote` is outside our network. Such a peer
/// sees our connection come from the router's address, where only the mapped port leads to us;
/// one on a private network (RFC 1918, shared address space, link-local) or on this machine is
/// taken to be on our side of the router and calls the listen port directly.
fn callback_port(listen_port: u16, mapped: Option<u16>, remote: Option<std::net::IpAddr>) -> u16 {
    use std::net::IpAddr;
    let inside = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_private() || v4.is_loopback())
        }
    };
    match (mapped, remote) {
        (Some(port), Some(ip)) if !inside(ip) => port,
        _ => listen_port,
    }
}

impl PeerNode {
    pub(super) fn send_hello(&mut self, conn: ConnId) {
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            name: self.cfg.name.clone(),
            listen_port: self.advertised_port(conn),
            agent: format!("p2p/{}", env!("CARGO_PKG_VERSION")),
        };
        self.send(conn, &hello);
    }

    /// The listening port to put in a `Hello` on `conn`: the other side will call us back at
    /// the connection's source IP and that port. A listener bound to loopback only is not
    /// reachable from another host, so it is named only to peers on this machine; to anyone
    /// else we are a peer that cannot be called back (`listen_port: null`, PROTOCOL.md §5).
    fn advertised_port(&self, conn: ConnId) -> Option<u16> {
        let remote = self.sessions.get(&conn).map(|s| s.remote.ip());
        let reachable = !self.listen_ip.is_loopback() || remote.is_some_and(|ip| ip.is_loopback());
        let mapped = self.mapped_addr().map(|a| a.port());
        reachable.then(|| callback_port(self.listen_port, mapped, remote))
    }

    /// A ready connection to `name`, if there is one.
    pub(super) fn ready_session(&self, name: &str) -> Option<ConnId> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.name.as_deref() == Some(name) && !s.closing)
            .map(|(c, _)| *c)
            .min()
    }

    /// Whether a connection to `name` is being set up.
    pub(super) fn session_pending(&self, name: &str) -> bool {
        self.sessions
            .values()
            .any(|s| !s.ready() && !s.closing && s.expected.as_deref() == Some(name))
            || self.connecting.values().any(
                |p| matches!(p, super::node::ConnectPurpose::Peer { name: n, .. } if n == name),
            )
            || self.relay.reaching(name)
    }

    /// Ends a connection because the remote broke the protocol.
    pub(super) fn refuse_session(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        message: String,
        now: Instant,
    ) {
        self.send(
            conn,
            &Message::Error {
                req: None,
                code,
                message: message.clone(),
            },
        );
        self.close(conn);
        self.session_closed(conn, &message, now);
    }

    pub(super) fn session_frame(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        let msg = match decode_message(body) {
            Ok(msg) => msg,
            Err(e) => {
                let who = session
                    .name
                    .clone()
                    .unwrap_or_else(|| session.remote.to_string());
                let (peer, error) = (who, e.to_string());
                self.ui
                    .event(&Event::Warning(Warning::BadFrame { peer, error }));
                self.downloads_protocol_fault(conn, &e.to_string(), now);
                self.refuse_session(conn, ErrorCode::UnexpectedMessage, e.to_string(), now);
                return;
            }
        };
        self.session_message(conn, msg, now);
    }

    /// One message of a session, decoded (by `session_frame`, or by the reactor's decoder for
    /// a chunk assembled apart).
    pub(super) fn session_message(&mut self, conn: ConnId, msg: Message, now: Instant) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if !session.ready() {
            self.handshake(conn, msg, now);
            return;
        }
        match msg {
            Message::ListFiles { req } => {
                let files = fit_listing(self.listing());
                self.send(conn, &Message::Files { req, files });
            }
            Message::GetHave { req, id } => self.serve_have(conn, req, id),
            Message::GetManifest { req, id } => self.serve_manifest(conn, req, id),
            Message::GetChunk { req, id, index } => self.serve_chunk(conn, req, id, index),
            Message::Chat { req, text } => {
                if text.len() > MAX_CHAT_LEN {
                    let message = format!("message longer than {MAX_CHAT_LEN} bytes");
                    self.send(
                        conn,
                        &Message::Error {
                            req: Some(req),
                            code: ErrorCode::Other,
                            message,
                        },
                    );
                    return;
                }
                // The sender is the connection's proved key, shown by the name pinned to it
                // (its `Hello` name was checked against the pins).
                // The first message over a first contact carries the short id with the name.
                let session = self.sessions.get_mut(&conn).expect("checked above");
                let first_contact = std::mem::take(&mut session.first_contact);
                self.ui.event(&Event::Message {
                    from: session.name.clone().unwrap_or_default(),
                    id: session.peer.to_string(),
                    first_contact,
                    text,
                });
                self.send(conn, &Message::ChatOk { req });
            }
            Message::GetPeers { req } => self.serve_peers(conn, req, now),
            Message::ListFolders { req } => self.serve_folders(conn, req),
            Message::GetFolder { req, id, start } => self.serve_folder(conn, req, id, start),
            Message::Files { req, .. }
            | Message::PeerList { req, .. }
            | Message::Manifest { req, .. }
            | Message::Chunk { req, .. }
            | Message::ChatOk { req }
            | Message::Have { req, .. }
            | Message::Folders { req, .. }
            | Message::Folder { req, .. }
            | Message::Error { req: Some(req), .. } => self.answer(conn, req, msg, now),
            Message::Error {
                req: None, message, ..
            } => {
                let peer = self.sessions[&conn].name.clone().unwrap_or_default();
                self.ui
                    .event(&Event::Warning(Warning::PeerClosed { peer, message }));
            }
            other => {
                let message = format!("{} is not a peer-to-peer request", other.kind());
                self.refuse_session(conn, ErrorCode::UnexpectedMessage, message, now);
            }
        }
    }

    fn handshake(&mut self, conn: ConnId, msg: Message, now: Instant) {
        let incoming = self
            .sessions
            .get(&conn)
            .is_some_and(|s| s.expected.is_none())
            && !self.discovery.is_bootstrap(conn);
        if incoming && !matches!(msg, Message::Hello { .. }) {
            // PROTOCOL.md §5: the connector's first frame must be `Hello`; anything else (an
            // `Error` included) is answered with UnexpectedMessage before we close.
            let message = format!("expected Hello first, got {}", msg.kind());
            self.refuse_session(conn, ErrorCode::UnexpectedMessage, message, now);
            return;
        }
        if let Message::Error { message, code, .. } = &msg {
            // The other side refused us (wrong version, busy...): its reason is the news.
            if let Some(session) = self.sessions.get_mut(&conn) {
                session.refused_busy = *code == ErrorCode::Busy;
            }
            let why = format!("refused: {}", printable(message));
            self.close(conn);
            self.session_closed(conn, &why, now);
            return;
        }
        let Message::Hello {
            version,
            name,
            listen_port,
            agent,
        } = msg
        else {
            let message = format!("expected Hello first, got {}", msg.kind());
            self.refuse_session(conn, ErrorCode::UnexpectedMessage, message, now);
            return;
        };
        if version != PROTOCOL_VERSION {
            let message =
                format!("this peer speaks protocol version {PROTOCOL_VERSION}, you sent {version}");
            self.refuse_session(conn, ErrorCode::VersionMismatch, message, now);
            return;
        }
        // A tracker says Hello with no name: "the peer name is empty" would not tell the
        // user they gave `connect` (or `--peer`) the tracker's address.
        if agent.starts_with("p2p-tracker/") {
            let why = "that address is a tracker, not a peer (a tracker is given with --tracker)";
            self.refuse_session(conn, ErrorCode::Other, why.to_string(), now);
            return;
        }
        if let Err(why) = check_peer_name(&name) {
            self.refuse_session(conn, ErrorCode::BadName, why, now);
            return;
        }
        if incoming && name == self.cfg.name {
            // Someone claims our own name: refused before we say who we are (§5).
            let message = format!("'{name}' is this peer's own name");
            self.refuse_session(conn, ErrorCode::Other, message, now);
            return;
        }
        let session = self.sessions.get_mut(&conn).expect("caller checked");
        if let Some(expected) = &session.expected
            && *expected != name
        {
            let message = format!("expected to reach {expected}, but {name} answered");
            self.refuse_session(conn, ErrorCode::Other, message, now);
            return;
        }
        if !self.name_matches_key(conn, &name, now) {
            return;
        }
        let session = self.sessions.get_mut(&conn).expect("checked above");
        session.name = Some(name);
        if incoming {
            self.send_hello(conn);
            self.peer_met(conn, listen_port, now);
            self.note_proved_key(conn);
        } else {
            self.peer_met(conn, listen_port, now);
            self.note_proved_key(conn);
            self.op_session_ready(conn, now);
            self.downloads_peer_event(now);
        }
    }

    fn serve_manifest(&mut self, conn: ConnId, req: u64, id: ContentId) {
        if self.index.by_content_id(&id).is_none()
            && let Some(reply) = self.partial_manifest(req, &id)
        {
            return self.send(conn, &reply);
        }
        let reply = match self.index.by_content_id(&id) {
            Some(f) => Message::Manifest {
                req,
                id,
                size: f.manifest.size,
                chunk_size: f.manifest.chunk_size,
                chunk_hashes: f.manifest.hashes_to_wire(),
            },
            None => Message::Error {
                req: Some(req),
                code: ErrorCode::NoSuchFile,
                message: format!("no shared file has content id {id}"),
            },
        };
        self.send(conn, &reply);
    }

    fn serve_chunk(&mut self, conn: ConnId, req: u64, id: ContentId, index: u64) {
        if self.index.by_content_id(&id).is_none()
            && let Some(reply) = self.partial_chunk(req, &id, index)
        {
            return self.send(conn, &reply);
        }
        // The frame is built around the chunk: the file is read straight into it after the
        // envelope (`SharedIndex::chunk_frame`), so the data is copied once, not three times.
        match self.index.chunk_frame(&id, req, index) {
            Ok(frame) => self
                .actions
                .push_back(crate::reactor::Action::Send(conn, frame)),
            Err((code, message)) => self.send(
                conn,
                &Message::Error {
                    req: Some(req),
                    code,
                    message,
                },
            ),
        }
    }

    /// An answer to one of our requests.
    fn answer(&mut self, conn: ConnId, req: u64, msg: Message, now: Instant) {
        let Some(pending) = self.pending.get(&req).copied() else {
            // Ids only grow: one we handed out was asked and since given up on (a command
            // that timed out, a download that paused), and its late answer is dropped. One we
            // never handed out is a protocol violation.
            if !self.id_was_issued(req) {
                let message = format!("answer to request {req}, which was never made");
                self.refuse_session(conn, ErrorCode::UnexpectedMessage, message, now);
            }
            return;
        };
        if pending.conn != conn {
            let message = format!("answer to request {req}, which was made elsewhere");
            self.refuse_session(conn, ErrorCode::UnexpectedMessage, message, now);
            return;
        }
        self.pending.remove(&req);
        match pending.purpose {
            Purpose::Op => self.op_answer(conn, msg, now),
            Purpose::FirstFlightOf { dl, index } => self.first_flight_to(conn, dl, index, msg, now),
            Purpose::FirstFlight => {
                self.first_flight_answer(conn, req, msg);
                self.flush_first_flight(now);
            }
            Purpose::Chunk { dl, index } => self.chunk_answer(conn, dl, index, msg, now),
            Purpose::DownloadManifest(dl) => self.download_manifest_answer(conn, dl, msg, now),
            Purpose::DownloadHave(dl) => self.download_have_answer(conn, dl, msg, now),
            Purpose::Exchange => self.peers_answer(conn, msg, now),
            Purpose::FolderManifest(id) => self.folder_manifest_answer(conn, req, id, msg, now),
        }
    }

    pub(super) fn session_closed(&mut self, conn: ConnId, why: &str, now: Instant) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn == conn)
            .map(|(r, _)| *r)
            .collect();
        for req in &lost {
            self.pending.remove(req);
        }
        self.first_flight_conn_closed(conn);
        self.peer_gone(conn, &session, why, now);
        let lost = if session.ready() {
            Lost::Established
        } else if session.refused_busy {
            Lost::Busy
        } else {
            Lost::Handshake
        };
        let reaching = session.expected.clone().filter(|_| !session.ready());
        let name = session.name.or(session.expected).unwrap_or_default();
        self.op_connection_lost(conn, &name, lost, why, now);
        self.downloads_connection_lost(conn, why, now);
        self.folder_connection_lost(conn, now);
        if let Some(name) = reaching {
            // Our attempt to reach `name` died in its handshake (a peer frozen, busy or gone
            // mid-way, or another peer at that address). If the entry moved on to another
            // address it is known by, downloads try that at once; otherwise sources reaching it
            // go back to the reconnect cycle with backoff, as after a refused connect. (Before,
            // they waited for a connection that would never come, until `--retry-for` ran out.)
            if self.dialer().has_untried_address(&name) {
                self.downloads_peer_event(now);
            } else {
                self.downloads_peer_unreachable(&name, now);
            }
        }
    }

    pub(super) fn sessions_tick(&mut self, now: Instant) {
        let late: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.ready() && now >= s.hello_deadline)
            .map(|(c, _)| *c)
            .collect();
        for conn in late {
            self.refuse_session(conn, ErrorCode::Other, "handshake timed out".into(), now);
        }
    }

    pub(super) fn sessions_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter(|s| !s.ready())
            .map(|s| s.hello_deadline)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::callback_port;

    #[test]
    fn a_peer_outside_the_router_is_told_the_mapped_port() {
        let ip = |s: &str| Some(s.parse().unwrap());
        // Outside: the router's external port.
        assert_eq!(callback_port(4000, Some(41000), ip("198.51.100.2")), 41000);
        assert_eq!(callback_port(4000, Some(41000), ip("2001:db8::1")), 41000);
        // Our side of the router, or no mapping: the listen port.
        for inside in [
            "10.1.2.3",
            "192.168.1.9",
            "172.20.0.1",
            "100.64.3.4",
            "169.254.1.1",
        ] {
            assert_eq!(
                callback_port(4000, Some(41000), ip(inside)),
                4000,
                "{inside}"
            );
        }
        assert_eq!(callback_port(4000, Some(41000), ip("127.0.0.1")), 4000);
        assert_eq!(callback_port(4000, Some(41000), ip("fd00::5")), 4000);
        assert_eq!(
            callback_port(4000, Some(41000), ip("::ffff:192.168.0.2")),
            4000
        );
        assert_eq!(callback_port(4000, None, ip("198.51.100.2")), 4000);
    }
}
