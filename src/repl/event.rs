//! How a peer's [`Event`]s read: the human lines people and the older tests read, and (with
//! `--json`) one JSON object on one line with a `type` field. README, "JSON output", lists
//! every type and field; `tests/ux_json.rs` checks that what is printed matches that list. The
//! values themselves are the engine's (`peer/event.rs`); every sentence is made here.

use super::text::{human_bytes, human_rate, info_text, notice_text, problem_text, warning_text};
use crate::names::printable;
use crate::peer::event::{DownloadEntry, Event, Failure, FileEntry, FolderListed};
use serde::Serialize;
use std::collections::BTreeMap;

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

/// What goes in front of an event's lines for people: `error: `, `warning: ` or nothing.
pub fn tag(event: &Event) -> &'static str {
    match event {
        Event::Error { .. } => "error: ",
        Event::Warning(_)
        | Event::TrackerUnreachable { .. }
        | Event::SourceLost { .. }
        | Event::SourceDropped { .. }
        | Event::NameRefused { .. }
        | Event::Unfinished { quitting: true, .. } => "warning: ",
        _ => "",
    }
}

pub fn weight(event: &Event) -> Weight {
    match event {
        Event::Listening { .. }
        | Event::Sharing { .. }
        | Event::Hashing { .. }
        | Event::Registered { .. }
        | Event::Notice(_)
        | Event::Resumed { .. }
        | Event::Unfinished {
            quitting: false, ..
        } => Weight::Notice,
        Event::Error { .. }
        | Event::Warning(_)
        | Event::TrackerUnreachable { .. }
        | Event::SourceLost { .. }
        | Event::SourceDropped { .. }
        | Event::NameRefused { .. }
        | Event::Unfinished { quitting: true, .. } => Weight::Problem,
        Event::Progress { .. } | Event::FolderFile { .. } => Weight::Silent,
        _ => Weight::Result,
    }
}

