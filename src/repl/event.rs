//! What a peer reports, as values. [`super::Ui::event`] prints each one either as the human
//! text people and the older tests read, or (with `--json`) as one JSON object on one line with a
//! `type` field. README, "JSON output", lists every type and field; `tests/ux_json.rs` checks
//! that what is printed matches that list.

use crate::names::printable;
use crate::repl::ui::{human_bytes, human_rate};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a command failed, as scripts see it in the exit status of a batch (README, "Exit
/// status") and in the `kind` of an `error` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Any other failure: bad arguments to a command, a refusal, a full disk... (exit 1)
    Failed,
    /// A download's bytes did not match what was asked for and could not be repaired from
    /// another source (exit 3).
    Verification,
    /// The peer or the tracker could not be reached, or went away mid-command (exit 4).
    Unreachable,
    /// A download stopped before it was complete; its partial file is kept and `resume`
    /// continues it (exit 5).
    Unfinished,
}

impl Failure {
    /// The process exit status a batch ends with when a command fails this way.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Failed => EXIT_FAILED,
            Failure::Verification => EXIT_VERIFICATION,
            Failure::Unreachable => EXIT_UNREACHABLE,
            Failure::Unfinished => EXIT_UNFINISHED,
        }
    }
}

/// Exit status: everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: a command failed (or a start-up error: folder or port unusable, name refused).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: wrong command-line usage or an unusable configuration (clap's own code).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: a download failed verification and no source could repair it.
pub const EXIT_VERIFICATION: i32 = 3;
/// Exit status: a peer or the tracker could not be reached.
pub const EXIT_UNREACHABLE: i32 = 4;
/// Exit status: downloads were left unfinished (resumable) at the end of a batch.
pub const EXIT_UNFINISHED: i32 = 5;

/// A peer in a `peers` answer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerEntry {
    pub name: String,
    pub addr: String,
    /// Seconds since the tracker (or discovery) last heard from it.
    pub last_seen_secs: u64,
    /// Where it was learned: `tracker`, `exchange`, `cache`, `lan`, `manual` or `incoming`.
    pub source: &'static str,
    /// Connected now or the last attempt worked (true), the last attempt failed (false), or
    /// never tried (null; `?` in the text).
    pub reachable: Option<bool>,
}

/// A file in a `files` or `shared` answer.
#[derive(Clone, Debug, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// One content found by `search`: its names, size, SHA-256 and the peers that have it.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    pub names: Vec<String>,
    pub size: u64,
    pub sha256: String,
    pub peers: Vec<String>,
}

