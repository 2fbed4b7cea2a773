//! Serving what a download in progress already has (partial seeding), and `GetHave` for
//! shared and partial files alike. Only verified chunks are ever served.

use super::node::PeerNode;
use crate::reactor::ConnId;
use crate::wire::{ContentId, ErrorCode, FileInfo, Message};

impl PeerNode {
    /// Shared files, then downloads in progress (marked partial) whose content is not shared.
    pub(super) fn listing(&self) -> Vec<FileInfo> {
        let mut files = self.index.file_infos();
        for t in self.downloads.values() {
            if self.index.by_content_id(&t.dl.content_id()).is_none() {
                files.push(FileInfo {
                    name: t.file_name().to_string(),
                    size: t.size(),
                    id: t.dl.content_id(),
                    sha256: t.dl.sha256(),
                    partial: true,
                });
            }
        }
        files
    }

    /// `GetManifest` for a file we are still downloading. `None`: not one of ours.
    pub(super) fn partial_manifest(&self, req: u64, id: &ContentId) -> Option<Message> {
        let m = self.download_of(id)?.dl.manifest();
        Some(Message::Manifest {
            req,
            id: *id,
            size: m.size,
            chunk_size: m.chunk_size,
            chunk_hashes: m.hashes_to_wire(),
        })
    }

    /// `GetChunk` for a file we are still downloading. `None`: not one of ours. The index is
    /// another peer's: out of range, it is a chunk not here.
    pub(super) fn partial_chunk(&self, req: u64, id: &ContentId, index: u64) -> Option<Message> {
        let dl = self.download_of(id)?;
        let mut data = Vec::new();
        Some(match dl.read_verified_chunk(index, &mut data) {
            Some(()) => Message::Chunk { req, index, data },
            None => Message::Error {
                req: Some(req),
                code: ErrorCode::Unavailable,
                message: format!("chunk {index} is not here yet"),
            },
        })
    }

    pub(super) fn serve_have(&mut self, conn: ConnId, req: u64, id: ContentId) {
        let reply = if self.index.by_content_id(&id).is_some() {
            Message::Have {
                req,
                complete: true,
                bitmap: Vec::new(),
            }
        } else if let Some(t) = self.download_of(&id) {
            Message::Have {
                req,
                complete: false,
                bitmap: t.dl.have_bitmap(),
            }
        } else {
            Message::Error {
                req: Some(req),
                code: ErrorCode::NoSuchFile,
                message: format!("no file here has content id {id}"),
            }
        };
        self.send(conn, &reply);
    }
}
