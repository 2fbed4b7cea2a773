//! The REPL as a person meets it: on a terminal, through a pseudo-terminal (openpty from libc,
//! no extra tool). A message that arrives while a line is half typed is printed above the
//! prompt and the typed text survives; Tab completes; Ctrl-C at the prompt does not end the
//! peer; Ctrl-D does. If no pseudo-terminal can be opened the tests say so and pass.

mod common;

use common::fake_peer::{Behaviour, FakePeer};
use common::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process whose stdin, stdout and stderr are the slave side of a pseudo-terminal.
struct PtyProc {
    child: Child,
    master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    label: String,
}

impl PtyProc {
    /// `None` (with the reason printed) when this machine has no pseudo-terminals.
    fn spawn(label: &str, cmd: Command) -> Option<PtyProc> {
        PtyProc::spawn_sized(label, cmd, 200)
    }

    /// [`PtyProc::spawn`] on a terminal `cols` columns wide.
    fn spawn_sized(label: &str, mut cmd: Command, cols: u16) -> Option<PtyProc> {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 50,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds into the given ints; the other pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        if rc != 0 {
            eprintln!(
                "SKIPPED: cannot open a pseudo-terminal ({})",
                std::io::Error::last_os_error()
            );
            return None;
        }
        // SAFETY: both fds were just returned by openpty and are owned by nobody else.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty slave"));
        cmd.stdin(io(&slave))
            .stdout(io(&slave))
            .stderr(io(&slave))
            .env("TERM", "xterm")
            .env("NO_COLOR", "1")
            .env("P2P_NO_LAN", "1")
            .env_remove("P2P_TRACKER");
        if !cmd.get_envs().any(|(key, _)| key == "RUST_LOG") {
            cmd.env_remove("RUST_LOG");
        }
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
        // controlling terminal is the pty (so Ctrl-C on it is a SIGINT for the child).
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY as _, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn in pty");
        drop(slave);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup pty master");
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every copy of the slave are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Some(PtyProc {
            child,
            master,
            screen,
            label: label.to_string(),
        })
    }

    fn type_keys(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .expect("write to pty");
        self.master.flush().expect("flush pty");
    }

