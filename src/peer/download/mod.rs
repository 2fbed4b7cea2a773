//! A download as a value: a state machine with no socket, no disk and no clock inside, fed
//! with `handle_*` inputs (each with the time) and drained through `poll_output`, the shape of
//! quinn-proto's `Connection`. The node's side (`transfer.rs`) routes connections and request
//! ids to it and carries its outputs out; the unit tests (`tests.rs`) drive it with fake time
//! and an in-memory store.
//!
//! - `machine.rs`: [`Download`] itself: sources, their states, bans, stalls, pauses,
//!   checkpoints and the end; its inputs, outputs and timers; the poll order.
//! - `output.rs`: what it says: [`Output`], [`Report`], [`DropReason`], [`End`].
//! - `sources.rs`: the inputs about sources (reaching, manifest, chunk map, chunk answers,
//!   losses).
//! - `scheduler.rs`: which chunk to ask of which source, and the one record of what is in
//!   flight (windows, the end game, stalls).
//! - `chunk.rs`: [`ChunkIndex`], a chunk index checked against the file (where a number from
//!   the network becomes trusted), chunk maps, the check of a chunk against the manifest.
//! - `store.rs`: the disk behind one small interface ([`Store`]): the partial file, the
//!   resume record, durable checkpoints and publishing; [`DiskStore`] over `partial.rs` and
//!   `resume.rs`, and an in-memory one for the tests.

mod chunk;
mod machine;
mod output;
mod rate_meter;
mod scheduler;
mod sources;
mod store;
#[cfg(test)]
mod tests;

pub use chunk::{ChunkFault, ChunkIndex, check_hash};
pub use machine::Download;
pub use output::{Ask, DropReason, End, Output, Pause, Report, Status};
pub use rate_meter::at_limit;
pub use scheduler::SourceId;
pub use sources::{ChunkAnswer, HaveAnswer, ManifestAnswer, Reached};
pub use store::{CheckpointJob, DiskStore, Store, run_disk_output};

/// A download of this run, from a counter of its own (never a request id or a connect tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DownloadId(pub u64);

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}
