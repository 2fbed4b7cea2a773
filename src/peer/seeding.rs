//! Serving what a download in progress already has (partial seeding), and `GetHave` for
//! shared and partial files alike. Only verified chunks are ever served.

use super::node::PeerNode;
use crate::reactor::ConnId;
use crate::wire::{ErrorCode, FileInfo, Message, Sha256};

impl PeerNode {
    /// Shared files, then downloads in progress (marked partial) whose content is not shared.
    pub(super) fn listing(&self) -> Vec<FileInfo> {
        let mut files = self.index.file_infos();
        for t in self.downloads.values() {
            if self.index.by_sha(&t.dl.sha256()).is_none() {
                files.push(FileInfo {
                    name: t.file_name().to_string(),
                    size: t.size(),
                    sha256: t.dl.sha256(),
                    partial: true,
                });
            }
        }
        files
    }

    /// `GetManifest` for a file we are still downloading. `None`: not one of ours.
    pub(super) fn partial_manifest(&self, req: u64, sha256: &Sha256) -> Option<Message> {
        let m = self.download_of(sha256)?.dl.manifest();
        Some(Message::Manifest {
            req,
            sha256: *sha256,
            size: m.size,
            chunk_size: m.chunk_size,
            chunk_hashes: m.hashes_to_wire(),
        })
    }

    /// `GetChunk` for a file we are still downloading. `None`: not one of ours. The index is
    /// another peer's: out of range, it is a chunk not here.
    pub(super) fn partial_chunk(&self, req: u64, sha256: &Sha256, index: u64) -> Option<Message> {
        let dl = self.download_of(sha256)?;
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

    pub(super) fn serve_have(&mut self, conn: ConnId, req: u64, sha256: Sha256) {
        let reply = if self.index.by_sha(&sha256).is_some() {
            Message::Have {
                req,
                complete: true,
                bitmap: Vec::new(),
            }
        } else if let Some(t) = self.download_of(&sha256) {
            Message::Have {
                req,
                complete: false,
                bitmap: t.dl.have_bitmap(),
            }
        } else {
            Message::Error {
                req: Some(req),
                code: ErrorCode::NoSuchFile,
                message: format!("no file here has SHA-256 {sha256}"),
            }
        };
        self.send(conn, &reply);
    }
}
