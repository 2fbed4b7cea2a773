//! The inputs about a download's sources: reaching them, their manifest and chunk map, their
//! chunk answers, broken frames, lost connections; and dropping them.

use super::chunk::{self, ChunkFault, ChunkIndex, Have};
use super::machine::{Confirmed, Download, HAVE_REFRESH, MAX_BAD_CHUNKS, SourceState};
use super::output::{Ask, DropReason, Output, Pause, Report};
use super::scheduler::{ChunkState, SourceId, window_for_rtt};
use crate::peer::content_id::ContentId;
use crate::peer::manifest::Manifest;
use crate::reactor::ConnId;
use std::time::{Duration, Instant};

/// What the node could do to reach a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// A ready connection to it.
    Connected(ConnId),
    /// Still being looked up or connected; `refreshed`: the tracker was asked anew.
    Pending { refreshed: bool },
    /// Not to be found now: try again after a backoff.
    Failed,
}

/// A source's answer to `GetManifest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestAnswer {
    /// A manifest; `Err`: one that fails the checks of its shape or names another content id
    /// (PROTOCOL.md §8.2), with the reason.
    Sent(Result<Manifest, String>),
    /// An error or another message: it does not serve this content (any more).
    Refused,
}

/// A source's answer to `GetHave`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaveAnswer {
    /// It has the whole file.
    All,
    /// Its chunk map (checked against the file here).
    Map(Vec<u8>),
    /// An error: it cannot serve the file.
    Refused(String),
    /// Another message, of this kind.
    Unexpected(&'static str),
}

/// A source's answer to `GetChunk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkAnswer {
    /// A chunk, named by the index the source put in it.
    Data { index: u64, data: Vec<u8> },
    /// An error; `unavailable`: "not here yet", from a partial seeder.
    Refused { unavailable: bool, message: String },
    /// Another message, of this kind.
    Unexpected(&'static str),
}

