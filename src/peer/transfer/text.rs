//! What a download's reports and ends say to the user: the facts the machine outputs, put
//! into the events and sentences the front ends show (the same words as before the machine).

use super::{Ended, Transfer};
use crate::names::printable;
use crate::peer::download::{Download, DropReason, End, Pause, Report, Status, percent};
use crate::repl::event::{DownloadEntry, Event, Failure};
use crate::repl::ui::human_bytes;
use std::collections::BTreeMap;

/// A report as an event, or as a warning; `None`: nothing to say.
pub(super) fn report(dl: &Download, report: Report) -> Option<Result<Event, String>> {
    let file = dl.file_name().to_string();
    Some(Ok(match report {
        Report::Resuming {
            chunks_here,
            percent,
        } => Event::Resuming {
            file,
            sources: dl.sources().map(|(name, ..)| name.to_string()).collect(),
            chunks_here,
            chunks: dl.chunk_count(),
            percent,
        },
        Report::RecordedChunksLost { recorded, kept } => {
            return Some(Err(format!(
                "{}: {} of the {recorded} chunks recorded as done failed verification \
                 (torn or lost writes); they will be fetched again",
                printable(&file),
                recorded - kept
            )));
        }
        Report::SourceJoined {
            peer,
            percent,
            others,
        } => Event::SourceJoined {
            file,
            peer,
            percent,
            others,
        },
        Report::SourceLost {
            peer,
            reason,
            percent,
            others,
        } => Event::SourceLost {
            file,
            peer,
            reason,
            percent,
            others,
            retry_secs: dl.retry_for().as_secs(),
        },
        Report::SourceDropped { peer, reason } => Event::SourceDropped {
            reason: drop_reason(dl, &reason),
            file,
            peer,
        },
        Report::BadChunk { peer, fault, index } => {
            return Some(Err(format!(
                "{peer} sent {fault} (chunk {index}); fetching it again"
            )));
        }
        // The node gives the prompt back (`op_download_waiting`); the `SourceLost` before
        // it said what happened.
        Report::NoSourceActive => return None,
    }))
}

/// Why a source was dropped, as `downloads` and the events say it.
pub(super) fn drop_reason(dl: &Download, reason: &DropReason) -> String {
    match reason {
        DropReason::ContentChanged => format!(
            "no longer shares the same content for {} (sha256 {}); not mixing it with what \
             is here — the partial download is kept",
            printable(dl.file_name()),
            dl.sha256()
        ),
        DropReason::WrongMapSize => "sent a chunk map of the wrong size".to_string(),
        DropReason::CannotServe(message) => {
            format!("can no longer serve it ({})", printable(message))
        }
        DropReason::UnexpectedHave(kind) => format!("answered GetHave with {kind}"),
        DropReason::WrongChunk { asked, got } => {
            format!("answered a request for chunk {asked} with chunk {got}")
        }
        DropReason::UnexpectedChunk(kind) => format!("answered a chunk request with {kind}"),
        DropReason::Banned { fault, index, bad } => {
            format!("sent {fault} (chunk {index}; {bad} bad so far): banned")
        }
        DropReason::BrokenFrames { why, bad } => {
            format!("sent a broken frame ({why}; {bad} bad so far): banned")
        }
    }
}

/// Why a download paused, and how it counts (exit status).
pub(super) fn paused(t: &Transfer, pause: Pause) -> (Failure, String) {
    let dl = &t.dl;
    let name = printable(dl.file_name());
    let why = match pause {
        Pause::NoSourceBack { retry_for } => format!(
            "{} did not come back within {}s; {name} is kept at {:.1}% — `resume {name}` \
             continues it",
            source_names(dl),
            retry_for.as_secs(),
            dl.percent(),
        ),
        Pause::WriteFailed { error } => format!(
            "cannot write {}: {error}; the download is paused at {:.1}% — `resume {name}` \
             continues it once the problem is fixed",
            t.store.part_path().display(),
            dl.percent(),
        ),
        Pause::NoSourceLeft {
            peer,
            reason,
            corrupt,
        } => {
            // Sources that sent corrupt chunks and nobody left to repair them: the download
            // failed verification (exit 3); otherwise it is only unfinished (exit 5).
            let kind = if corrupt {
                Failure::Verification
            } else {
                Failure::Unfinished
            };
            let why = drop_reason(dl, &reason);
            return (kind, format!("{peer} {why}; no source left for {name}"));
        }
        Pause::Interrupted => format!(
            "interrupted: {name} paused at {:.1}% ({} of {}), partial file kept — `resume \
             {name}` continues it",
            dl.percent(),
            human_bytes(dl.bytes_done()),
            human_bytes(dl.size())
        ),
    };
    (Failure::Unfinished, why)
}

