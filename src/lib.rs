//! p2p: peer-to-peer file sharing with a tracker for discovery and SHA-256-verified chunked
//! transfers straight between peers. The binary (`src/main.rs`) is a thin CLI over this library.

pub mod app;
pub mod demo;
pub mod identity;
pub mod names;
pub mod peer;
pub mod reactor;
pub mod repl;
pub mod secure;
#[cfg(test)]
mod sim;
pub mod tracker;
pub mod wire;