/// The JSON form of the events whose text is made here: the same shapes as when the engine
/// carried the sentence itself.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Worded<'a> {
    Error { kind: Failure, message: &'a str },
    Warning { message: &'a str },
    Info { text: &'a str },
    Notice { text: &'a str },
}

/// One JSON object, no newline.
pub fn to_json(event: &Event) -> String {
    let text;
    let worded = match event {
        Event::Error { kind, problem } => {
            text = problem_text(problem);
            Some(Worded::Error {
                kind: *kind,
                message: &text,
            })
        }
        Event::Warning(w) => {
            text = warning_text(w);
            Some(Worded::Warning { message: &text })
        }
        Event::Info(i) => {
            text = info_text(i);
            Some(Worded::Info { text: &text })
        }
        Event::Notice(n) => {
            text = notice_text(n);
            Some(Worded::Notice { text: &text })
        }
        _ => None,
    };
    let json = match worded {
        Some(w) => serde_json::to_string(&w),
        None => serde_json::to_string(event),
    };
    json.unwrap_or_else(|e| {
        format!(
            "{{\"type\":\"error\",\"kind\":\"failed\",\"message\":\"cannot encode a {} event: {}\"}}",
            event.kind(),
            e.to_string().replace(['"', '\\'], "'")
        )
    })
}

/// The lines a person reads (errors and warnings without their `error: ` prefix). Text
/// from the network is escaped here, so nothing it holds can move the cursor.
pub fn human_lines(event: &Event) -> Vec<String> {
    match event {
        Event::Listening { name, addr, id } => vec![
            format!("{name} listening on {addr}"),
            format!("peer id {id}"),
        ],
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
                        // Connected through the relay: how, rather than only whether.
                        Some(true) if p.via == Some("relayed") => "relayed",
                        Some(true) => "reachable",
                        Some(false) => "unreachable",
                        None => "?",
                    };
                    let (name, addr, ago) = (&p.name, &p.addr, p.last_seen_secs);
                    let row = format!("{name}  {addr}  {ago}s ago  {}  {reach}", p.source);
                    // The short id: enough to tell two peers apart, never to trust one by.
                    match p.id.as_deref().and_then(|id| id.get(..7)) {
                        Some(short) => format!("{row}  {short}"),
                        None => row,
                    }
                })
                .collect()
        }
        Event::Files {
            peer,
            files,
            folders,
        } => {
            if files.is_empty() && folders.is_empty() {
                return vec![format!("{peer} shares no files")];
            }
            let folder_lines = folders.iter().map(folder_line);
            folder_lines.chain(files.iter().map(file_line)).collect()
        }
        Event::Shared {
            dir,
            files,
            seeding,
            folders,
        } => {
            let mut lines: Vec<String> = folders.iter().map(folder_line).collect();
            lines.extend(files.iter().map(file_line));
            if files.is_empty() && folders.is_empty() {
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
                        "{}  {}  {}  {}  {} peer(s): {}",
                        printable(&c.names.join(" | ")),
                        human_bytes(c.size),
                        c.content_id,
                        c.sha256,
                        c.peers.len(),
                        c.peers.join(", ")
                    )
                })
                .collect()
        }
        Event::Progress { .. } | Event::FolderFile { .. } => Vec::new(),
        Event::FolderDone {
            path,
            folder_id,
            files,
            size,
            seconds,
            bytes_fetched,
            contents_kept,
            sources,
            ..
        } => {
            let rate = human_rate(*bytes_fetched, *seconds)
                .map(|r| format!(", {r}"))
                .unwrap_or_default();
            let kept = match contents_kept {
                0 => String::new(),
                n => format!(", {n} kept from an earlier run"),
            };
            let from: Vec<String> = sources.iter().map(|s| printable(s)).collect();
            vec![format!(
                "saved {path}/ ({files} files, {}) in {seconds:.1}s{rate} from {}{kept}; \
                 verified {}",
                human_bytes(*size),
                from.join(", "),
                folder_id
                    .get(..crate::peer::folder::manifest::TEXT_PREFIX.len() + SHORT_SHA)
                    .unwrap_or(folder_id)
            )]
        }
        Event::DownloadDone {
            path,
            size,
            content_id,
            sha256,
            sha256_checked,
            seconds,
            bytes_fetched,
            bytes_per_source,
            already_there,
            ..
        } => {
            let id = short_id(content_id);
            if *already_there {
                return vec![format!("{path} already there (same content, {id})")];
            }
            // Exactly what was proved: the content id always (every chunk matched a manifest
            // that makes it), the whole file's SHA-256 only when it was computed.
            let proof = if *sha256_checked {
                format!("verified {id} and sha256 {}", short_sha(sha256))
            } else {
                format!("verified {id}")
            };
            vec![saved_line(
                path,
                *size,
                *seconds,
                *bytes_fetched,
                bytes_per_source,
                &proof,
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
            downloads.iter().map(download_line).collect()
        }
        Event::Message {
            from,
            id,
            first_contact,
            text,
        } => {
            // A name seen for the first time is only a claim so far: show whose key it is.
            let who = if *first_contact {
                format!("{from} [new, {}]", &id[..7.min(id.len())])
            } else {
                from.clone()
            };
            vec![format!("{who}: {}", printable(text))]
        }
        Event::Pins { pins } if pins.is_empty() => {
            vec!["no names pinned yet (a name is pinned to the key it is first seen with)".into()]
        }
        Event::Pins { pins } => pins
            .iter()
            .map(|p| format!("{:<16} {}", p.name, p.id))
            .collect(),
        Event::Trusted { name, id, replaced } => match replaced {
            Some(old) => vec![format!("{name} is now pinned to {id} (was {old})")],
            None => vec![format!("{name} is pinned to {id}")],
        },
        Event::Forgotten { name, id } => vec![format!(
            "{name} is no longer pinned (was {id}); the next key seen with it is pinned"
        )],
        Event::MessageDelivered { to } => vec![format!("message delivered to {to}")],
        Event::PeerKnown { name } => vec![format!("{name} is known")],
        Event::Cancelled { file } => vec![format!("cancelled {}", printable(file))],
        Event::Limits {
            down,
            up,
            down_per_peer,
            up_per_peer,
            exempt_loopback,
        } => {
            let r = |v: &Option<u64>| crate::reactor::rate::format_rate(*v);
            let loopback = if *exempt_loopback {
                " (not for this machine: loopback is exempt)"
            } else {
                ""
            };
            vec![format!(
                "rate limits: down {}, up {}; per peer: down {}, up {}{loopback}",
                r(down),
                r(up),
                r(down_per_peer),
                r(up_per_peer)
            )]
        }
        Event::Error { problem, .. } => vec![problem_text(problem)],
        Event::Warning(warning) => vec![warning_text(warning)],
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
        Event::Info(info) => vec![info_text(info)],
        Event::Notice(notice) => vec![notice_text(notice)],
    }
}

fn file_line(f: &FileEntry) -> String {
    format!(
        "{}  {}  {}  {}",
        printable(&f.name),
        human_bytes(f.size),
        f.content_id,
        f.sha256
    )
}