    /// Everything the terminal showed, escape sequences removed.
    fn text(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&self.screen.lock().unwrap()))
    }

    fn raw_len(&self) -> usize {
        self.screen.lock().unwrap().len()
    }

    /// Waits until the screen output after byte `from` satisfies `pred`.
    fn wait_for(&self, what: &str, from: usize, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let raw = self.screen.lock().unwrap().clone();
            let tail = strip_ansi(&String::from_utf8_lossy(&raw[from.min(raw.len())..]));
            if pred(&tail) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: waited {timeout:?} for {what}; the terminal showed:\n{}",
                    self.label,
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("{}: did not exit; screen:\n{}", self.label, self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PtyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes CSI / OSC escape sequences and carriage returns, keeping the printed text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

const PROMPT: &str = "p2p> ";
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn message_arrives_while_a_line_is_half_typed_and_the_line_survives() {
    let tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let cmd = peer_command("Remy", tracker.addr, &dirs, &[]);
    let Some(mut repl) = PtyProc::spawn("Remy (pty)", cmd) else {
        return;
    };
    repl.wait_for("the prompt", 0, STARTUP, |t| t.contains(PROMPT));
    repl.wait_for("registration", 0, STARTUP, |t| {
        t.contains("registered with tracker")
    });

    // Half a command, no Enter.
    repl.type_keys("hel");
    repl.wait_for("the typed text echoed", 0, WAIT, |t| t.contains("p2p> hel"));
    let before = repl.raw_len();

    // Another peer sends a message meanwhile.
    let sender = PeerDirs::new();
    let out = run_batch(
        "Sandra",
        tracker.addr,
        &sender,
        "wait-peer Remy 10\nmsg Remy hello while you type\n",
    );
    out.assert_success();
    repl.wait_for("the message", before, WAIT, |t| {
        t.contains("]: hello while you type") || t.contains("Sandra: hello while you type")
    });
    // The message is printed above the prompt, which comes back with the typed text.
    repl.wait_for("the prompt with the typed text again", before, WAIT, |t| {
        t.split("hello while you type")
            .nth(1)
            .is_some_and(|after| after.contains("p2p> hel"))
    });

    // Finishing the line runs the whole command: `hel` + `p` = `help`.
    let before = repl.raw_len();
    repl.type_keys("p\r");
    repl.wait_for("the help text", before, WAIT, |t| {
        t.contains("commands:") && t.contains("wait-peer NAME SECONDS")
    });

    // Tab completes a command name.
    repl.wait_for("a new prompt", before, WAIT, |t| {
        t.split("wait-peer NAME SECONDS")
            .nth(1)
            .is_some_and(|a| a.contains(PROMPT))
    });
    let before = repl.raw_len();
    repl.type_keys("shar\t");
    repl.wait_for("`shared ` completed", before, WAIT, |t| {
        t.contains("shared")
    });
    repl.type_keys("\r");
    repl.wait_for("the answer to `shared`", before, WAIT, |t| {
        t.contains("no files shared")
    });

    // Ctrl-C at the prompt clears the line and leaves the peer running.
    repl.wait_for("a new prompt", before, WAIT, |t| {
        t.split("no files shared")
            .nth(1)
            .is_some_and(|a| a.contains(PROMPT))
    });
    repl.type_keys("some junk");
    repl.type_keys("\u{3}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        repl.child.try_wait().expect("try_wait").is_none(),
        "Ctrl-C at the prompt ended the peer:\n{}",
        repl.text()
    );
    let before = repl.raw_len();
    repl.type_keys("peers\r");
    repl.wait_for("the answer to `peers`, then a prompt", before, WAIT, |t| {
        t.split("peers\n").nth(1).is_some_and(|a| {
            (a.contains("no peers known") || a.contains("ago")) && a.contains(PROMPT)
        })
    });

    // Ctrl-D on an empty line leaves.
    repl.type_keys("\u{4}");
    assert_eq!(repl.wait_exit(EXIT_TIMEOUT), Some(0), "{}", repl.text());
    // History was kept beside the peer's other state.
    let history =
        std::fs::read_to_string(dirs.downloads.join(".p2p").join("history")).unwrap_or_default();
    assert!(
        history.contains("help") && history.contains("peers"),
        "{history:?}"
    );
}

#[test]
fn tab_completes_peer_and_remote_file_names() {
    let tracker = Tracker::start();
    let _alice = Peer::serve(
        "Alice",
        tracker.addr,
        &[("holiday photos.tar", b"pictures")],
    );
    let dirs = PeerDirs::new();
    let cmd = peer_command("Remy", tracker.addr, &dirs, &[]);
    let Some(mut repl) = PtyProc::spawn("Remy (pty)", cmd) else {
        return;
    };
    repl.wait_for("the prompt", 0, STARTUP, |t| t.contains(PROMPT));
    repl.type_keys("peers\r");
    repl.wait_for("Alice listed", 0, WAIT, |t| t.contains("Alice  127.0.0.1"));
    repl.wait_for("a new prompt", 0, WAIT, |t| {
        t.split("Alice  127.0.0.1")
            .nth(1)
            .is_some_and(|a| a.contains(PROMPT))
    });
    repl.type_keys("files Al\t\r");
    repl.wait_for("Alice's files", 0, WAIT, |t| {
        t.contains("holiday photos.tar  8 B  ")
    });
    repl.wait_for("a new prompt", 0, WAIT, |t| {
        t.split("holiday photos.tar  8 B  ")
            .nth(1)
            .is_some_and(|a| a.contains(PROMPT))
    });
    let before = repl.raw_len();
    repl.type_keys("get Alice hol\t");
    repl.wait_for("the file name completed", before, WAIT, |t| {
        t.contains("get Alice holiday photos.tar")
    });
    repl.type_keys("\r");
    repl.wait_for("the download", before, WAIT, |t| t.contains("saved "));
    assert_file_eq(&dirs.downloads.join("holiday photos.tar"), b"pictures");
    repl.type_keys("quit\r");
    assert_eq!(repl.wait_exit(EXIT_TIMEOUT), Some(0), "{}", repl.text());
}

#[test]
fn ctrl_c_pauses_the_foreground_download_and_the_peer_goes_on() {
    let tracker = Tracker::start();
    let content = pseudo_random(8 * CHUNK, 9);
    let stally = FakePeer::start(
        "Stally",
        tracker.addr,
        "big.bin",
        content,
        Behaviour::StallAfter(2),
    );
    let dirs = PeerDirs::new();
    let cmd = peer_command("Remy", tracker.addr, &dirs, &[]);
    let Some(mut repl) = PtyProc::spawn("Remy (pty)", cmd) else {
        return;
    };
    repl.wait_for("the prompt", 0, STARTUP, |t| t.contains(PROMPT));
    repl.type_keys("get Stally big.bin\r");
    let deadline = Instant::now() + STARTUP;
    while stally.served.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = repl.raw_len();
    repl.type_keys("\u{3}");
    repl.wait_for("the download paused", before, WAIT, |t| {
        t.contains("interrupted: big.bin paused at") && t.contains("resume big.bin")
    });
    repl.wait_for("the prompt again", before, WAIT, |t| {
        t.split("continues it")
            .nth(1)
            .is_some_and(|a| a.contains(PROMPT))
    });
    assert!(
        repl.child.try_wait().expect("try_wait").is_none(),
        "Ctrl-C during a download ended the peer:\n{}",
        repl.text()
    );
    let kept = list_all(&dirs.downloads);
    assert!(
        kept.iter().any(|p| p.ends_with(".p2p-part")),
        "the partial download was not kept: {kept:?}"
    );
    let before = repl.raw_len();
    repl.type_keys("downloads\r");
    repl.wait_for("the paused download listed", before, WAIT, |t| {
        t.contains("big.bin") && t.contains("paused")
    });
    repl.type_keys("quit\r");
    assert_eq!(repl.wait_exit(EXIT_TIMEOUT), Some(0), "{}", repl.text());
}

#[test]
fn the_progress_bar_fits_a_60_column_terminal() {
    let tracker = Tracker::start();
    let content = pseudo_random(8 * CHUNK, 19);
    let stally = FakePeer::start(
        "Stally",
        tracker.addr,
        "a-rather-long-file-name-for-a-narrow-terminal.bin",
        content,
        Behaviour::StallAfter(2),
    );
    let dirs = PeerDirs::new();
    let cmd = peer_command("Remy", tracker.addr, &dirs, &[]);
    let Some(mut repl) = PtyProc::spawn_sized("Remy (pty, 60 columns)", cmd, 60) else {
        return;
    };
    repl.wait_for("the prompt", 0, STARTUP, |t| t.contains(PROMPT));
    let before = repl.raw_len();
    repl.type_keys("get Stally a-rather-long-file-name-for-a-narrow-terminal.bin\r");
    let deadline = Instant::now() + STARTUP;
    while stally.served.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    repl.wait_for("the bar", before, WAIT, |t| t.contains("] "));
    std::thread::sleep(Duration::from_millis(300));
    // Each redraw of the bar starts at a carriage return: every one must fit the width.
    let raw = repl.screen.lock().unwrap()[before..].to_vec();
    let draws: Vec<String> = String::from_utf8_lossy(&raw)
        .split(['\r', '\n'])
        .map(strip_ansi)
        .filter(|d| d.contains(" [") && d.contains("] "))
        .collect();
    assert!(!draws.is_empty(), "no bar drawn:\n{}", repl.text());
    for d in &draws {
        assert!(
            d.chars().count() <= 60,
            "a bar wider than 60 columns: {d:?}"
        );
    }
    repl.type_keys("\u{3}");
    repl.type_keys("quit\r");
    let _ = repl.wait_exit(EXIT_TIMEOUT);
}

#[test]
fn log_lines_print_above_the_prompt_and_keep_the_typed_text() {
    let mut tracker = Tracker::start();
    let dirs = PeerDirs::new();
    let mut cmd = peer_command("Remy", tracker.addr, &dirs, &[]);
    cmd.env("RUST_LOG", "p2p=info");
    let Some(mut repl) = PtyProc::spawn("Remy (pty)", cmd) else {
        return;
    };
    repl.wait_for("the prompt", 0, STARTUP, |t| t.contains(PROMPT));
    repl.wait_for("registration", 0, STARTUP, |t| {
        t.contains("registered with tracker")
    });
    repl.type_keys("sha");
    repl.wait_for("the typed text echoed", 0, WAIT, |t| t.contains("p2p> sha"));
    let before = repl.raw_len();
    // The tracker goes away: an INFO log line and a warning arrive while `sha` waits.
    tracker.proc.kill();
    repl.wait_for(
        "the log line, then the prompt with `sha`",
        before,
        WAIT,
        |t| {
            t.contains("INFO") && t.contains("lost") && {
                let after = t.rsplit("unreachable").next().unwrap_or("");
                after.contains("p2p> sha")
            }
        },
    );
    let before = repl.raw_len();
    repl.type_keys("red\r");
    repl.wait_for("`shared` ran", before, WAIT, |t| {
        t.contains("no files shared")
    });
    repl.type_keys("quit\r");
    assert_eq!(repl.wait_exit(EXIT_TIMEOUT), Some(0), "{}", repl.text());
}
