//! Answering `ListFolders` and `GetFolder` (PROTOCOL.md §8.5): the folders shared as trees and
//! their listings, a page at a time. The files in them are served by content id like any other
//! (`GetManifest`, `GetChunk`, `GetHave`).

use super::folder::PAGE_BUDGET;
use super::node::PeerNode;
use crate::reactor::ConnId;
use crate::wire::{ErrorCode, FolderId, Message};

impl PeerNode {
    pub(super) fn serve_folders(&mut self, conn: ConnId, req: u64) {
        let folders = self.index.folder_infos();
        self.send(conn, &Message::Folders { req, folders });
    }

    /// One page of a folder's listing from entry `start` (empty past the end).
    pub(super) fn serve_folder(&mut self, conn: ConnId, req: u64, id: FolderId, start: u64) {
        let reply = match self.index.folder_by_id(&id) {
            Some(m) => Message::Folder {
                req,
                id,
                total: m.entries().len() as u64,
                start,
                entries: m.page(start, PAGE_BUDGET),
            },
            None => Message::Error {
                req: Some(req),
                code: ErrorCode::NoSuchFile,
                message: format!("no folder here has id {id}"),
            },
        };
        self.send(conn, &reply);
    }
}