/// An unfinished download in a `downloads` answer.
#[derive(Clone, Debug, Serialize)]
pub struct DownloadEntry {
    pub file: String,
    pub done: u64,
    pub size: u64,
    pub percent: f64,
    pub sources: Vec<String>,
    /// `checking`, `downloading`, `waiting`, `paused` or `not running` (left by an earlier run).
    pub state: String,
    /// The human line, as printed without `--json`.
    #[serde(skip)]
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The peer accepts connections on `addr`.
    Listening { name: String, addr: String },
    /// The shared folder was scanned (at start-up, or by `rescan` when `rescan` is true).
    Sharing {
        files: usize,
        dir: String,
        hashed: usize,
        hashed_bytes: u64,
        /// Hashing speed in MB/s, when something was hashed at start-up.
        #[serde(skip_serializing_if = "Option::is_none")]
        mb_per_sec: Option<f64>,
        rescan: bool,
    },
    /// A file in the shared folder is not shared, and why.
    Skipped { file: String, reason: String },
    /// The shared folder is being hashed (at start-up, or by `rescan` when `rescan` is true):
    /// `done` of the `total` bytes this scan hashes; `file` is being read now. Now and then.
    Hashing {
        file: String,
        done: u64,
        total: u64,
        rescan: bool,
    },
    /// Registered (`again`: after losing the tracker) with the tracker at `tracker`.
    Registered { tracker: String, again: bool },
    /// The tracker refused our name (a live registration holds it, or the tracker does not
    /// accept it). The peer goes on without a registration and asks again, at least every
    /// `retry_secs`.
    NameRefused {
        tracker: String,
        name: String,
        reason: String,
        retry_secs: u64,
    },
    /// Answer to `peers`.
    Peers {
        peers: Vec<PeerEntry>,
        tracker_unreachable: bool,
    },
    /// Answer to `files PEER`.
    Files { peer: String, files: Vec<FileEntry> },
    /// Answer to `shared`: the files in the shared folder, and (`seeding`) files downloaded
    /// by this run that it also serves until it restarts.
    Shared {
        dir: String,
        files: Vec<FileEntry>,
        seeding: Vec<FileEntry>,
    },
    /// Answer to `search TEXT` (`asked`: how many peers were asked).
    Search {
        query: String,
        asked: usize,
        results: Vec<Found>,
    },
    /// A running download, at most a few times a second.
    Progress {
        file: String,
        done: u64,
        total: u64,
        bytes_per_sec: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_secs: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sources: Option<usize>,
    },
    /// A download finished and was verified (or the same bytes were already there).
    DownloadDone {
        file: String,
        path: String,
        size: u64,
        sha256: String,
        seconds: f64,
        bytes_per_sec: f64,
        /// Bytes fetched over the network in this run (less than `size` when resumed).
        bytes_fetched: u64,
        /// Bytes each source sent, by peer name.
        bytes_per_source: BTreeMap<String, u64>,
        already_there: bool,
    },
    /// Answer to `downloads`.
    Downloads { downloads: Vec<DownloadEntry> },
    /// A text message from another peer.
    Message { from: String, text: String },
    /// `msg` succeeded: the peer acknowledged the message.
    MessageDelivered { to: String },
    /// `wait-peer` succeeded.
    PeerKnown { name: String },
    /// `cancel FILE` dropped the download and its partial file.
    Cancelled { file: String },
    /// Answer to `limit`: the rate limits in bytes a second (`null`: none).
    Limits {
        down: Option<u64>,
        up: Option<u64>,
        down_per_peer: Option<u64>,
        up_per_peer: Option<u64>,
    },
    /// A command failed (in a batch, the run then exits with [`Failure::exit_code`]).
    Error { kind: Failure, message: String },
    /// Downloads left unfinished in the downloads folder: said at start-up (`quitting`
    /// false) and when the peer quits with some still open (`quitting` true, a warning).
    Unfinished {
        downloads: Vec<DownloadEntry>,
        quitting: bool,
    },
    /// `connect ADDR` (or `--peer ADDR`) reached NAME.
    Connected { name: String, addr: String },
    /// The tracker cannot be reached; the peer works without it and keeps trying.
    TrackerUnreachable { tracker: String, reason: String },
    /// A download continues from a partial file: `chunks_here` of `chunks` were already
    /// verified on disk.
    Resuming {
        file: String,
        sources: Vec<String>,
        chunks_here: u64,
        chunks: u64,
        percent: f64,
    },
    /// A source (re)joined a download that had bytes already (`others`: sources active
    /// besides it).
    SourceJoined {
        file: String,
        peer: String,
        percent: f64,
        others: usize,
    },
    /// A download lost a source's connection; it is retried (for up to `retry_secs` when no
    /// other source is left).
    SourceLost {
        file: String,
        peer: String,
        reason: String,
        percent: f64,
        others: usize,
        retry_secs: u64,
    },
    /// A source is dropped from a download (banned or cannot serve it); the others go on.
    SourceDropped {
        file: String,
        peer: String,
        reason: String,
    },
    /// `--resume-on-start`: these unfinished downloads go on in the background.
    Resumed { downloads: Vec<DownloadEntry> },
    /// Something went wrong but nothing failed.
    Warning { message: String },
    /// Any other result line (`help`, `rescan` notes, ...).
    Info { text: String },
    /// Chatter about what the peer is doing (hidden by `-q`).
    Notice { text: String },
}

/// Where a human line goes and whether `-q` hides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// A result or an incoming message: stdout, always shown.
    Result,
    /// What the peer is doing: stdout, hidden by `-q`.
    Notice,
    /// A warning or an error: stderr, always shown.
    Problem,
    /// Only for machines (progress lines): no human text.
    Silent,
}

