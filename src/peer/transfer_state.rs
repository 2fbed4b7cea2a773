//! A download of this run as the node holds it (`Transfer`): its machine (`download/`) and
//! its disk. A plain value: the node's side of downloads is `transfer.rs`.

use super::download::{DiskStore, Download, Store};

/// A download of this run (running or paused): its machine and its disk.
pub struct Transfer {
    pub(super) dl: Download,
    pub(super) store: DiskStore,
}

impl Transfer {
    pub fn file_name(&self) -> &str {
        self.dl.file_name()
    }

    pub fn size(&self) -> u64 {
        self.dl.size()
    }

    pub fn is_paused(&self) -> bool {
        self.dl.is_paused()
    }

    /// Reads verified chunk `raw` (an index from another peer) into `buf`; `None` if it is
    /// not one of this file's or not here yet.
    pub fn read_verified_chunk(&self, raw: u64, buf: &mut Vec<u8>) -> Option<()> {
        let c = self.dl.chunk_index(raw)?;
        if !self.dl.is_done(c) {
            return None;
        }
        let (offset, len) = self.dl.chunk_span(c);
        buf.clear();
        buf.resize(len, 0);
        self.store.read(offset, buf).ok()
    }
}
