//! Tests on the in-memory harness: protocol logic (timeouts, backoff, bans, end game, stalls,
//! reconnects, silent trackers, peer exchange, names refused) in fake time. Each test says
//! which process test it came from.

mod downloads;
mod harness;
mod tracker_link;
