//! The seam between the engine and whoever shows what it does.
//!
//! The node reports everything through a [`Frontend`]: results, warnings, errors and incoming
//! messages as [`Event`] values, the foreground command's progress as [`Progress`] updates, and
//! when it waits for input. The REPL, batch, serve, `--json` and the demo implement it in
//! `repl::Ui`; tests and the in-memory harness use a [`Recorder`], which keeps what it is given.
//! The engine never prints: every line on screen is made from these values by the front end.

use super::Event;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the node reports to, given to [`super::PeerNode::new`].
pub trait Frontend {
    /// One thing the peer reports: a result, a warning, an error, an incoming message.
    fn event(&mut self, event: &Event);

    /// How the foreground command's transfer goes: a bar on a terminal, `progress` events
    /// with `--json`, nothing otherwise.
    fn progress(&mut self, progress: Progress);

    /// Whether [`Progress::Start`] draws a bar. While one is drawn, a foreground `rescan`
    /// moves the bar instead of reporting `hashing` events.
    fn draws_bars(&self) -> bool {
        false
    }

    /// Whether a program reads the events (`--json`) rather than a person: the hashing
    /// progress then comes every second instead of every two.
    fn machine_readable(&self) -> bool {
        false
    }

    /// The node waits for the next command: time for a prompt. `known` yields the names of
    /// the peers the node knows (for completion); it is only read if needed.
    fn waiting_for_input(&mut self, known: &mut dyn Iterator<Item = &str>) {
        let _ = known;
    }

    /// A line of input was taken: a prompt on screen is gone.
    fn input_taken(&mut self) {}
}

/// The foreground command's progress, in the order the node reports it: one `Start`, then
/// `Sources` and `Done` as the transfer moves, then `Finish` (also sent when nothing runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A transfer of `total` bytes begins (a bar replaces any bar before it).
    Start { of: ProgressOf, total: u64 },
    /// How many sources the download draws from now.
    Sources(usize),
    /// Bytes done so far, of the `total` given at the start.
    Done(u64),
    /// A folder: files done so far, of the `files` given at the start.
    Files(u64),
    /// The transfer ended (or was never started): remove the bar.
    Finish,
}

/// What a progress bar is for; the front end makes its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressOf {
    /// One download, by the name it is saved under.
    Download { file: String },
    /// Several downloads awaited together (`resume` with no file named).
    Downloads { count: usize },
    /// A folder download of `files` files, by the name it is saved under.
    Folder { name: String, files: u64 },
    /// A `rescan` hashing `files` files.
    Hashing { files: usize },
}

/// A [`Frontend`] that keeps every event and progress update, for tests. Clones share what
/// they keep: hand one to the node and read the other.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    kept: Arc<Mutex<Recorded>>,
}

/// What a [`Recorder`] was given, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub events: Vec<Event>,
    pub progress: Vec<Progress>,
    /// How many times the node waited for input.
    pub prompts: usize,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A test that panicked while holding the lock left whole values behind: keep them.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The events so far, removing them (the next call sees only newer ones).
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// Every progress update so far, oldest first.
    pub fn progress(&self) -> Vec<Progress> {
        self.lock().progress.clone()
    }

    /// Everything kept so far.
    pub fn recorded(&self) -> Recorded {
        self.lock().clone()
    }
}

impl Frontend for Recorder {
    fn event(&mut self, event: &Event) {
        self.lock().events.push(event.clone());
    }

    fn progress(&mut self, progress: Progress) {
        self.lock().progress.push(progress);
    }

    fn waiting_for_input(&mut self, _known: &mut dyn Iterator<Item = &str>) {
        self.lock().prompts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_keeps_what_the_node_reports_for_its_clones() {
        let seen = Recorder::new();
        let mut sink: Box<dyn Frontend> = Box::new(seen.clone());
        sink.event(&Event::PeerKnown { name: "Bob".into() });
        sink.progress(Progress::Done(3));
        sink.waiting_for_input(&mut std::iter::empty());
        assert!(matches!(&seen.events()[..], [Event::PeerKnown { name }] if name == "Bob"));
        assert_eq!(seen.progress(), vec![Progress::Done(3)]);
        assert_eq!(seen.recorded().prompts, 1);
        assert_eq!(seen.take().len(), 1);
        assert!(seen.events().is_empty());
    }
}
