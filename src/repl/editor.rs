//! The REPL's line editor (rustyline), used when stdin and stdout are both terminals: line
//! editing, history (kept in `DOWNLOADS/.p2p/history`), and Tab completion of command names,
//! peer names, remote file names and unfinished downloads.
//!
//! It runs on the input thread and reads a line only when the peer asks for one (the peer is
//! idle: no command runs and no bar is drawn), so the prompt never sits beside a progress bar.
//! While it reads, lines printed by the peer go through its `ExternalPrinter` (see
//! [`super::screen`]), which prints them above the prompt and redraws the half-typed line.
//! Ctrl-C at the prompt clears the line; while a command runs the terminal is back in its normal
//! mode, so Ctrl-C is a SIGINT that the peer turns into "stop the foreground command".

use super::command::COMMANDS;
use super::screen::{self, PROMPT};
use super::ui::{Completions, EditorLink};
use crate::reactor::{Control, ControlSender};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Whether the REPL gets a line editor: stdin and stdout are terminals and `TERM` is not `dumb`.
pub fn wanted() -> bool {
    std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Starts the editor on the input thread. Returns the link the [`super::Ui`] uses to ask for
/// lines, or `None` if the terminal cannot be set up (the caller then reads plain lines).
pub fn spawn(to_loop: ControlSender, downloads: PathBuf) -> Option<EditorLink> {
    let completions = Arc::new(Mutex::new(Completions::default()));
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(1000)
        .ok()?
        .history_ignore_dups(true)
        .ok()?
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config).ok()?;
    editor.set_helper(Some(ReplHelper {
        completions: completions.clone(),
        downloads: downloads.clone(),
    }));
    let printer = editor.create_external_printer().ok()?;
    screen::install_editor_printer(printer);
    let history = crate::peer::state_dir(&downloads).join("history");
    let _ = editor.load_history(&history);

    let (want_line, asked) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            // One line per request; Ctrl-C at the prompt reads again without bothering the peer.
            'requests: while asked.recv().is_ok() {
                loop {
                    screen::set_editor_reading(true);
                    let read = editor.readline(PROMPT);
                    screen::set_editor_reading(false);
                    match read {
                        Ok(line) => {
                            if !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                                if let Some(dir) = history.parent() {
                                    let _ = std::fs::create_dir_all(dir);
                                }
                                let _ = editor.save_history(&history);
                            }
                            if !to_loop.send(Control::Line(line)) {
                                return;
                            }
                            continue 'requests;
                        }
                        Err(ReadlineError::Interrupted) => continue,
                        Err(ReadlineError::Eof) => break 'requests,
                        Err(e) => {
                            tracing::warn!("line editor: {e}");
                            break 'requests;
                        }
                    }
                }
            }
            to_loop.send(Control::EndOfInput);
        })
        .ok()?;
    Some(EditorLink {
        want_line,
        completions,
    })
}

struct ReplHelper {
    completions: Arc<Mutex<Completions>>,
    downloads: PathBuf,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let data = self.completions.lock().unwrap_or_else(|e| e.into_inner());
        let unfinished = || {
            crate::peer::resume::list(&self.downloads)
                .0
                .into_iter()
                .map(|r| r.file_name)
                .collect::<Vec<String>>()
        };
        Ok(complete(&line[..pos], &data, unfinished))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}
impl Highlighter for ReplHelper {}
impl Validator for ReplHelper {}
impl Helper for ReplHelper {}