impl Download {
    /// The sources looking for their peer, with whether the tracker was asked anew for each
    /// (none while paused or checked): answer each with [`Self::handle_reached`].
    pub fn reaching(&self) -> Vec<(SourceId, String, bool)> {
        if self.paused || self.ended || self.status() == super::Status::Checking {
            return Vec::new();
        }
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                SourceState::Reaching { refreshed } => {
                    Some((SourceId(i), s.name.clone(), refreshed))
                }
                _ => None,
            })
            .collect()
    }

    /// How far reaching source `s` got. Connected: it must first confirm the manifest.
    pub fn handle_reached(&mut self, s: SourceId, reached: Reached, now: Instant) {
        let source = &mut self.sources[s.0];
        if self.ended || !matches!(source.state, SourceState::Reaching { .. }) {
            return;
        }
        match reached {
            Reached::Pending { refreshed } => source.state = SourceState::Reaching { refreshed },
            Reached::Connected(conn)
                if source.confirmed.as_ref().is_some_and(|c| c.conn == conn) =>
            {
                let confirmed = source.confirmed.take().expect("matched just above");
                source.state = SourceState::Active { conn };
                source.delivering = false;
                source.next_have_refresh = now + HAVE_REFRESH;
                self.sched.set_have(s, Have::All);
                let window = window_for_rtt(self.manifest.chunk_size, confirmed.rtt);
                self.sched.set_window(s, window);
                // Asked before the download existed; their answers are on the way.
                for c in confirmed.first_flight {
                    self.sched.asked_before(s, c, confirmed.asked_at);
                }
                self.update_lost_since(now);
                self.fill(now);
            }
            Reached::Connected(conn) => {
                source.confirmed = None;
                source.state = SourceState::Confirming { conn };
                source.asked_at = now;
                source.delivering = false;
                let ask = Ask::Manifest;
                self.out.push_back(Output::Ask { conn, ask });
            }
            Reached::Failed => source.wait(now),
        }
    }

    /// Source `s`'s manifest already passed on `conn` (the `get` that started the download
    /// asked it there, `rtt` the round trip), and it lists the whole file: when the download
    /// reaches it over `conn`, it is active at once, asked for chunks with no second
    /// `GetManifest` and no `GetHave`. Over any other connection (a reconnect) it is confirmed
    /// as usual.
    ///
    /// `first_flight`: chunks the `get` asked of it on `conn` at `asked_at`, right behind the
    /// manifest (PROTOCOL.md §8.3). They count as in flight from the moment the source is
    /// active; their answers are handed in as those of any request.
    pub fn handle_confirmed(
        &mut self,
        s: SourceId,
        conn: ConnId,
        rtt: Duration,
        first_flight: Vec<ChunkIndex>,
        asked_at: Instant,
    ) {
        let source = &mut self.sources[s.0];
        if matches!(source.state, SourceState::Reaching { .. }) {
            source.confirmed = Some(Confirmed {
                conn,
                rtt,
                first_flight,
                asked_at,
            });
        }
    }

    /// Source `s`'s request for `c` is over without an answer that counts for or against it
    /// (an `Error` to a first-flight request, which may have guessed the chunk size wrong):
    /// `c` is asked again, of whoever has room.
    pub fn forget_request(&mut self, s: SourceId, c: ChunkIndex, now: Instant) {
        if !self.ended && self.sched.answered(s, c) {
            self.fill(now);
        }
    }

    /// Whether the source on `conn` is active: answers to chunk requests on it are taken.
    pub fn active_on(&self, conn: ConnId) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.state, SourceState::Active { conn: c } if c == conn))
    }

    /// A connection to source `s` could not be made: if it was reaching, it waits and retries.
    pub fn handle_unreachable(&mut self, s: SourceId, now: Instant) {
        let source = &mut self.sources[s.0];
        if matches!(source.state, SourceState::Reaching { .. }) {
            source.wait(now);
        }
    }

    /// The manifest source `s` sent (`None`: its answer was not a valid manifest). This is
    /// the one place where a source's manifest is accepted: it must be exactly this
    /// download's, or the source is dropped (never mixed with what is here).
    pub fn handle_manifest(&mut self, s: SourceId, theirs: ManifestAnswer, now: Instant) {
        let SourceState::Confirming { conn } = self.sources[s.0].state else {
            return;
        };
        if self.ended {
            return;
        }
        // The download's manifest was checked against its content id when it began, so the
        // id is all a source's manifest is compared with: one that matches is the same
        // manifest, one that does not is refused and can never replace it.
        let forged = match theirs {
            ManifestAnswer::Refused => {
                return self.drop_source(s, DropReason::ContentChanged, now);
            }
            ManifestAnswer::Sent(Err(why)) => Some(why),
            ManifestAnswer::Sent(Ok(m)) => {
                let theirs = ContentId::of(&m);
                (theirs != self.content_id).then(|| {
                    format!(
                        "its chunk hashes make content id {theirs}, not {}",
                        self.content_id
                    )
                })
            }
        };
        if let Some(why) = forged {
            self.sources[s.0].bad_chunks = MAX_BAD_CHUNKS;
            return self.drop_source(s, DropReason::ForgedManifest(why), now);
        }
        self.sources[s.0].asked_at = now;
        let ask = Ask::Have;
        self.out.push_back(Output::Ask { conn, ask });
    }

    /// Which chunks source `s` can serve: it becomes (or stays) active. A source that joins
    /// now has its request window sized from the round trip of this `GetHave`.
    pub fn handle_have(&mut self, s: SourceId, answer: HaveAnswer, now: Instant) {
        let Some(conn) = self.sources[s.0].conn() else {
            return;
        };
        if self.ended {
            return;
        }
        let have = match answer {
            HaveAnswer::All => Have::All,
            HaveAnswer::Map(bits) if bits.len() as u64 == self.chunk_count().div_ceil(8) => {
                Have::Some(bits)
            }
            HaveAnswer::Map(_) => return self.drop_source(s, DropReason::WrongMapSize, now),
            HaveAnswer::Refused(message) => {
                return self.drop_source(s, DropReason::CannotServe(message), now);
            }
            HaveAnswer::Unexpected(kind) => {
                return self.drop_source(s, DropReason::UnexpectedHave(kind), now);
            }
        };
        let source = &mut self.sources[s.0];
        let newly_active = matches!(source.state, SourceState::Confirming { .. });
        source.next_have_refresh = now + HAVE_REFRESH;
        self.sched.set_have(s, have);
        if newly_active {
            source.state = SourceState::Active { conn };
            let rtt = now.duration_since(source.asked_at);
            let peer = source.name.clone();
            let window = window_for_rtt(self.manifest.chunk_size, rtt);
            self.sched.set_window(s, window);
            // A source at the start is no news; one joining a download under way is.
            if self.fetched > 0 || self.bytes_done() > 0 {
                let (percent, others) = (self.percent(), self.active_sources() - 1);
                self.report(Report::SourceJoined {
                    peer,
                    percent,
                    others,
                });
            }
        }
        self.update_lost_since(now);
        self.fill(now);
        self.maybe_finish(now);
    }

    /// Source `s` answered its request for chunk `asked`. Right bytes go to the store
    /// ([`Output::Write`]); a bad chunk is fetched again and counts towards the source's ban;
    /// an answer to a request given up on (stalled, or an end-game duplicate) is dropped.
    pub fn handle_chunk(
        &mut self,
        s: SourceId,
        asked: ChunkIndex,
        answer: ChunkAnswer,
        now: Instant,
    ) {
        if self.ended || !self.sched.answered(s, asked) {
            return;
        }
        let data = match answer {
            ChunkAnswer::Data { index, data } if index == asked.get() => data,
            ChunkAnswer::Data { index, .. } => {
                let reason = DropReason::WrongChunk { asked, got: index };
                return self.drop_source(s, reason, now);
            }
            ChunkAnswer::Refused {
                unavailable,
                message,
            } => {
                // A partial seeder without that chunk yet: ask it again later.
                if unavailable && self.sched.lacks(s, asked) {
                    return self.fill(now);
                }
                return self.drop_source(s, DropReason::CannotServe(message), now);
            }
            ChunkAnswer::Unexpected(kind) => {
                return self.drop_source(s, DropReason::UnexpectedChunk(kind), now);
            }
        };
        self.fetched += data.len() as u64;
        match chunk::check_length(&self.manifest, asked, &data) {
            Ok(expected) => {
                if self.sched.checking(asked) {
                    self.out.push_back(Output::Check {
                        source: s,
                        index: asked,
                        data,
                        expected,
                    });
                    // Its request's place is free now, whenever the check comes back.
                    self.fill(now);
                }
            }
            Err(fault) => self.bad_chunk(s, asked, fault, now),
        }
    }

    /// The answer to [`Output::Check`]: the bytes `s` sent for chunk `index` match its hash
    /// (they go to the store, [`Output::Write`]) or not (fetched again; it counts towards the
    /// source's ban). It may come after the source was lost or the download paused: right
    /// bytes are right whoever sent them, and a chunk is never left waiting for a check.
    pub fn handle_chunk_checked(
        &mut self,
        s: SourceId,
        index: ChunkIndex,
        data: Vec<u8>,
        checked: Result<(), ChunkFault>,
        now: Instant,
    ) {
        if self.ended || self.sched.state(index) != ChunkState::Checking {
            return;
        }
        match checked {
            Ok(()) => {
                self.sched.verified(index);
                self.writing.insert(index, (s, data.len() as u64));
                let (offset, _) = self.chunk_span(index);
                self.out.push_back(Output::Write {
                    index,
                    offset,
                    data,
                });
            }
            Err(fault) => {
                self.sched.check_failed(index);
                if matches!(self.sources[s.0].state, SourceState::Dropped) {
                    return self.fill(now);
                }
                self.bad_chunk(s, index, fault, now)
            }
        }
    }

    fn bad_chunk(&mut self, s: SourceId, index: ChunkIndex, fault: ChunkFault, now: Instant) {
        let source = &mut self.sources[s.0];
        source.bad_chunks += 1;
        let bad = source.bad_chunks;
        if matches!(fault, ChunkFault::WrongLength { .. }) || bad >= MAX_BAD_CHUNKS {
            let reason = DropReason::Banned { fault, index, bad };
            return self.drop_source(s, reason, now);
        }
        let peer = source.name.clone();
        self.report(Report::BadChunk { peer, fault, index });
        self.after_chunk(now);
    }

    /// Source `s` broke the frame layer (an oversize or undecodable frame): that counts like
    /// a bad chunk towards its ban. Its connection is closing anyway (not closed here); what
    /// is left of the source then waits and reconnects with backoff.
    pub fn handle_broken_frame(&mut self, s: SourceId, why: &str, now: Instant) {
        if self.ended {
            return;
        }
        let source = &mut self.sources[s.0];
        source.bad_chunks += 1;
        let bad = source.bad_chunks;
        if bad >= MAX_BAD_CHUNKS {
            let why = why.to_string();
            self.drop_source(s, DropReason::BrokenFrames { why, bad }, now);
        }
    }

    /// Source `s`'s connection is gone: the download keeps its progress, gives its chunks to
    /// the others, checkpoints, and looks for the source again after a backoff.
    pub fn handle_source_lost(&mut self, s: SourceId, why: &str, now: Instant) {
        if self.ended {
            return;
        }
        self.sched.forget_source(s);
        self.sources[s.0].wait(now);
        let others = self.active_sources();
        let (peer, percent) = (self.sources[s.0].name.clone(), self.percent());
        let reason = why.to_string();
        self.report(Report::SourceLost {
            peer,
            reason,
            percent,
            others,
        });
        self.update_lost_since(now);
        self.checkpoint(now);
        self.fill(now);
        if others == 0 {
            self.report(Report::NoSourceActive);
        }
    }

    /// Source `s` is banned or cannot serve the file: its chunks go to the others; its
    /// connection is closed if it broke the protocol. With no usable source left, the
    /// download pauses.
    fn drop_source(&mut self, s: SourceId, reason: DropReason, now: Instant) {
        let source = &mut self.sources[s.0];
        let close = source.conn().filter(|_| reason.closes());
        source.state = SourceState::Dropped;
        source.dropped = Some(reason.clone());
        let peer = source.name.clone();
        self.sched.forget_source(s);
        if let Some(conn) = close {
            self.out.push_back(Output::Close(conn));
        }
        if self.sources.iter().any(|s| s.state != SourceState::Dropped) {
            self.report(Report::SourceDropped { peer, reason });
            self.update_lost_since(now);
            self.fill(now);
        } else {
            // Sources that sent corrupt chunks and nobody left to repair them: the download
            // failed verification; otherwise it is only unfinished.
            let corrupt = self.sources.iter().any(|s| s.bad_chunks > 0);
            let pause = Pause::NoSourceLeft {
                peer,
                reason,
                corrupt,
            };
            self.pause(pause, now);
        }
    }

    /// Keeps `lost_since` true to "no source delivering since when". A source counts as back
    /// when it delivers, or when it is a partial seeder with nothing for us yet (waiting on it
    /// is the point).
    pub(super) fn update_lost_since(&mut self, now: Instant) {
        let back = self.sources.iter().enumerate().any(|(i, s)| {
            matches!(s.state, SourceState::Active { .. })
                && (s.delivering || self.sched.have(SourceId(i)).is_some_and(Have::is_partial))
        });
        if back {
            self.lost_since = None;
        } else {
            self.lost_since.get_or_insert(now);
        }
    }
}
