//! Reaching the peer a command talks to: a ready connection, one being set up, the address
//! the peer table knows, or a fresh peer list from the tracker; then sending the command's
//! request. A peer that refuses us as busy is tried again with a growing wait, one whose
//! address fails gives way to another address it is known by, before the command fails.

use super::event::{Event, Failure, Notice, Problem};
use super::node::{PeerNode, Purpose};
use super::op::{BUSY_FIRST_RETRY, Lost, Op, Step, bump};
use crate::reactor::ConnId;
use crate::wire::Message;
use std::time::Instant;

impl PeerNode {
    /// Moves a command that is reaching its peer forward as far as it can go now.
    pub(super) fn op_advance(&mut self, now: Instant) {
        let Some(op) = &mut self.op else { return };
        let Some(peer) = op.peer().map(str::to_string) else {
            return;
        };
        let Some(Step::Reaching { refreshed }) = op.step_mut() else {
            return;
        };
        let mut refreshed_now = *refreshed;
        let reached = self.reach(&peer, &mut refreshed_now);
        if let Some(Step::Reaching { refreshed }) = self.op.as_mut().and_then(Op::step_mut) {
            *refreshed = refreshed_now;
        }
        match reached {
            Err(e) => self.fail_op_as(Failure::Unreachable, e),
            Ok(None) => {}
            Ok(Some(conn)) => self.ask(conn, now),
        }
    }

    /// A ready connection to `name`, or `None` while one is being set up.
    pub(super) fn reach(
        &mut self,
        name: &str,
        refreshed: &mut bool,
    ) -> Result<Option<ConnId>, Problem> {
        if name == self.cfg.name {
            let name = name.to_string();
            return Err(Problem::IsThisPeer { name });
        }
        if let Some(conn) = self.ready_session(name) {
            return Ok(Some(conn));
        }
        if self.session_pending(name) {
            return Ok(None);
        }
        if self.dial(name) {
            return Ok(None);
        }
        if !*refreshed && self.request_peer_list_naming(Some(name)) {
            *refreshed = true;
            return Ok(None);
        }
        if self.tracker.list_in_flight() {
            return Ok(None);
        }
        let near = crate::names::closest(name, self.known.iter().map(|(n, _)| n.as_str()));
        Err(Problem::UnknownPeer {
            name: name.to_string(),
            near: near.map(str::to_string),
            tracker_unreachable: self.tracker.up().is_none(),
        })
    }

    /// Right behind our `Hello` on `conn`, a connection we dialed to reach `name`: the file
    /// list, if the command is a `files` or `get` reaching that peer (one round trip fewer
    /// before its answer; PROTOCOL.md §5). The step stays `Reaching` until their `Hello` makes
    /// the connection ready; [`Self::ask`] then finds the request already out. A chat message
    /// always waits for their `Hello`: it must go only to a peer whose name checked out.
    pub(super) fn op_pipeline(&mut self, conn: ConnId, name: &str) {
        let reaching = matches!(
            &self.op,
            Some(op @ (Op::Files { step: Step::Reaching { .. }, .. }
                | Op::Get { step: Step::Reaching { .. }, .. }))
                if op.peer() == Some(name)
        );
        if reaching && !self.op_request_out(conn) {
            self.request(conn, Purpose::Op, |req| Message::ListFiles { req });
        }
    }

    /// Whether the command already has a request out on `conn` (sent behind our `Hello`).
    fn op_request_out(&self, conn: ConnId) -> bool {
        (self.pending.values()).any(|p| p.conn == conn && matches!(p.purpose, Purpose::Op))
    }

    /// Sends the command's request on a ready connection (unless it went out behind our
    /// `Hello`, [`Self::op_pipeline`]).
    fn ask(&mut self, conn: ConnId, now: Instant) {
        let text = match &self.op {
            Some(Op::Msg { text, .. }) => Some(text.clone()),
            _ => None,
        };
        match text {
            Some(text) => {
                self.request(conn, Purpose::Op, |req| Message::Chat { req, text });
            }
            None if self.op_request_out(conn) => {}
            None => {
                self.request(conn, Purpose::Op, |req| Message::ListFiles { req });
            }
        };
        if let Some(op) = &mut self.op {
            if let Some(step) = op.step_mut() {
                *step = Step::Asked(conn);
            }
            bump(op, now);
        }
    }