impl Event {
    /// The `download_done` of a file that already stood, whole and right, at `path`: nothing
    /// was fetched.
    pub fn already_there(file: String, path: String, size: u64, sha256: String) -> Event {
        Event::DownloadDone {
            file,
            path,
            size,
            sha256,
            seconds: 0.0,
            bytes_per_sec: 0.0,
            bytes_fetched: 0,
            bytes_per_source: BTreeMap::new(),
            already_there: true,
        }
    }

    /// The `type` field of the JSON form.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Listening { .. } => "listening",
            Event::Sharing { .. } => "sharing",
            Event::Skipped { .. } => "skipped",
            Event::Hashing { .. } => "hashing",
            Event::Registered { .. } => "registered",
            Event::NameRefused { .. } => "name_refused",
            Event::Peers { .. } => "peers",
            Event::Files { .. } => "files",
            Event::Shared { .. } => "shared",
            Event::Search { .. } => "search",
            Event::Progress { .. } => "progress",
            Event::DownloadDone { .. } => "download_done",
            Event::Downloads { .. } => "downloads",
            Event::Message { .. } => "message",
            Event::MessageDelivered { .. } => "message_delivered",
            Event::PeerKnown { .. } => "peer_known",
            Event::Cancelled { .. } => "cancelled",
            Event::Limits { .. } => "limits",
            Event::Unfinished { .. } => "unfinished",
            Event::Resumed { .. } => "resumed",
            Event::Error { .. } => "error",
            Event::Connected { .. } => "connected",
            Event::TrackerUnreachable { .. } => "tracker_unreachable",
            Event::Resuming { .. } => "resuming",
            Event::SourceJoined { .. } => "source_joined",
            Event::SourceLost { .. } => "source_lost",
            Event::SourceDropped { .. } => "source_dropped",
            Event::Warning { .. } => "warning",
            Event::Info { .. } => "info",
            Event::Notice { .. } => "notice",
        }
    }

    pub fn weight(&self) -> Weight {
        match self {
            Event::Listening { .. }
            | Event::Sharing { .. }
            | Event::Hashing { .. }
            | Event::Registered { .. }
            | Event::Notice { .. }
            | Event::Resumed { .. }
            | Event::Unfinished {
                quitting: false, ..
            } => Weight::Notice,
            Event::Error { .. }
            | Event::Warning { .. }
            | Event::TrackerUnreachable { .. }
            | Event::SourceLost { .. }
            | Event::SourceDropped { .. }
            | Event::NameRefused { .. }
            | Event::Unfinished { quitting: true, .. } => Weight::Problem,
            Event::Progress { .. } => Weight::Silent,
            _ => Weight::Result,
        }
    }

    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"type\":\"error\",\"kind\":\"failed\",\"message\":\"cannot encode a {} event: {}\"}}",
                self.kind(),
                e.to_string().replace(['"', '\\'], "'")
            )
        })
    }

    /// The lines a person reads (errors and warnings without their `error: ` prefix). Text
    /// from the network is escaped here, so nothing it holds can move the cursor.
    pub fn human_lines(&self) -> Vec<String> {
        match self {
            Event::Listening { name, addr } => vec![format!("{name} listening on {addr}")],
            Event::Sharing {
                files,
                dir,
                hashed,
                hashed_bytes,
                mb_per_sec,
                rescan,
            } => {
                let n = count(*files, "file", "files");
                if *rescan {
                    vec![format!(
                        "sharing {n} ({hashed} hashed, {})",
                        human_bytes(*hashed_bytes)
                    )]
                } else {
                    let hashed = match mb_per_sec {
                        Some(rate) if *hashed > 0 => {
                            let secs = *hashed_bytes as f64 / (rate * 1e6).max(1.0);
                            let rate = human_rate(*hashed_bytes, secs)
                                .map(|r| format!(" at {r}"))
                                .unwrap_or_default();
                            format!("; hashed {hashed} ({}){rate}", human_bytes(*hashed_bytes))
                        }
                        _ => String::new(),
                    };
                    vec![format!("sharing {n} from {dir}{hashed}")]
                }
            }
            Event::Skipped { file, reason } => {
                vec![format!("skipped {}: {reason}", printable(file))]
            }
            Event::Hashing {
                file, done, total, ..
            } => {
                let percent = (*done as f64 * 100.0 / (*total).max(1) as f64).min(100.0);
                vec![format!(
                    "hashing {}: {} of {} ({percent:.0}%)",
                    printable(file),
                    human_bytes(*done),
                    human_bytes(*total)
                )]
            }
            Event::Registered { tracker, again } => {
                let again = if *again { "re-" } else { "" };
                vec![format!("{again}registered with tracker {tracker}")]
            }
            Event::NameRefused {
                tracker,
                name,
                reason,
                retry_secs,
            } => vec![format!(
                "the tracker {tracker} refused the name '{}': {}; going on without a \
                 registration (peers that know us still reach us) and asking again at least \
                 every {retry_secs}s",
                printable(name),
                printable(reason)
            )],
            Event::Peers {
                peers,
                tracker_unreachable,
            } => {
                if peers.is_empty() {
                    let note = if *tracker_unreachable {
                        " (the tracker is unreachable)"
                    } else {
                        ""
                    };
                    return vec![format!("no peers known{note}")];
                }
                peers
                    .iter()
                    .map(|p| {
                        let reach = match p.reachable {
                            Some(true) => "reachable",
                            Some(false) => "unreachable",
                            None => "?",
                        };
                        let (name, addr, ago) = (&p.name, &p.addr, p.last_seen_secs);
                        format!("{name}  {addr}  {ago}s ago  {}  {reach}", p.source)
                    })
                    .collect()
            }
            Event::Files { peer, files } => {
                if files.is_empty() {
                    return vec![format!("{peer} shares no files")];
                }
                files.iter().map(file_line).collect()
            }
            Event::Shared {
                dir,
                files,
                seeding,
            } => {
                let mut lines: Vec<String> = files.iter().map(file_line).collect();
                if files.is_empty() {
                    lines.push(format!("no files shared (put some in {dir})"));
                }
                if !seeding.is_empty() {
                    lines.push(format!(
                        "also seeding {} downloaded here (until this peer restarts):",
                        count(seeding.len(), "file", "files")
                    ));
                    lines.extend(seeding.iter().map(|f| format!("  {}", file_line(f))));
                }
                lines
            }
            Event::Search {
                query,
                asked,
                results,
            } => {
                if results.is_empty() {
                    return vec![format!(
                        "nothing matches '{}' among {asked} known peer(s)",
                        printable(query)
                    )];
                }
                results
                    .iter()
                    .map(|c| {
                        format!(
                            "{}  {}  {}  {} peer(s): {}",
                            printable(&c.names.join(" | ")),
                            human_bytes(c.size),
                            c.sha256,
                            c.peers.len(),
                            c.peers.join(", ")
                        )
                    })
                    .collect()
            }
            Event::Progress { .. } => Vec::new(),
            Event::DownloadDone {
                path,
                size,
                sha256,
                seconds,
                bytes_fetched,
                bytes_per_source,
                already_there,
                ..
            } => {
                let sha = short_sha(sha256);
                if *already_there {
                    return vec![format!("{path} already there (same content), sha256 {sha}")];
                }
                vec![saved_line(
                    path,
                    *size,
                    *seconds,
                    *bytes_fetched,
                    bytes_per_source,
                    sha,
                )]
            }
            Event::Unfinished {
                downloads,
                quitting,
            } => {
                let n = downloads.len();
                let list = downloads
                    .iter()
                    .map(|d| format!("{} ({:.1}%)", printable(&d.file), d.percent))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (them, s) = if n == 1 { ("it", "") } else { ("them", "s") };
                vec![if *quitting {
                    format!(
                        "quitting with {n} unfinished download{s}: {list}; their partial files are \
                         kept and `resume` continues {them} after a restart"
                    )
                } else {
                    format!("{n} unfinished download{s} here: {list}; `resume` continues {them}")
                }]
            }
            Event::Resumed { downloads } => {
                let list = downloads
                    .iter()
                    .map(|d| format!("{} ({:.1}%)", printable(&d.file), d.percent))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![format!(
                    "resuming in the background: {list}; `downloads` shows them"
                )]
            }
            Event::Downloads { downloads } => {
                if downloads.is_empty() {
                    return vec!["no unfinished downloads".to_string()];
                }
                downloads
                    .iter()
                    .map(|d| {
                        if !d.text.is_empty() {
                            return d.text.clone();
                        }
                        format!(
                            "{}  {:.1}%  {} of {}  from {}  {}",
                            printable(&d.file),
                            d.percent,
                            human_bytes(d.done),
                            human_bytes(d.size),
                            d.sources.join(", "),
                            d.state
                        )
                    })
                    .collect()
            }
            Event::Message { from, text } => vec![format!("{from}: {}", printable(text))],
            Event::MessageDelivered { to } => vec![format!("message delivered to {to}")],
            Event::PeerKnown { name } => vec![format!("{name} is known")],
            Event::Cancelled { file } => vec![format!("cancelled {}", printable(file))],
            Event::Limits {
                down,
                up,
                down_per_peer,
                up_per_peer,
            } => {
                let r = |v: &Option<u64>| crate::reactor::rate::format_rate(*v);
                vec![format!(
                    "rate limits: down {}, up {}; per peer: down {}, up {}",
                    r(down),
                    r(up),
                    r(down_per_peer),
                    r(up_per_peer)
                )]
            }
            Event::Error { message, .. } => vec![message.clone()],
            Event::Warning { message } => vec![message.clone()],
            Event::Connected { name, addr } => vec![format!("connected to {name} at {addr}")],
            Event::TrackerUnreachable { tracker, reason } => vec![format!(
                "tracker {tracker} unreachable ({reason}); working without a tracker and retrying"
            )],
            Event::Resuming {
                file,
                sources,
                chunks_here,
                chunks,
                percent,
            } => vec![format!(
                "resuming {} from {}: {chunks_here} of {chunks} chunks already here ({percent:.1}%)",
                printable(file),
                sources.join(", ")
            )],
            Event::SourceJoined {
                file,
                peer,
                percent,
                others,
            } => {
                let file = printable(file);
                vec![if *others > 0 {
                    format!("also fetching from {peer} for {file} ({percent:.1}% done)")
                } else {
                    format!("continuing {file} from {peer} ({percent:.1}% done)")
                }]
            }
            Event::SourceLost {
                file,
                peer,
                reason,
                percent,
                others,
                retry_secs,
            } => vec![if *others > 0 {
                format!("lost {peer} ({reason}); the other sources go on")
            } else {
                format!(
                    "lost {peer} ({reason}); {} kept at {percent:.1}%, retrying for up to \
                     {retry_secs}s",
                    printable(file)
                )
            }],
            Event::SourceDropped { file, peer, reason } => vec![format!(
                "{peer} {reason}; its chunks of {} come from the others",
                printable(file)
            )],
            Event::Info { text } | Event::Notice { text } => vec![text.clone()],
        }
    }
}

