//! The first chunk requests of a `get`, sent right behind its `GetManifest` (issue 17, fewer
//! round trips; PROTOCOL.md §8.3). Before, the chunks were asked only once the manifest had
//! come back and checked: one round trip more before the first data, on every `get`.
//!
//! The manifest is what says the chunk size, so the flight assumes the size this
//! implementation picks for a file of that length (`chunk_size_for`); a source that chose a
//! larger one answers the indices past its end with an error, which is dropped. Nothing is
//! taken on trust: the answers wait here until the manifest made the content id and the
//! download's source on that connection is active, then go to the download like the answers
//! to its own requests (length and SHA-256 against the manifest). Until then they are held
//! (at most [`FIRST_FLIGHT_BYTES`]): a download first checks its partial file, off the
//! reactor, and its source is reached only after that.

use super::download::{ChunkIndex, DownloadId};
use super::manifest::chunk_size_for;
use super::node::{PeerNode, Pending, Purpose};
use crate::reactor::{Action, ConnId};
use crate::wire::{FileInfo, Message, encode_message};
use std::collections::BTreeMap;
use std::time::Instant;

/// Bytes of chunks asked before the manifest is back: what keeps the link busy during the
/// round trip the manifest takes; at most this much waits in memory.
pub(super) const FIRST_FLIGHT_BYTES: u64 = 4 * 1024 * 1024;

/// The chunk requests one `get` sent ahead of its manifest.
#[derive(Debug)]
pub(super) struct FirstFlight {
    conn: ConnId,
    asked_at: Instant,
    /// Request id → chunk index, for those not answered yet.
    asked: BTreeMap<u64, u64>,
    /// Answers that came before the download could take them: chunk index, answer.
    early: Vec<(u64, Message)>,
    /// The download that took the flight over, once the manifest checked.
    dl: Option<DownloadId>,
}

impl FirstFlight {
    /// Whether download `dl` took this flight over.
    pub(super) fn taken_by(&self, dl: DownloadId) -> bool {
        self.dl == Some(dl)
    }
}

/// The chunk indices a first flight for `info` asks: the first [`FIRST_FLIGHT_BYTES`] in
/// chunks of the size this implementation would pick. None for an empty file or one the
/// lister is still downloading (it may lack them; its chunk map is asked first).
pub(super) fn first_flight_indices(info: &FileInfo) -> std::ops::Range<u64> {
    if info.partial {
        return 0..0;
    }
    0..first_flight_len(info.size)
}

/// How many chunks a first flight asks of a whole file of `size` bytes.
pub(crate) fn first_flight_len(size: u64) -> u64 {
    let chunk = u64::from(chunk_size_for(size));
    size.div_ceil(chunk)
        .min((FIRST_FLIGHT_BYTES / chunk).max(1))
}

impl PeerNode {
    /// Asks `conn` for the first chunks of `info`, right behind its `GetManifest`.
    pub(super) fn send_first_flight(&mut self, conn: ConnId, info: &FileInfo, now: Instant) {
        self.drop_first_flight();
        let indices = first_flight_indices(info);
        if indices.is_empty() {
            return;
        }
        let mut asked = BTreeMap::new();
        let mut batch = Vec::new();
        for index in indices {
            let req = self.next_request_id();
            let purpose = Purpose::FirstFlight;
            self.pending.insert(req, Pending { conn, purpose });
            asked.insert(req, index);
            let id = info.id;
            batch.extend_from_slice(&encode_message(&Message::GetChunk { req, id, index }));
        }
        self.actions.push_back(Action::Send(conn, batch));
        self.first_flight = Some(FirstFlight {
            conn,
            asked_at: now,
            asked,
            early: Vec::new(),
            dl: None,
        });
    }

    /// Download `dl` was started from the manifest `conn` sent: it takes the flight over. The
    /// chunks it has (indices below `chunk_count`) are returned with when they were asked, to
    /// count as in flight at the source; requests past the file's end (the source chose larger
    /// chunks) are forgotten, their answers dropped. `None`: no flight went out on `conn`.
    pub(super) fn adopt_first_flight(
        &mut self,
        conn: ConnId,
        dl: DownloadId,
        chunk_count: u64,
    ) -> Option<(Vec<ChunkIndex>, Instant)> {
        let flight = self.first_flight.as_mut().filter(|f| f.conn == conn)?;
        flight.dl = Some(dl);
        let beyond: Vec<u64> = (flight.asked.iter())
            .filter(|(_, index)| **index >= chunk_count)
            .map(|(req, _)| *req)
            .collect();
        for req in beyond {
            flight.asked.remove(&req);
            self.pending.remove(&req);
        }
        flight.early.retain(|(index, _)| *index < chunk_count);
        let chunks = (flight.asked.values())
            .chain(flight.early.iter().map(|(index, _)| index))
            .filter_map(|&index| ChunkIndex::new(index, chunk_count))
            .collect();
        Some((chunks, flight.asked_at))
    }