    pub(super) fn peer_unreachable(&mut self, name: &str, why: Problem, now: Instant) {
        if matches!(self.op, Some(Op::Find(_))) {
            return self.find_answer(name, None, now);
        }
        if self.op.as_ref().and_then(Op::peer) == Some(name) && !self.op_ask_tracker_again() {
            self.fail_op_as(Failure::Unreachable, why);
        }
    }

    /// `name` is known by a fresh address now (the one that failed gave way to another):
    /// whoever was reaching it tries that one at once.
    pub(super) fn peer_reach_again(&mut self, name: &str, now: Instant) {
        if self.op.as_ref().and_then(Op::peer) == Some(name) {
            self.op_advance(now);
        }
        if matches!(self.op, Some(Op::Find(_))) {
            self.find_advance(now);
        }
        self.downloads_peer_event(now);
    }

    /// The command could not reach its peer at the address we had: if the tracker was not
    /// asked during this command yet, ask it once for a fresh address (a peer that restarted
    /// on another port is listed at the new one) and go on when the list arrives. False if
    /// there is nothing more to try.
    fn op_ask_tracker_again(&mut self) -> bool {
        let Some(Step::Reaching { refreshed: false }) = self.op.as_ref().and_then(Op::step) else {
            return false;
        };
        let peer = self.op.as_ref().and_then(Op::peer).map(str::to_string);
        // Before the tracker's first list (a command that ran on a cached address,
        // `next_input_needs_no_list`), that list is on its way: wait for it.
        if self.ready && !self.request_peer_list_naming(peer.as_deref()) {
            return false;
        }
        if let Some(Step::Reaching { refreshed }) = self.op.as_mut().and_then(Op::step_mut) {
            *refreshed = true;
        }
        true
    }

    /// "Try again later": the command's peer is at its connection cap. Wait and try again,
    /// within the command's deadline, instead of failing at once.
    fn op_peer_busy(&mut self, name: &str, why: &str, now: Instant) {
        let wait = self.busy_wait.unwrap_or(BUSY_FIRST_RETRY);
        if let Some(step) = self.op.as_mut().and_then(Op::step_mut) {
            *step = Step::Busy {
                retry_at: now + wait,
                wait,
            };
        }
        self.ui.event(&Event::Notice(Notice::Busy {
            peer: name.to_string(),
            why: why.to_string(),
            retry_secs: wait.as_secs_f64(),
        }));
    }

    /// A dial to `name` was cut off in its secure handshake, as a peer at its connection cap
    /// does: if the command was reaching `name`, it waits and tries again (true).
    pub(super) fn op_dial_cut(&mut self, name: &str, why: &str, now: Instant) -> bool {
        let reaching = matches!(
            self.op
                .as_mut()
                .map(|op| (op.peer() == Some(name), op.step_mut())),
            Some((true, Some(Step::Reaching { .. })))
        );
        if reaching {
            self.op_peer_busy(name, why, now);
        }
        reaching
    }

    pub(super) fn op_connection_lost(
        &mut self,
        conn: ConnId,
        name: &str,
        lost: Lost,
        why: &str,
        now: Instant,
    ) {
        let handshake_failed = lost != Lost::Established;
        if matches!(self.op, Some(Op::Find(_))) {
            let peer = self.find_peer_on(conn).unwrap_or_else(|| name.to_string());
            return self.find_answer(&peer, None, now);
        }
        let Some(op) = &mut self.op else { return };
        let on_this_conn = match op.step_mut() {
            Some(Step::Asked(c))
            | Some(Step::AskedManifest(c, ..))
            | Some(Step::CheckingDestination(c, _))
            | Some(Step::AskedFolders(c))
            | Some(Step::FolderPages(c, _)) => *c == conn,
            // Only a connection that never got through its handshake was this command's
            // attempt to reach the peer; another one closing (an old one we dropped) is not.
            Some(Step::Reaching { .. }) => handshake_failed && op.peer() == Some(name),
            Some(Step::Busy { .. }) | None => false,
        };
        if on_this_conn && lost == Lost::Busy {
            return self.op_peer_busy(name, why, now);
        }
        if on_this_conn && lost == Lost::Handshake {
            // Another address it is known by, or a fresh one from the tracker, before failing.
            if self.dialer().has_untried_address(name) {
                return self.op_advance(now);
            }
            if self.op_ask_tracker_again() {
                return;
            }
        }
        if on_this_conn {
            let peer = name.to_string();
            let why = why.to_string();
            self.fail_op_as(Failure::Unreachable, Problem::ConnectionLost { peer, why });
        }
    }
}
