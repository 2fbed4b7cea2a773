//! The words for what the engine reports as kinds with facts: failures, warnings, notices
//! and help (`peer/event.rs` has the values), and the units people read sizes and rates in.
//! Text from the network is escaped here, like everywhere a person reads it.

use super::command::{help_for, help_text};
use crate::names::printable;
use crate::peer::event::{Info, Notice, Problem, Warning};

/// Why a command failed, in words.
pub fn problem_text(problem: &Problem) -> String {
    match problem {
        Problem::Input(text) | Problem::Text(text) => text.clone(),
        Problem::Interrupted => "interrupted".to_string(),
        Problem::NoParser => "this peer takes no command lines".to_string(),
        Problem::Paused {
            file,
            percent,
            done,
            size,
        } => {
            let name = printable(file);
            format!(
                "interrupted: {name} paused at {percent:.1}% ({} of {}), partial file kept — \
                 `resume {name}` continues it",
                human_bytes(*done),
                human_bytes(*size)
            )
        }
        Problem::MessageTooLong { bytes, limit } => {
            format!("message is {bytes} bytes; the limit is {limit}")
        }
        Problem::NoSource => "no source".to_string(),
        Problem::NoHashingThread => "cannot rescan: the hashing thread is not running".to_string(),
        Problem::BadFolder {
            peer,
            folder,
            error,
        } => format!(
            "{} sent a listing of the folder '{}' that is refused: {error}; nothing was written",
            printable(peer),
            printable(folder)
        ),
        Problem::FolderUnfinished {
            folder,
            files_done,
            files_total,
            why,
        } => format!(
            "the folder '{}' is unfinished ({files_done} of {files_total} files): {}; `resume {}` \
             continues it",
            printable(folder),
            problem_text(why),
            printable(folder)
        ),
        Problem::IsThisPeer { name } => format!("'{name}' is this peer"),
        Problem::UnknownPeer {
            name,
            near,
            tracker_unreachable,
        } => {
            let mut hint = match near {
                Some(near) => format!("; did you mean {near}?"),
                None => String::new(),
            };
            if *tracker_unreachable {
                hint.push_str(" (the tracker is unreachable)");
            }
            format!("unknown peer '{}'{hint}", printable(name))
        }
        Problem::CannotReach { peer, addr, error } => {
            format!("cannot reach {peer} at {addr}: {error}")
        }
        Problem::ConnectionLost { peer, why } => {
            format!("connection to {} lost: {why}", printable(peer))
        }
        Problem::PeerError { peer, message } => format!("{peer}: {}", printable(message)),
        Problem::NoSuchFile { peer, file } => {
            format!("{peer} has no file named '{}'", printable(file))
        }
        Problem::BadManifest { peer, error } => format!("{peer} sent a bad manifest: {error}"),
        Problem::Unexpected { peer, message } => {
            format!("{peer} answered with an unexpected {message}")
        }
        Problem::DidNotAppear { name } => format!("{} did not appear in time", printable(name)),
        Problem::TimedOut { peer } => format!(
            "timed out waiting for {}",
            peer.as_deref().unwrap_or("the tracker")
        ),
        Problem::NothingShares { query } => {
            let first = query.split_whitespace().next().unwrap_or("");
            let hint = if query.contains(' ') {
                format!(" (and '{}' is not a known peer)", printable(first))
            } else {
                String::new()
            };
            format!("no known peer shares '{}'{hint}", printable(query))
        }
        Problem::Ambiguous { query, candidates } => {
            let list: Vec<String> = candidates
                .iter()
                .map(|c| {
                    format!(
                        "{} (sha256 {}, {} bytes, as {}) at {}",
                        c.content_id,
                        c.sha256,
                        c.size,
                        printable(&c.names.join(" | ")),
                        c.peers.join(", ")
                    )
                })
                .collect();
            format!(
                "'{}' names different files: {}; name the peer (get PEER FILE) or give a \
                 content id (cid1:…) or SHA-256 prefix",
                printable(query),
                list.join("; ")
            )
        }
        Problem::NotAPeerAddress { addr } => {
            format!("cannot connect to {addr}: not a peer's address")
        }
        Problem::CannotResolve { addr, why } => {
            format!("cannot connect to '{}': {why}", printable(addr))
        }
        Problem::CannotConnect { addr, why } => format!("cannot connect to {addr}: {why}"),
        Problem::NeedsDht { id } => format!(
            "cannot connect to {id}: finding a peer by its id needs the DHT (start the peer \
             with --dht, or connect to its HOST:PORT)"
        ),
        Problem::PeerNotFound { id, why } => format!("cannot find {id} on the DHT: {why}"),
        Problem::CannotWrite {
            file,
            part,
            error,
            percent,
        } => format!(
            "cannot write {part}: {error}; the download is paused at {percent:.1}% — `resume {}` \
             continues it once the problem is fixed",
            printable(file)
        ),
        Problem::SourcesGone {
            file,
            sources,
            retry_secs,
            percent,
        } => {
            let name = printable(file);
            format!(
                "{} did not come back within {retry_secs}s; {name} is kept at {percent:.1}% — \
                 `resume {name}` continues it",
                sources.join(", ")
            )
        }
        Problem::NoRoom {
            dir,
            file,
            needed,
            free,
        } => format!(
            "not enough space in {dir} for {}: {} more needed, {} free; make room and try again",
            printable(file),
            human_bytes(*needed),
            human_bytes(*free)
        ),
    }
}

