//! What a download's reports and ends become: the engine's events and problems
//! (`peer/event.rs`), which the front ends word. The reasons a source is dropped are still
//! sentences here (`Event::SourceDropped` carries one), as they were before the machine.

use super::{Ended, Transfer};
use crate::names::printable;
use crate::peer::download::{Download, DropReason, End, Pause, Report, Status, at_limit, percent};
use crate::peer::event::{DownloadEntry, Event, Failure, Problem, RunningDownload, Warning};
use crate::reactor::RateLimits;
use std::collections::BTreeMap;
use std::time::Instant;

/// A report as the event the front end shows; `None`: nothing to show.
pub(super) fn report(dl: &Download, report: Report) -> Option<Event> {
    let file = dl.file_name().to_string();
    Some(match report {
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
        Report::RecordedChunksLost { recorded, kept } => Event::Warning(Warning::TornChunks {
            file,
            failed: recorded - kept,
            recorded,
        }),
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
        Report::BadChunk { peer, fault, index } => Event::Warning(Warning::BadChunk {
            peer,
            fault: fault.to_string(),
            chunk: index.get(),
        }),
        // The node gives the prompt back (`op_download_waiting`); the `SourceLost` before
        // it said what happened.
        Report::NoSourceActive => return None,
    })
}

/// Why a source was dropped, as `downloads` and the events say it.
pub(super) fn drop_reason(dl: &Download, reason: &DropReason) -> String {
    match reason {
        DropReason::ContentChanged => format!(
            "no longer shares the same content for {} ({}); not mixing it with what is \
             here — the partial download is kept",
            printable(dl.file_name()),
            dl.content_id()
        ),
        DropReason::ForgedManifest(why) => format!(
            "sent a forged manifest for {} ({why}): banned, nothing fetched from it",
            printable(dl.file_name())
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
pub(super) fn paused(t: &Transfer, pause: Pause) -> (Failure, Problem) {
    let dl = &t.dl;
    let file = dl.file_name().to_string();
    let problem = match pause {
        Pause::NoSourceBack { retry_for } => Problem::SourcesGone {
            file,
            sources: dl.sources().map(|(name, ..)| name.to_string()).collect(),
            retry_secs: retry_for.as_secs(),
            percent: dl.percent(),
        },
        Pause::WriteFailed { error } => Problem::CannotWrite {
            file,
            part: t.store.part_path().display().to_string(),
            error,
            percent: dl.percent(),
        },
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
            let text = format!("{peer} {why}; no source left for {}", printable(&file));
            return (kind, text.into());
        }
        Pause::Interrupted => Problem::Paused {
            file,
            percent: dl.percent(),
            done: dl.bytes_done(),
            size: dl.size(),
        },
    };
    (Failure::Unfinished, problem)
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
                content_id: dl.content_id().to_string(),
                sha256: dl.sha256().to_string(),
                sha256_checked: dl.checks_sha256(),
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
            )
            .into(),
        )),
        // The chunks matched the manifest but the whole file did not: the manifest was
        // wrong. Nothing of it can be trusted.
        End::Mismatch(e) => Err((Failure::Verification, e.into())),
        // Every chunk is verified; only saving failed. Kept for `resume`.
        End::NotSaved(e) => Err((
            Failure::Unfinished,
            format!(
                "{name} is complete and verified but could not be saved: {e}; the partial \
                 download is kept — `resume {name}` saves it once the problem is fixed"
            )
            .into(),
        )),
    }
}

/// The `downloads` entry of a download of this run (the front end words its line).
/// The `downloads` entry of a download of this run. `limited_by` says `max_down_per_peer`
/// when a source is held at that limit (`describe_downloads` sets `max_down`, which all
/// downloads share).
pub(super) fn entry(dl: &Download, limits: &RateLimits, now: Instant) -> DownloadEntry {
    let (_, fastest) = dl.recent_rates(now);
    let limited_by = at_limit(fastest, limits.down_per_peer).then(|| "max_down_per_peer".into());
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
        limited_by,
        running: Some(RunningDownload {
            active: dl.active_sources(),
            bytes_per_source: dl
                .sources()
                .map(|(name, bytes, _)| (name.to_string(), bytes))
                .collect(),
            dropped: dl
                .sources()
                .filter_map(|(name, _, why)| Some((name.to_string(), drop_reason(dl, why?))))
                .collect(),
        }),
    }
}

/// The `downloads` entry of a download an earlier run left (its resume record).
pub(super) fn record_entry(rec: &crate::peer::resume::ResumeRecord) -> DownloadEntry {
    let done_bytes = (rec.durable_count() * u64::from(rec.chunk_size)).min(rec.size);
    DownloadEntry {
        file: rec.file_name.clone(),
        done: done_bytes,
        size: rec.size,
        percent: percent(done_bytes, rec.size),
        sources: rec.sources.clone(),
        state: "not running".to_string(),
        limited_by: None,
        running: None,
    }
}
