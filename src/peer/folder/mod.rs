//! Shared folders as trees (issue 15): the rules an entry path from the network obeys
//! (`path_rules`), a folder's checked listing and its id (`manifest`).

pub mod manifest;
pub mod path_rules;

/// How many bytes of entries a `Folder` page holds at most (far below the frame limit, so a
/// page of the longest paths still fits with its header).
pub const PAGE_BUDGET: usize = 256 * 1024;
pub mod beneath;
pub mod place;
