//! The output path of one peer. Everything it reports is an [`Event`]: printed as human text
//! (stdout for results, stderr for problems) or, with `--json`, as one JSON object per line on
//! stdout with the human text on stderr. Lines are printed through [`super::screen`], which
//! keeps them from tearing a progress bar or the prompt. When stdout is not a terminal there are
//! no bars, no prompt and no escapes.

use super::event::{Weight, human_lines, to_json, weight};
use super::screen::{self, Stream};
use crate::names::printable;
use crate::peer::{Event, Frontend, Progress as Update, ProgressOf};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// JSON `progress` events come at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How a peer prints.
#[derive(Clone, Debug, Default)]
pub struct UiOptions {
    /// A REPL is reading from the user (not batch or serve).
    pub interactive: bool,
    /// One JSON object per line on stdout; human text on stderr.
    pub json: bool,
    /// `-q`: no notices (listening, registered, ...), only results and problems.
    pub quiet: bool,
    /// Put in front of every human line (`p2p demo` runs three peers in one process).
    pub prefix: Option<String>,
    /// No progress bar even on a terminal.
    pub no_bars: bool,
    /// Every event is also sent here (`p2p demo` reads what its peers report).
    pub tap: Option<std::sync::mpsc::Sender<Event>>,
}

/// What completion (in the line editor) knows: filled from the events that pass by.
#[derive(Debug, Default)]
pub struct Completions {
    pub peers: Vec<String>,
    /// Remote files by peer, from the last `files PEER`.
    pub files: std::collections::BTreeMap<String, Vec<String>>,
}

/// The line editor's side of the prompt: asking it for the next line.
pub struct EditorLink {
    pub want_line: Sender<()>,
    pub completions: Arc<Mutex<Completions>>,
}

pub struct Ui {
    opts: UiOptions,
    /// stdout is a terminal: draw bars and the prompt.
    tty: bool,
    /// The prompt is up (plain), or a line was asked of the editor.
    prompt_shown: bool,
    editor: Option<EditorLink>,
    progress: Option<Progress>,
}

struct Progress {
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    /// Bytes already there when the bar started (a resumed download): not part of the rate.
    first_done: Option<u64>,
    done: u64,
    last_json: Option<Instant>,
    /// The files count of the last `progress` event if it said every byte was done: another
    /// with the same would only repeat it (the bar is told of the end more than once:
    /// written, verified, saved), but a folder's files still count up after its bytes.
    said_done: Option<Option<(u64, u64)>>,
    sources: Option<usize>,
    /// A folder: files done and in all.
    files: Option<(u64, u64)>,
}

impl Progress {
    /// What the bar says after its ETA: a folder's files, then the sources.
    fn show_prefix(&self) {
        let Some(bar) = &self.bar else { return };
        let mut text = String::new();
        if let Some((done, total)) = self.files {
            text.push_str(&format!(" {done}/{total} files"));
        }
        if let Some(sources) = self.sources {
            let s = if sources == 1 { "" } else { "s" };
            text.push_str(&format!(" from {sources} source{s}"));
        }
        bar.set_prefix(text);
    }
}

impl Ui {
    pub fn new(interactive: bool) -> Ui {
        Ui::with_options(UiOptions {
            interactive,
            ..UiOptions::default()
        })
    }

    pub fn with_options(opts: UiOptions) -> Ui {
        Ui {
            tty: Stream::Out.is_terminal(),
            opts,
            prompt_shown: false,
            editor: None,
            progress: None,
        }
    }

    /// Takes lines from a line editor from now on (REPL on a terminal).
    pub fn attach_editor(&mut self, editor: EditorLink) {
        self.editor = Some(editor);
    }

    pub fn options(&self) -> &UiOptions {
        &self.opts
    }

    /// Switches between REPL and non-interactive output (batch followed by serve).
    pub fn set_interactive(&mut self, interactive: bool) {
        self.opts.interactive = interactive;
    }

