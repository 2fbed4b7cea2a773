//! The peer: shares a folder, downloads from other peers, chats, and finds the others through
//! the tracker. `node.rs` is the state machine the reactor drives; it reports through a
//! [`Frontend`] and takes [`Command`]s. Wiring a peer to a terminal or a batch is `app.rs`'s
//! job: nothing here imports a front end.

pub mod chunk_check;
pub mod command;
pub mod content_id;
pub mod dht;
pub mod dht_glue;
pub mod dht_record;
pub mod dht_worker;
mod dialer;
pub mod disk_jobs;
mod download;
pub mod event;
mod exchange;
mod exchange_glue;
pub mod file_hasher;
mod find;
mod find_state;
pub(crate) mod first_flight;
pub mod folder;
mod folder_fetch;
mod folder_job;
mod folder_serving;
pub mod frontend;
pub mod gateway;
mod get;
pub mod hash_worker;
mod hashing;
mod hashing_state;
pub mod index;
mod jitter;
pub mod lan;
pub mod layout;
pub mod manifest;
pub mod node;
mod op;
mod ops;
pub mod partial;
pub mod peer_cache;
pub mod peer_table;
pub mod pins;
pub mod port_map;
pub mod port_map_glue;
mod punch;
mod reaching;
mod relay_client;
mod relay_glue;
pub mod resolver;
pub mod resume;
mod seeding;
mod session;
mod sessions;
pub mod state_file;
mod tracker_glue;
mod tracker_link;
mod transfer;
mod transfer_state;
mod trust;
pub mod upnp;
pub mod upnp_glue;

pub use command::{Command, LimitKind, Parser};
pub use event::{Event, Failure};
pub use frontend::{Frontend, Progress, ProgressOf, Recorded, Recorder};
pub use layout::{clean_crash_leftovers, hash_cache_path, state_dir};
pub use node::{Mode, PeerConfig, PeerNode};
