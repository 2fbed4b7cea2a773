//! Shared folders as trees (issue 15), in pieces with one job each:
//!
//! - `path_rules`: the rules an entry path from the network obeys, and the whole-listing check;
//! - `manifest`: a folder's checked listing, its id (`tree1:`), and a listing arriving in pages;
//! - `beneath`: writing beneath one folder through descriptors, never through a symlink;
//! - `place`: putting a downloaded folder's verified files in place as a tree;
//! - `fetch_plan`: which contents a folder download still fetches, and how far it is;
//! - `record`: the resume record of a folder download.
//!
//! Sharing a tree is `index/tree_scan.rs`; answering for it, `folder_serving.rs`. Fetching one
//! with `get PEER FOLDER` (the node's glue over these pieces) is `folder_fetch.rs`.

pub mod beneath;
pub mod fetch_plan;
pub mod manifest;
pub mod path_rules;
pub mod place;
pub mod record;

/// How many bytes of entries a `Folder` page holds at most (far below the frame limit, so a
/// page of the longest paths still fits with its header).
pub const PAGE_BUDGET: usize = 256 * 1024;