/// A download that is over (not paused), as its result.
pub(super) fn ended(t: &Transfer, end: End) -> Ended {
    let dl = &t.dl;
    let name = printable(dl.file_name());
    match end {
        End::Done(done) => {
            let rate = if done.seconds > 0.0 {
                done.fetched as f64 / done.seconds
            } else {
                0.0
            };
            let by_source: BTreeMap<String, u64> = done.per_source.into_iter().collect();
            Ok(Event::DownloadDone {
                file: dl.file_name().to_string(),
                path: done.path.display().to_string(),
                size: dl.size(),
                sha256: dl.sha256().to_string(),
                seconds: (done.seconds * 1000.0).round() / 1000.0,
                bytes_per_sec: rate.round(),
                bytes_fetched: done.fetched,
                bytes_per_source: by_source,
                already_there: false,
            })
        }
        End::Paused(pause) => Err(paused(t, pause)),
        End::Suspended { error } => Err((
            Failure::Unfinished,
            format!(
                "cannot make the download of {name} durable ({}): {error}; paused — `resume \
                 {name}` checks what is on disk and continues once the problem is fixed",
                t.store.part_path().display()
            ),
        )),
        // The chunks matched the manifest but the whole file did not: the manifest was
        // wrong. Nothing of it can be trusted.
        End::Mismatch(e) => Err((Failure::Verification, e)),
        // Every chunk is verified; only saving failed. Kept for `resume`.
        End::NotSaved(e) => Err((
            Failure::Unfinished,
            format!(
                "{name} is complete and verified but could not be saved: {e}; the partial \
                 download is kept — `resume {name}` saves it once the problem is fixed"
            ),
        )),
    }
}

fn source_names(dl: &Download) -> String {
    dl.sources()
        .map(|(name, ..)| name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `downloads` entry of a download of this run: the human line plus its parts.
pub(super) fn entry(dl: &Download) -> DownloadEntry {
    let state = match dl.status() {
        Status::Paused => "paused",
        Status::Checking => "checking",
        Status::Downloading { .. } => "downloading",
        Status::Waiting => "waiting",
    };
    DownloadEntry {
        file: dl.file_name().to_string(),
        done: dl.bytes_done(),
        size: dl.size(),
        percent: dl.percent(),
        sources: dl.sources().map(|(name, ..)| name.to_string()).collect(),
        state: state.to_string(),
        text: describe(dl),
    }
}

/// One line for the `downloads` command.
fn describe(dl: &Download) -> String {
    let state = match dl.status() {
        Status::Paused => "paused".to_string(),
        Status::Checking => "checking the chunks already here".to_string(),
        Status::Downloading { sources } => format!("downloading from {sources} source(s)"),
        Status::Waiting => "waiting for a source".to_string(),
    };
    // `Alice 1048576, Bob 524288`: verified bytes per source.
    let per_source = dl
        .sources()
        .map(|(name, bytes, _)| format!("{name} {bytes}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!(
        "{}  {:.1}%  {} of {}  from {}  {state}  ({per_source})",
        printable(dl.file_name()),
        dl.percent(),
        human_bytes(dl.bytes_done()),
        human_bytes(dl.size()),
        source_names(dl),
    );
    for (name, _, dropped) in dl.sources() {
        if let Some(reason) = dropped {
            line.push_str(&format!("; {name} dropped: {}", drop_reason(dl, reason)));
        }
    }
    line
}

/// The `downloads` entry of a download an earlier run left (its resume record).
pub(super) fn record_entry(rec: &crate::peer::resume::ResumeRecord) -> DownloadEntry {
    let done_bytes = (rec.durable_count() * u64::from(rec.chunk_size)).min(rec.size);
    let text = format!(
        "{}  {:.1}%  {} of {}  from {}  not running (resume to continue)",
        printable(&rec.file_name),
        percent(done_bytes, rec.size),
        human_bytes(done_bytes),
        human_bytes(rec.size),
        rec.sources.join(", "),
    );
    DownloadEntry {
        file: rec.file_name.clone(),
        done: done_bytes,
        size: rec.size,
        percent: percent(done_bytes, rec.size),
        sources: rec.sources.clone(),
        state: "not running".to_string(),
        text,
    }
}