/// Completion of the text before the cursor: where the completed word starts, and the
/// candidates. A file name is the rest of the line, so it may hold spaces.
pub fn complete(
    before: &str,
    data: &Completions,
    unfinished: impl FnOnce() -> Vec<String>,
) -> (usize, Vec<Pair>) {
    let lead = before.len() - before.trim_start().len();
    let rest = &before[lead..];
    let Some(cmd_end) = rest.find(char::is_whitespace) else {
        // The command name itself.
        let names = COMMANDS.iter().map(|(name, _, _)| name.to_string());
        return (lead, matching(names, rest, " "));
    };
    let cmd = &rest[..cmd_end];
    let args_at = lead + cmd_end + (rest[cmd_end..].len() - rest[cmd_end..].trim_start().len());
    let args = &before[args_at..];
    // `get FILE` (from every peer that has it) or `get PEER FILE`.
    let any_file = || data.files.values().flatten().cloned();
    match cmd {
        "get" => match args.find(char::is_whitespace) {
            Some(peer_end) if data.peers.iter().any(|p| *p == args[..peer_end]) => {
                let peer = &args[..peer_end];
                let file_at = args_at
                    + peer_end
                    + (args[peer_end..].len() - args[peer_end..].trim_start().len());
                let typed = &before[file_at..];
                let files = data.files.get(peer).cloned().unwrap_or_default();
                (file_at, matching(files.into_iter(), typed, ""))
            }
            Some(_) => (args_at, matching(any_file(), args, "")),
            None => {
                let peers = matching(data.peers.iter().cloned(), args, " ");
                let mut all = matching(any_file(), args, "");
                all.extend(peers);
                (args_at, all)
            }
        },
        "files" | "msg" | "wait-peer" => match args.find(char::is_whitespace) {
            None => {
                let space = if cmd == "files" { "" } else { " " };
                (args_at, matching(data.peers.iter().cloned(), args, space))
            }
            Some(_) => (before.len(), Vec::new()),
        },
        "resume" | "cancel" => (args_at, matching(unfinished().into_iter(), args, "")),
        _ => (before.len(), Vec::new()),
    }
}

fn matching(names: impl Iterator<Item = String>, typed: &str, then: &str) -> Vec<Pair> {
    let mut out: Vec<Pair> = names
        .filter(|n| n.starts_with(typed))
        .map(|n| Pair {
            display: n.clone(),
            replacement: format!("{n}{then}"),
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &(usize, Vec<Pair>)) -> Vec<&str> {
        c.1.iter().map(|p| p.replacement.as_str()).collect()
    }

    #[test]
    fn completes_commands_peers_and_files() {
        let mut data = Completions {
            peers: vec!["Alice".into(), "Albert".into(), "Bob".into()],
            ..Completions::default()
        };
        data.files.insert(
            "Alice".into(),
            vec!["my notes.txt".into(), "movie.mkv".into()],
        );
        let none = Vec::new;

        let c = complete("fi", &data, none);
        assert_eq!((c.0, names(&c)), (0, vec!["files "]));
        let c = complete("w", &data, none);
        assert_eq!(names(&c), vec!["wait-peer "]);
        let c = complete("get Al", &data, none);
        assert_eq!((c.0, names(&c)), (4, vec!["Albert ", "Alice "]));
        let c = complete("files  Bo", &data, none);
        assert_eq!((c.0, names(&c)), (7, vec!["Bob"]));
        let c = complete("get Alice m", &data, none);
        assert_eq!((c.0, names(&c)), (10, vec!["movie.mkv", "my notes.txt"]));
        let c = complete("get Alice my n", &data, none);
        assert_eq!((c.0, names(&c)), (10, vec!["my notes.txt"]));
        let c = complete("get Nobody x", &data, none);
        assert!(c.1.is_empty());
        let c = complete("get mo", &data, none);
        assert_eq!((c.0, names(&c)), (4, vec!["movie.mkv"]));
        let c = complete("get my n", &data, none);
        assert_eq!((c.0, names(&c)), (4, vec!["my notes.txt"]));
        let c = complete("msg Bob hel", &data, none);
        assert!(c.1.is_empty());
        let c = complete("cancel b", &data, || vec!["big.iso".into(), "a".into()]);
        assert_eq!((c.0, names(&c)), (7, vec!["big.iso"]));
    }
}