    /// Reports one event: JSON on stdout (and the human text on stderr) with `--json`, the
    /// human text otherwise.
    pub fn event(&mut self, event: &Event) {
        // Hidden files (`.gitkeep`, `.DS_Store`) are never shared, by rule (README, "What a
        // peer shares"): saying so at every start is noise, not news.
        if let Event::Skipped { file, .. } = event
            && file.starts_with('.')
        {
            return;
        }
        self.learn(event);
        if let Some(tap) = &self.opts.tap {
            let _ = tap.send(event.clone());
        }
        let weight = weight(event);
        if self.opts.json {
            screen::write_line(Stream::Out, &to_json(event));
            if weight == Weight::Silent || (self.opts.quiet && weight == Weight::Notice) {
                return;
            }
            self.human(Stream::Err, event);
            return;
        }
        match weight {
            Weight::Silent => {}
            Weight::Notice if self.opts.quiet => {}
            Weight::Problem => self.human(Stream::Err, event),
            Weight::Result | Weight::Notice => self.human(Stream::Out, event),
        }
    }

    fn human(&self, stream: Stream, event: &Event) {
        let tag = super::event::tag(event);
        let prefix = self.opts.prefix.as_deref().unwrap_or("");
        let text: Vec<String> = human_lines(event)
            .into_iter()
            .map(|l| format!("{prefix}{tag}{l}"))
            .collect();
        if !text.is_empty() {
            screen::write_line(stream, &text.join("\n"));
        }
    }

    /// Keeps what completion needs from the events going by.
    fn learn(&mut self, event: &Event) {
        let Some(editor) = &self.editor else { return };
        let mut c = editor.completions.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Peers { peers, .. } => {
                for p in peers {
                    if !c.peers.contains(&p.name) {
                        c.peers.push(p.name.clone());
                    }
                }
            }
            Event::Files { peer, files, .. } => {
                c.files
                    .insert(peer.clone(), files.iter().map(|f| f.name.clone()).collect());
            }
            Event::Message { from, .. } if !c.peers.contains(from) => c.peers.push(from.clone()),
            _ => {}
        }
    }

    /// Whether [`Self::known_peers`] is worth calling now: a line editor is about to be asked
    /// for a line.
    pub fn wants_peer_names(&self) -> bool {
        self.editor.is_some() && self.opts.interactive && !self.prompt_shown
    }

    /// The peers this node knows now, for completion.
    pub fn known_peers<'a>(&mut self, peers: impl IntoIterator<Item = &'a str>) {
        if let Some(editor) = &self.editor {
            let mut c = editor.completions.lock().unwrap_or_else(|e| e.into_inner());
            for name in peers {
                if !c.peers.iter().any(|p| p == name) {
                    c.peers.push(name.to_string());
                }
            }
        }
    }

    /// Shows the prompt when a REPL waits for a command: asks the line editor for a line, or
    /// draws a plain prompt on a terminal.
    pub fn prompt(&mut self) {
        if !self.opts.interactive || self.prompt_shown {
            return;
        }
        if let Some(editor) = &self.editor {
            if editor.want_line.send(()).is_ok() {
                self.prompt_shown = true;
            }
            return;
        }
        if self.tty && !self.opts.json {
            screen::show_plain_prompt();
            self.prompt_shown = true;
        }
    }

    /// The user pressed Enter: the prompt line is gone.
    pub fn input_taken(&mut self) {
        self.prompt_shown = false;
        if self.editor.is_none() {
            screen::plain_prompt_taken();
        }
    }

    /// Whether [`Self::start_progress`] draws a bar (a terminal, no `--json`, bars not off).
    pub fn draws_bars(&self) -> bool {
        self.tty && !self.opts.json && !self.opts.no_bars
    }

    /// Starts tracking a transfer of `total` bytes: a bar on a terminal, `progress` events with
    /// `--json`.
    pub fn start_progress(&mut self, label: &str, total: u64) {
        self.finish_progress();
        let bar = self.draws_bars().then(|| {
            // The bar takes what the text leaves of the terminal's width; a narrow terminal
            // gets the short form, so the line never wraps (a wrapped bar cannot be redrawn
            // in place and scrolls the screen instead).
            let narrow = terminal_columns().is_some_and(|c| c < 80);
            let template = if narrow {
                "{msg} [{wide_bar:.cyan/blue}] {percent}% {bytes_per_sec} {eta}"
            } else {
                "{msg} [{wide_bar:.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}{prefix}"
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let prefix = self.opts.prefix.as_deref().unwrap_or("");
            let label = shorten(label, if narrow { 16 } else { 32 });
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout())
                .with_style(style)
                .with_message(format!("{prefix}{label}"))
        });
        screen::set_bar(bar.clone());
        self.progress = Some(Progress {
            label: label.to_string(),
            total,
            bar,
            started: Instant::now(),
            first_done: None,
            done: 0,
            last_json: None,
            said_done: None,
            sources: None,
            files: None,
        });
    }

    pub fn set_progress(&mut self, done: u64) {
        let json = self.opts.json;
        let Some(p) = &mut self.progress else { return };
        p.done = done;
        let first = *p.first_done.get_or_insert(done);
        if let Some(bar) = &p.bar {
            if bar.position() == 0 && first > 0 {
                // Resumed: the bytes already there do not count towards the rate.
                bar.set_position(first);
                bar.reset_elapsed();
                bar.reset_eta();
            }
            bar.set_position(done);
        }
        if !json {
            return;
        }
        let now = Instant::now();
        let finished = done >= p.total;
        let recent = p.last_json.is_some_and(|t| now < t + PROGRESS_EVERY);
        if (recent && !finished) || (finished && p.said_done == Some(p.files)) {
            return;
        }
        p.last_json = Some(now);
        p.said_done = finished.then_some(p.files);
        let secs = now.duration_since(p.started).as_secs_f64();
        let rate = if secs > 0.0 {
            done.saturating_sub(first) as f64 / secs
        } else {
            0.0
        };
        let eta_secs = (rate > 0.0).then(|| p.total.saturating_sub(done) as f64 / rate);
        let event = Event::Progress {
            file: p.label.clone(),
            done,
            total: p.total,
            bytes_per_sec: rate.round(),
            eta_secs: eta_secs.map(|s| (s * 10.0).round() / 10.0),
            sources: p.sources,
            files_done: p.files.map(|f| f.0),
            files_total: p.files.map(|f| f.1),
        };
        self.event(&event);
    }

    /// How many sources the foreground download draws from now (shown on the bar).
    pub fn set_sources(&mut self, sources: usize) {
        let Some(p) = &mut self.progress else { return };
        if p.sources == Some(sources) {
            return;
        }
        p.sources = Some(sources);
        p.show_prefix();
    }

    /// A folder's files done so far (shown on the bar and in `progress` events).
    pub fn set_files(&mut self, done: u64) {
        let Some(p) = &mut self.progress else { return };
        let Some((was, total)) = p.files else { return };
        if was != done {
            p.files = Some((done, total));
            p.show_prefix();
        }
    }

    /// Removes the bar; the caller prints the summary line.
    pub fn finish_progress(&mut self) {
        if let Some(p) = self.progress.take()
            && let Some(bar) = p.bar
        {
            screen::set_bar(None);
            bar.finish_and_clear();
        }
    }
}

