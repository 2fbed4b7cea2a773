//! What `tests/hashing.rs` and the hashing test in `tests/ux_json.rs` share: sparse files, a
//! check that a scan is still going on, and Bob timing his commands. (Split out of
//! `tests/hashing.rs` when its JSON test moved to `tests/ux_json.rs`, suite time, issue 12.)

// Each test binary uses a different subset.
#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub const GIB: u64 = 1 << 30;
/// The bound each command must meet while the other side hashes (the target is under 1 s).
pub const ANSWER_BOUND: Duration = Duration::from_secs(3);

/// A file of `size` zero bytes that takes no disk space.
pub fn sparse(dir: &Path, name: &str, size: u64) {
    File::create(dir.join(name))
        .and_then(|f| f.set_len(size))
        .unwrap_or_else(|e| panic!("cannot create sparse {name}: {e}"));
}

/// Whether the scan is still going on: no summary of it printed so far. The start-up scan's
/// summary is `sharing N files from DIR...` (or a JSON `sharing` event); a rescan's is
/// `sharing N files (H hashed, SIZE)`.
pub fn still_hashing(proc: &mut Proc, rescan: bool) -> bool {
    !proc.lines_so_far().iter().any(|l| {
        let human = l.starts_with("sharing ") && l.contains(" hashed, ") == rescan;
        human || (!rescan && l.contains("\"type\":\"sharing\""))
    })
}

/// Bob, a `--json --batch -` peer fed one command at a time, each timed from when it was
/// written to when its answer came.
pub struct TimedBob {
    proc: Proc,
    stdin: std::process::ChildStdin,
    _dirs: PeerDirs,
}

impl TimedBob {
    pub fn start(tracker: std::net::SocketAddr) -> TimedBob {
        let dirs = PeerDirs::new();
        let cmd = peer_command("Bob", tracker, &dirs, &["--json", "--batch", "-"]);
        let (mut proc, stdin) = Proc::spawn_with_stdin("Bob", cmd);
        // Commands start once Bob has heard from the tracker.
        Self::wait_in(&mut proc, "registered", STARTUP);
        TimedBob {
            proc,
            stdin,
            _dirs: dirs,
        }
    }

    pub fn wait_in(proc: &mut Proc, kind: &str, timeout: Duration) -> Value {
        let want = format!("\"type\":\"{kind}\"");
        let line = proc.wait_line(&format!("a `{kind}` event"), timeout, |l| l.contains(&want));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Runs `command`; its answer, a `kind` event, must come within [`ANSWER_BOUND`].
    pub fn ask(&mut self, command: &str, kind: &str) -> (Value, Duration) {
        let asked = Instant::now();
        writeln!(self.stdin, "{command}").expect("Bob reads commands");
        let event = Self::wait_in(&mut self.proc, kind, ANSWER_BOUND);
        (event, asked.elapsed())
    }
}

pub fn file_names(files_event: &Value) -> Vec<String> {
    files_event["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .map(|f| f["name"].as_str().expect("a name").to_string())
        .collect()
}