fn file_line(f: &FileEntry) -> String {
    format!(
        "{}  {}  {}",
        printable(&f.name),
        human_bytes(f.size),
        f.sha256
    )
}

/// `1 file`, `2 files`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Hex digits of a SHA-256 shown to people: enough to tell files apart and to `get` by
/// prefix, short enough that the summary fits a terminal line. `--json` has all 64.
const SHORT_SHA: usize = 16;

fn short_sha(sha256: &str) -> &str {
    sha256.get(..SHORT_SHA).unwrap_or(sha256)
}

/// The summary of a finished download. Sources that sent nothing are left out; when part of
/// the file was already here (a resumed download), the bytes counted are this run's only.
fn saved_line(
    path: &str,
    size: u64,
    seconds: f64,
    fetched: u64,
    per_source: &BTreeMap<String, u64>,
    sha: &str,
) -> String {
    let senders: Vec<(&String, &u64)> = per_source.iter().filter(|(_, b)| **b > 0).collect();
    let names = if senders.is_empty() {
        "what was already here".to_string()
    } else {
        senders
            .iter()
            .map(|(n, _)| printable(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rate = human_rate(fetched, seconds)
        .map(|r| format!(", {r}"))
        .unwrap_or_default();
    let this_run = if fetched < size { " in this run" } else { "" };
    let per = if senders.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = senders
            .iter()
            .map(|(n, b)| format!("{} {b}", printable(n)))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    format!(
        "saved {path} ({size} bytes, {}) from {names} in {seconds:.2}s{rate}, \
         {fetched} bytes fetched{this_run}{per}, sha256 {sha}",
        human_bytes(size)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_a_type_field_and_snake_case_names() {
        let e = Event::MessageDelivered { to: "Bob".into() };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "message_delivered");
        assert_eq!(v["to"], "Bob");
        for e in [
            Event::Info { text: "x".into() },
            Event::Error {
                kind: Failure::Unreachable,
                message: "m".into(),
            },
            Event::Peers {
                peers: vec![],
                tracker_unreachable: true,
            },
        ] {
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(v["type"], e.kind());
        }
    }

    #[test]
    fn network_text_is_escaped_for_people_but_kept_in_json() {
        let e = Event::Message {
            from: "Bob".into(),
            text: "hi\u{1b}[2J".into(),
        };
        assert!(!e.human_lines()[0].contains('\u{1b}'));
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["text"], "hi\u{1b}[2J");
        assert!(
            !e.to_json().contains('\u{1b}'),
            "JSON escapes control bytes"
        );
    }

    #[test]
    fn human_lines_match_the_plain_output() {
        let e = Event::Peers {
            peers: vec![PeerEntry {
                name: "Alice".into(),
                addr: "127.0.0.1:5".into(),
                last_seen_secs: 3,
                source: "tracker",
                reachable: None,
            }],
            tracker_unreachable: false,
        };
        assert_eq!(
            e.human_lines(),
            vec!["Alice  127.0.0.1:5  3s ago  tracker  ?"]
        );
        let e = Event::Peers {
            peers: vec![],
            tracker_unreachable: true,
        };
        assert_eq!(
            e.human_lines(),
            vec!["no peers known (the tracker is unreachable)"]
        );
        assert_eq!(Failure::Unfinished.exit_code(), 5);
    }

    fn done(fetched: u64, per: &[(&str, u64)]) -> Event {
        Event::DownloadDone {
            file: "big.iso".into(),
            path: "dl/big.iso".into(),
            size: 8 << 20,
            sha256: "ab".repeat(32),
            seconds: 0.5,
            bytes_per_sec: 0.0,
            bytes_fetched: fetched,
            bytes_per_source: per.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
            already_there: false,
        }
    }

    #[test]
    fn the_saved_line_is_short_and_in_binary_units() {
        let line = &done(8 << 20, &[("Alice", 8 << 20), ("Mallory", 0)]).human_lines()[0];
        assert_eq!(
            line,
            "saved dl/big.iso (8388608 bytes, 8.0 MiB) from Alice in 0.50s, 16.0 MiB/s, \
             8388608 bytes fetched (Alice 8388608), sha256 abababababababab"
        );
        let json: serde_json::Value = serde_json::from_str(&done(1, &[]).to_json()).unwrap();
        assert_eq!(json["sha256"], "ab".repeat(32));
        // Resumed: what this run fetched, said so; a tiny amount gets no rate.
        let line = &done(5, &[("Alice", 5)]).human_lines()[0];
        assert!(
            line.contains("in 0.50s, 5 bytes fetched in this run (Alice 5)"),
            "{line}"
        );
    }

    #[test]
    fn counts_sizes_and_sources_read_well() {
        let e = Event::Sharing {
            files: 1,
            dir: "shared".into(),
            hashed: 1,
            hashed_bytes: 9,
            mb_per_sec: Some(0.0),
            rescan: false,
        };
        assert_eq!(
            e.human_lines(),
            vec!["sharing 1 file from shared; hashed 1 (9 B)"]
        );
        let e = Event::Files {
            peer: "Alice".into(),
            files: vec![FileEntry {
                name: "a".into(),
                size: 1536,
                sha256: "00".into(),
            }],
        };
        assert_eq!(e.human_lines(), vec!["a  1.5 KiB  00"]);
        let joined = |others| Event::SourceJoined {
            file: "f".into(),
            peer: "Alice".into(),
            percent: 50.0,
            others,
        };
        assert_eq!(
            joined(0).human_lines(),
            vec!["continuing f from Alice (50.0% done)"]
        );
        assert!(joined(1).human_lines()[0].starts_with("also fetching from Alice"));
        assert_eq!(joined(0).kind(), "source_joined");
    }
}