/// A shared folder: `NAME/  N files  SIZE  tree1:ID`.
fn folder_line(f: &FolderListed) -> String {
    format!(
        "{}/  {}  {}  {}",
        printable(&f.name),
        count(f.files as usize, "file", "files"),
        human_bytes(f.size),
        f.folder_id
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

/// A content id as people see it in a summary: the `cid1:` tag and [`SHORT_SHA`] digits.
fn short_id(content_id: &str) -> &str {
    content_id
        .get(..crate::peer::content_id::TEXT_PREFIX.len() + SHORT_SHA)
        .unwrap_or(content_id)
}

/// The summary of a finished download. Sources that sent nothing are left out; when part of
/// the file was already here (a resumed download), the bytes counted are this run's only.
fn saved_line(
    path: &str,
    size: u64,
    seconds: f64,
    fetched: u64,
    per_source: &BTreeMap<String, u64>,
    proof: &str,
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
         {fetched} bytes fetched{this_run}{per}, {proof}",
        human_bytes(size)
    )
}

/// One line of the `downloads` answer.
fn download_line(d: &DownloadEntry) -> String {
    let (file, percent) = (printable(&d.file), d.percent);
    let (done, size) = (human_bytes(d.done), human_bytes(d.size));
    let sources = d.sources.join(", ");
    let Some(run) = &d.running else {
        if d.state == "not running" {
            return format!(
                "{file}  {percent:.1}%  {done} of {size}  from {sources}  not running (resume to \
                 continue)"
            );
        }
        return format!(
            "{file}  {percent:.1}%  {done} of {size}  from {sources}  {}",
            d.state
        );
    };
    let state = match d.state.as_str() {
        "paused" => "paused".to_string(),
        "checking" => "checking the chunks already here".to_string(),
        "downloading" => format!("downloading from {} source(s)", run.active),
        _ => "waiting for a source".to_string(),
    };
    let per_source: Vec<String> = run
        .bytes_per_source
        .iter()
        .map(|(name, bytes)| format!("{name} {bytes}"))
        .collect();
    let mut line = format!(
        "{file}  {percent:.1}%  {done} of {size}  from {sources}  {state}  ({})",
        per_source.join(", ")
    );
    match d.limited_by.as_deref() {
        Some("max_down") => line.push_str("  limited by --max-down"),
        Some("max_down_per_peer") => line.push_str("  limited by --max-down-per-peer"),
        Some(other) => line.push_str(&format!("  limited by {other}")),
        None => {}
    }
    for (name, why) in &run.dropped {
        line.push_str(&format!("; {name} dropped: {why}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::event::{Info, PeerEntry, Problem};

    #[test]
    fn json_has_a_type_field_and_snake_case_names() {
        let e = Event::MessageDelivered { to: "Bob".into() };
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
        assert_eq!(v["type"], "message_delivered");
        assert_eq!(v["to"], "Bob");
        for e in [
            Event::Info(Info::NoUnfinishedDownloads),
            Event::Error {
                kind: Failure::Unreachable,
                problem: Problem::Text("m".into()),
            },
            Event::Peers {
                peers: vec![],
                tracker_unreachable: true,
            },
        ] {
            let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
            assert_eq!(v["type"], e.kind());
        }
    }

    #[test]
    fn network_text_is_escaped_for_people_but_kept_in_json() {
        let e = Event::Message {
            from: "Bob".into(),
            id: "AAAAAAA-BBBBBBB".into(),
            first_contact: false,
            text: "hi\u{1b}[2J".into(),
        };
        assert!(!human_lines(&e)[0].contains('\u{1b}'));
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
        assert_eq!(v["text"], "hi\u{1b}[2J");
        assert!(
            !to_json(&e).contains('\u{1b}'),
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
                id: None,
                via: None,
            }],
            tracker_unreachable: false,
        };
        assert_eq!(
            human_lines(&e),
            vec!["Alice  127.0.0.1:5  3s ago  tracker  ?"]
        );
        let e = Event::Peers {
            peers: vec![],
            tracker_unreachable: true,
        };
        assert_eq!(
            human_lines(&e),
            vec!["no peers known (the tracker is unreachable)"]
        );
        assert_eq!(Failure::Unfinished.exit_code(), 5);
    }

    /// The rows `peer_table.rs` lists (its `rows_show_source_and_reachability`), as printed.
    #[test]
    fn peer_rows_show_source_and_reachability() {
        let row = |name: &str, port, secs, source, reachable| PeerEntry {
            name: name.into(),
            addr: format!("127.0.0.1:{port}"),
            last_seen_secs: secs,
            source,
            reachable,
            id: None,
            via: None,
        };
        let mut b = row("B", 2, 0, "lan", Some(true));
        b.id = Some("QUQPACM-JGCTVIW-5ELPXOL-IPXXLI4-G36OQNE-Y4BV5HY-LUSUY5K-U3JZVAN".into());
        let e = Event::Peers {
            peers: vec![
                row("A", 1, 3, "tracker", None),
                b,
                row("C", 3, 0, "cache", Some(false)),
            ],
            tracker_unreachable: false,
        };
        assert_eq!(
            human_lines(&e),
            [
                "A  127.0.0.1:1  3s ago  tracker  ?",
                "B  127.0.0.1:2  0s ago  lan  reachable  QUQPACM",
                "C  127.0.0.1:3  0s ago  cache  unreachable",
            ]
        );
    }

    fn done(fetched: u64, per: &[(&str, u64)]) -> Event {
        Event::DownloadDone {
            file: "big.iso".into(),
            path: "dl/big.iso".into(),
            size: 8 << 20,
            content_id: format!("cid1:{}", "cd".repeat(32)),
            sha256: "ab".repeat(32),
            sha256_checked: false,
            seconds: 0.5,
            bytes_per_sec: 0.0,
            bytes_fetched: fetched,
            bytes_per_source: per.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
            already_there: false,
        }
    }

    #[test]
    fn the_saved_line_is_short_and_in_binary_units() {
        let line = &human_lines(&done(8 << 20, &[("Alice", 8 << 20), ("Mallory", 0)]))[0];
        assert_eq!(
            line,
            "saved dl/big.iso (8388608 bytes, 8.0 MiB) from Alice in 0.50s, 16.0 MiB/s, \
             8388608 bytes fetched (Alice 8388608), verified cid1:cdcdcdcdcdcdcdcd"
        );
        let json: serde_json::Value = serde_json::from_str(&to_json(&done(1, &[]))).unwrap();
        assert_eq!(json["sha256"], "ab".repeat(32));
        assert_eq!(json["content_id"], format!("cid1:{}", "cd".repeat(32)));
        assert_eq!(json["sha256_checked"], false);
        // Asked for by SHA-256, the whole file was hashed too: the line says both.
        let mut checked = done(8 << 20, &[("Alice", 8 << 20)]);
        if let Event::DownloadDone { sha256_checked, .. } = &mut checked {
            *sha256_checked = true;
        }
        let line = &human_lines(&checked)[0];
        assert!(
            line.ends_with("verified cid1:cdcdcdcdcdcdcdcd and sha256 abababababababab"),
            "{line}"
        );
        // Resumed: what this run fetched, said so; a tiny amount gets no rate.
        let line = &human_lines(&done(5, &[("Alice", 5)]))[0];
        assert!(
            line.contains("in 0.50s, 5 bytes fetched in this run (Alice 5)"),
            "{line}"
        );
    }

    /// A download held at a rate limit says which one, in words and in `--json`.
    #[test]
    fn a_download_held_at_a_limit_says_which() {
        let entry = |limited_by: Option<&str>| DownloadEntry {
            file: "f.bin".into(),
            done: 1 << 20,
            size: 4 << 20,
            percent: 25.0,
            sources: vec!["Alice".into()],
            state: "downloading".into(),
            limited_by: limited_by.map(String::from),
            running: Some(crate::peer::event::RunningDownload {
                active: 1,
                bytes_per_source: vec![("Alice".into(), 1 << 20)],
                dropped: Vec::new(),
            }),
        };
        let line = download_line(&entry(Some("max_down_per_peer")));
        assert!(line.ends_with("  limited by --max-down-per-peer"), "{line}");
        assert!(!download_line(&entry(None)).contains("limited"));
        let json = serde_json::to_value(entry(Some("max_down"))).unwrap();
        assert_eq!(json["limited_by"], "max_down");
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
            human_lines(&e),
            vec!["sharing 1 file from shared; hashed 1 (9 B)"]
        );
        let e = Event::Files {
            peer: "Alice".into(),
            files: vec![FileEntry {
                name: "a".into(),
                size: 1536,
                content_id: "cid1:11".into(),
                sha256: "00".into(),
            }],
            folders: vec![FolderListed {
                name: "Album".into(),
                folder_id: "tree1:22".into(),
                files: 12,
                size: 3 << 20,
            }],
        };
        assert_eq!(
            human_lines(&e),
            vec![
                "Album/  12 files  3.0 MiB  tree1:22",
                "a  1.5 KiB  cid1:11  00"
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
        assert_eq!(v["folders"][0]["name"], "Album");
        assert_eq!(v["folders"][0]["files"], 12);
        let joined = |others| Event::SourceJoined {
            file: "f".into(),
            peer: "Alice".into(),
            percent: 50.0,
            others,
        };
        assert_eq!(
            human_lines(&joined(0)),
            vec!["continuing f from Alice (50.0% done)"]
        );
        assert!(human_lines(&joined(1))[0].starts_with("also fetching from Alice"));
        assert_eq!(joined(0).kind(), "source_joined");
    }
}