    /// An answer to a request of the flight: held until the download can take it.
    pub(super) fn first_flight_answer(&mut self, conn: ConnId, req: u64, msg: Message) {
        let Some(flight) = self.first_flight.as_mut().filter(|f| f.conn == conn) else {
            return;
        };
        if let Some(index) = flight.asked.remove(&req) {
            flight.early.push((index, msg));
        }
    }

    /// Once the download that took the flight over is active on its connection: the answers
    /// held go to it, and the requests still out become its own. While it checks its partial
    /// file (its sources are reached only after that) they wait; if it went away, or reached
    /// its source another way, the flight is dropped.
    pub(super) fn flush_first_flight(&mut self, now: Instant) {
        let Some((conn, dl)) = (self.first_flight.as_ref()).and_then(|f| Some((f.conn, f.dl?)))
        else {
            return;
        };
        match self.downloads.get(&dl) {
            Some(t) if t.dl.active_on(conn) => {}
            Some(t) if t.dl.is_checking() => return,
            _ => return self.drop_first_flight(),
        }
        let Some(flight) = self.first_flight.take() else {
            return;
        };
        let count = self.downloads[&dl].dl.chunk_count();
        for (req, index) in flight.asked {
            if let Some(index) = ChunkIndex::new(index, count) {
                let purpose = Purpose::FirstFlightOf { dl, index };
                self.pending.insert(req, Pending { conn, purpose });
            }
        }
        for (index, msg) in flight.early {
            if let Some(index) = ChunkIndex::new(index, count) {
                self.first_flight_to(conn, dl, index, msg, now);
            }
        }
    }

    /// An answer to a first-flight request, for download `dl` that took the flight over: a
    /// chunk is handled as any (checked against the manifest); an `Error` counts neither for
    /// nor against the source (the flight guessed the chunk size, and a seeder may want the
    /// manifest asked first): the chunk is asked again the usual way.
    pub(super) fn first_flight_to(
        &mut self,
        conn: ConnId,
        dl: DownloadId,
        index: ChunkIndex,
        msg: Message,
        now: Instant,
    ) {
        if !matches!(msg, Message::Error { .. }) {
            return self.chunk_answer(conn, dl, index, msg, now);
        }
        if let Some(t) = self.downloads.get_mut(&dl)
            && let Some(s) = t.dl.source_on(conn)
        {
            t.dl.forget_request(s, index, now);
            self.drive(dl, now);
        }
    }

    /// Forgets the flight: its requests' answers are dropped when they come.
    pub(super) fn drop_first_flight(&mut self) {
        if let Some(flight) = self.first_flight.take() {
            for req in flight.asked.keys() {
                self.pending.remove(req);
            }
        }
    }

    /// Connection `conn` closed: a flight on it is over.
    pub(super) fn first_flight_conn_closed(&mut self, conn: ConnId) {
        if self.first_flight.as_ref().is_some_and(|f| f.conn == conn) {
            self.drop_first_flight();
        }
    }

    /// The command that sent the flight ended: unless a download took it over, it is over.
    pub(super) fn first_flight_op_ended(&mut self) {
        if self.first_flight.as_ref().is_some_and(|f| f.dl.is_none()) {
            self.drop_first_flight();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ContentId, Sha256};

    fn info(size: u64, partial: bool) -> FileInfo {
        FileInfo {
            name: "f".into(),
            size,
            id: ContentId([1; 32]),
            sha256: Sha256([2; 32]),
            partial,
        }
    }

    #[test]
    fn the_flight_covers_the_first_bytes_in_this_implementations_chunks() {
        let chunk = u64::from(chunk_size_for(1 << 20));
        assert_eq!(first_flight_indices(&info(1, false)), 0..1);
        assert_eq!(first_flight_indices(&info(chunk + 1, false)), 0..2);
        let big = 1u64 << 40;
        let want = (FIRST_FLIGHT_BYTES / u64::from(chunk_size_for(big))).max(1);
        assert_eq!(first_flight_indices(&info(big, false)), 0..want);
        assert!(first_flight_indices(&info(0, false)).is_empty());
        assert!(first_flight_indices(&info(chunk * 4, true)).is_empty());
    }
}
