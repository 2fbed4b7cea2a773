//! A running download: keeps a window of chunk requests in flight, verifies every chunk against
//! the manifest before writing it, and finishes by linking the verified file into place.

use super::chunk_plan::{ChunkFault, ChunkPlan};
use super::manifest::Manifest;
use super::node::{PeerNode, Purpose};
use super::partial::PartialFile;
use crate::names::printable;
use crate::reactor::ConnId;
use crate::repl::ui::human_bytes;
use crate::wire::{FileInfo, Message, encode_message};
use std::time::{Duration, Instant};

/// Bytes of chunk requests kept in flight: enough to fill a fast link with a long round trip
/// (the bandwidth-delay product of 1 Gbit/s at 60 ms), so a transfer never waits a round trip
/// per chunk.
const WINDOW_BYTES: usize = 8 * 1024 * 1024;
/// Corrupt chunks tolerated from one source before it is dropped.
const MAX_BAD_CHUNKS: u32 = 3;
/// A source that sends nothing for this long is given up on.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Download {
    pub peer: String,
    pub conn: ConnId,
    pub info: FileInfo,
    plan: ChunkPlan,
    part: PartialFile,
    window: usize,
    started: Instant,
    last_progress: Instant,
    bad_chunks: u32,
}

impl Download {
    pub fn abandon(self) {
        self.part.abandon();
    }

    pub fn stall_deadline(&self) -> Instant {
        self.last_progress + STALL_TIMEOUT
    }
}

impl PeerNode {
    /// Checks the manifest against the listing, creates the partial file and sends the first
    /// window of requests.
    pub(super) fn start_download(
        &mut self,
        conn: ConnId,
        peer: String,
        file: String,
        info: FileInfo,
        manifest: Message,
        now: Instant,
    ) -> Result<(), String> {
        let Message::Manifest {
            sha256,
            size,
            chunk_size,
            chunk_hashes,
            ..
        } = manifest
        else {
            return Err(format!("{peer} did not send a manifest"));
        };
        if sha256 != info.sha256 {
            return Err(format!("{peer} sent the manifest of another file"));
        }
        let manifest =
            Manifest::from_wire(sha256, size, chunk_size, &chunk_hashes, Some(info.size))
                .map_err(|e| format!("{peer} sent a bad manifest: {e}"))?;
        let dest = self.cfg.downloads_dir.join(&file);
        let part = PartialFile::create(&dest, &file).map_err(|e| {
            format!(
                "cannot create a file in {}: {e}",
                self.cfg.downloads_dir.display()
            )
        })?;
        let window = (WINDOW_BYTES / manifest.chunk_size as usize).max(2);
        self.ui.start_progress(&printable(&file), size);
        self.download = Some(Download {
            peer,
            conn,
            info,
            plan: ChunkPlan::new(manifest),
            part,
            window,
            started: now,
            last_progress: now,
            bad_chunks: 0,
        });
        self.fill_window();
        self.maybe_finish(now);
        Ok(())
    }

    /// Tops the requests in flight up to the window, as one write.
    fn fill_window(&mut self) {
        let Some(dl) = &mut self.download else { return };
        let mut batch = Vec::new();
        let mut asked = Vec::new();
        while dl.plan.in_flight() < dl.window {
            let Some(index) = dl.plan.next_request() else {
                break;
            };
            asked.push(index);
        }
        let (conn, sha256) = (dl.conn, dl.info.sha256);
        for index in asked {
            let req = self.next_id();
            self.pending.insert(
                req,
                super::node::Pending {
                    conn,
                    purpose: Purpose::Chunk(index),
                },
            );
            batch.extend_from_slice(&encode_message(&Message::GetChunk { req, sha256, index }));
        }
        if !batch.is_empty() {
            self.actions
                .push_back(crate::reactor::Action::Send(conn, batch));
        }
    }

    /// The answer to a chunk request.
    pub(super) fn chunk_answer(&mut self, conn: ConnId, asked: u64, msg: Message, now: Instant) {
        let Some(dl) = &mut self.download else { return };
        if dl.conn != conn {
            return;
        }
        let peer = dl.peer.clone();
        let data = match msg {
            Message::Chunk { index, data, .. } if index == asked => data,
            Message::Chunk { index, .. } => {
                self.close(conn);
                return self.fail_op(&format!(
                    "{peer} answered a request for chunk {asked} with chunk {index}; dropped it"
                ));
            }
            Message::Error { message, .. } => {
                return self.fail_op(&format!("{peer}: {}", printable(&message)));
            }
            other => {
                self.close(conn);
                return self.fail_op(&format!(
                    "{peer} answered a chunk request with {}",
                    other.kind()
                ));
            }
        };
        match dl.plan.verify(asked, &data) {
            Ok(()) => {
                if let Err(e) = dl.part.write_chunk(&dl.plan, asked, &data) {
                    let dest = dl.part.dest().display().to_string();
                    return self.fail_op(&format!("cannot write {dest}: {e}"));
                }
                dl.plan.mark_written(asked);
                dl.last_progress = now;
                let done = dl.plan.bytes_done();
                self.ui.set_progress(done);
            }
            Err(fault) => {
                dl.bad_chunks += 1;
                let bad = dl.bad_chunks;
                if matches!(fault, ChunkFault::WrongLength { .. }) || bad >= MAX_BAD_CHUNKS {
                    self.close(conn);
                    return self.fail_op(&format!(
                        "{peer} sent {fault} (chunk {asked}); dropped it after {bad} bad chunk(s)"
                    ));
                }
                self.ui.warn(&format!(
                    "{peer} sent {fault} (chunk {asked}); fetching it again"
                ));
            }
        }
        self.fill_window();
        self.maybe_finish(now);
    }

    fn maybe_finish(&mut self, now: Instant) {
        if !self.download.as_ref().is_some_and(|d| d.plan.is_complete()) {
            return;
        }
        let Some(dl) = self.download.take() else {
            return;
        };
        self.ui.finish_progress();
        let secs = now.duration_since(dl.started).as_secs_f64();
        let size = dl.info.size;
        match dl.part.finish(&dl.info.sha256) {
            Ok(path) => {
                let rate = if secs > 0.0 {
                    size as f64 / secs / 1e6
                } else {
                    0.0
                };
                self.ui.line(&format!(
                    "saved {} ({size} bytes, {}) from {} in {secs:.2}s, {rate:.1} MB/s, sha256 {}",
                    path.display(),
                    human_bytes(size),
                    dl.peer,
                    dl.info.sha256
                ));
                self.finish_op();
            }
            Err(e) => self.fail_op(&e),
        }
    }

    pub(super) fn download_tick(&mut self, now: Instant) {
        if let Some(dl) = &self.download
            && now >= dl.stall_deadline()
        {
            let why = format!(
                "{} sent nothing for {}s; download abandoned",
                dl.peer,
                STALL_TIMEOUT.as_secs()
            );
            self.fail_op(&why);
        }
    }
}