impl Frontend for Ui {
    fn event(&mut self, event: &Event) {
        Ui::event(self, event);
    }

    fn progress(&mut self, progress: Update) {
        match progress {
            Update::Start { of, total } => {
                self.start_progress(&progress_label(&of), total);
                if let ProgressOf::Folder { files, .. } = of
                    && let Some(p) = &mut self.progress
                {
                    p.files = Some((0, files));
                }
            }
            Update::Sources(n) => self.set_sources(n),
            Update::Done(done) => self.set_progress(done),
            Update::Files(done) => self.set_files(done),
            Update::Finish => self.finish_progress(),
        }
    }

    fn draws_bars(&self) -> bool {
        Ui::draws_bars(self)
    }

    fn machine_readable(&self) -> bool {
        self.opts.json
    }

    fn waiting_for_input(&mut self, known: &mut dyn Iterator<Item = &str>) {
        if self.wants_peer_names() {
            self.known_peers(known);
        }
        self.prompt();
    }

    fn input_taken(&mut self) {
        Ui::input_taken(self);
    }
}

/// The label of a bar (and the `file` of JSON `progress` events).
fn progress_label(of: &ProgressOf) -> String {
    match of {
        ProgressOf::Download { file } => printable(file),
        ProgressOf::Folder { name, .. } => format!("{}/", printable(name)),
        ProgressOf::Downloads { count } => format!("{count} downloads"),
        ProgressOf::Hashing { files } => {
            let s = if *files == 1 { "" } else { "s" };
            format!("hashing {files} file{s}")
        }
    }
}

/// Columns of the terminal on stdout, if it is one.
fn terminal_columns() -> Option<u16> {
    // SAFETY: TIOCGWINSZ fills the zeroed winsize; the return value says whether it did.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0).then_some(size.ws_col)
    }
}

/// `name` cut to `max` characters (an ellipsis marks the cut), for the bar's label.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let mut out: String = name.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