/// A warning, in words (without its `warning: ` prefix).
pub fn warning_text(warning: &Warning) -> String {
    match warning {
        Warning::PeerCache(text) | Warning::HashCache(text) => text.clone(),
        Warning::PeerCacheWrite { path, error } => {
            format!("cannot write the peer cache {path}: {error}")
        }
        Warning::CannotConnect { addr, why } => format!("cannot connect to {addr}: {why}"),
        Warning::Unanswered { peers, query } => format!(
            "{} could not be asked; the '{}' found is the only one among the peers that \
             answered (give a SHA-256 prefix to be sure)",
            peers.join(", "),
            printable(query)
        ),
        Warning::HashingStopped { files, bytes } => {
            let (s, them) = if *files == 1 {
                ("", "it")
            } else {
                ("s", "them")
            };
            format!(
                "hashing stopped: {files} file{s} ({}) not shared; `rescan` hashes {them}",
                human_bytes(*bytes)
            )
        }
        Warning::ScanFailed { error } => {
            format!("{error}; sharing nothing until `rescan` works")
        }
        Warning::Tracker { message } => format!("tracker: {}", printable(message)),
        Warning::BadFrame { peer, error } => format!("dropping {peer}: {error}"),
        Warning::PeerClosed { peer, message } => {
            format!("{peer} closed the connection: {}", printable(message))
        }
        Warning::RecordUnusable { file, why } => format!(
            "the resume record of {} is unusable ({why}); checking the partial file instead",
            printable(file)
        ),
        Warning::TornChunks {
            file,
            failed,
            recorded,
        } => format!(
            "{}: {failed} of the {recorded} chunks recorded as done failed verification (torn \
             or lost writes); they will be fetched again",
            printable(file)
        ),
        Warning::BadChunk { peer, fault, chunk } => {
            format!("{peer} sent {fault} (chunk {chunk}); fetching it again")
        }
        Warning::Impostor {
            name,
            pinned,
            presented,
        } => format!(
            "refused a peer calling itself {name}: it proved key {presented}, but {name} is \
             pinned to {pinned} (`trust {name} {presented}` if {name} has a new key)"
        ),
        Warning::PinsWrite { path, error } => {
            format!("cannot save the pinned names to {path}: {error} (they hold for this run)")
        }
        Warning::ForgedManifest { peer, file, error } => format!(
            "{peer} sent a forged manifest for {} ({error}): nothing is fetched from it",
            printable(file)
        ),
        Warning::CannotShare { path, error } => format!("cannot share {path}: {error}"),
        Warning::NotResumed(problem) => problem_text(problem),
        Warning::UnusableRecord { path, why } => format!("unusable resume record {path}: {why}"),
        Warning::LanUnavailable {
            group,
            iface,
            error,
        } => format!("LAN discovery is off: cannot join {group} on {iface}: {error}"),
        Warning::Dht(why) => format!("DHT: {why}"),
        Warning::PortMapLost { why } => format!(
            "port mapping lost: {why}; peers outside this network can no longer dial us (asking \
             again later)"
        ),
    }
}

/// A notice, in words.
pub fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::TypeHelp => "type help for the commands".to_string(),
        Notice::DhtOn { local, bootstrap } => format!(
            "DHT on (UDP {local}, joining through {bootstrap}): this peer's address and the \
             ids of what it shares are published there"
        ),
        Notice::LanAnnouncementsOff { why } => format!("LAN announcements are off: {why}"),
        Notice::PortMapped {
            external,
            internal_port,
            lifetime_secs,
            via,
        } => format!(
            "port mapped: {external} -> :{internal_port} ({via}, {})",
            short_duration(*lifetime_secs)
        ),
        Notice::NoPortMapping { why } => format!("no port mapping: {why}"),
        Notice::BatchFinished => "batch finished; serving until interrupted".to_string(),
        Notice::StillHashing { files, bytes } => {
            let names: Vec<String> = files.iter().map(|f| printable(f)).collect();
            format!(
                "still hashing {} ({}); shared once hashed",
                names.join(", "),
                human_bytes(*bytes)
            )
        }
        Notice::InBackground => {
            "the download goes on in the background; `downloads` shows it".to_string()
        }
        Notice::Busy {
            peer,
            why,
            retry_secs,
        } => format!(
            "{} is busy ({why}); trying again in {retry_secs:.1}s",
            printable(peer)
        ),
    }
}

/// Any other result, in words.
pub fn info_text(info: &Info) -> String {
    match info {
        Info::Help { topic: None } => help_text(),
        // The front end checked the topic when it parsed the line.
        Info::Help { topic: Some(name) } => help_for(name).unwrap_or_else(|e| e),
        Info::NoUnfinishedDownloads => "no unfinished downloads".to_string(),
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate in the units of [`human_bytes`] (`402.1 MiB/s`, like the progress bar), or `None`
/// when too little moved or it was too quick for a rate to mean anything (`0.0 MB/s` for a
/// 9-byte file says nothing).
pub fn human_rate(bytes: u64, secs: f64) -> Option<String> {
    const MIN_BYTES: u64 = 1 << 20;
    const MIN_SECS: f64 = 0.001;
    if bytes < MIN_BYTES || !secs.is_finite() || secs < MIN_SECS {
        return None;
    }
    Some(format!("{}/s", human_bytes((bytes as f64 / secs) as u64)))
}

/// A lifetime as people say it: `2h`, `90m`, `45s`.
fn short_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_binary_units_and_none_for_tiny_or_instant_work() {
        assert_eq!(human_rate(9, 0.001), None);
        assert_eq!(human_rate(64 << 20, 0.0), None);
        assert_eq!(human_rate(64 << 20, 0.0005), None);
        assert_eq!(human_rate(100 << 20, 0.5).as_deref(), Some("200.0 MiB/s"));
    }

    #[test]
    fn lifetimes_read_as_hours_minutes_or_seconds() {
        assert_eq!(short_duration(7200), "2h");
        assert_eq!(short_duration(5400), "90m");
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(0), "0s");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
