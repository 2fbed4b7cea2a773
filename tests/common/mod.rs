//! Harness for the integration tests: runs the real `p2p` binary as child processes on
//! 127.0.0.1 with OS-chosen ports, one tempdir per peer.
//!
//! Rules it enforces:
//! - every wait has a deadline (stdout is read on a thread into a channel, so waiting for a line
//!   is a `recv_timeout`; waiting for an exit polls `try_wait` until a deadline);
//! - every child is killed when its guard ([`Proc`]) is dropped, so a failing test leaves no
//!   process behind;
//! - a failure message carries the child's stdout and stderr, so a red test says why.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

pub mod fake_igd;
pub mod fake_peer;
pub mod netns;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// How long a process may take to print its first lines (listening, registered).
pub const STARTUP: Duration = Duration::from_secs(30);
/// Default limit for a whole batch run.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after SIGTERM/SIGINT or after deciding to fail.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunk size the peer uses for small files (256 KiB).
pub const CHUNK: usize = 262_144;

/// Path of the binary under test (cargo builds it for integration tests).
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2p")
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A running child process with its stdout delivered line by line through a channel and its
/// stderr collected in the background. Killed (SIGKILL) and reaped on drop.
pub struct Proc {
    label: String,
    child: Child,
    stdout: Receiver<String>,
    /// Every stdout line received so far (consumed or not by a wait), for diagnostics.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout/stderr. `stdin`: `None` gives the child an empty stdin
    /// (like CI), `Some(bytes)` feeds those bytes and then closes it.
    pub fn spawn(label: impl Into<String>, mut cmd: Command, stdin: Option<Vec<u8>>) -> Proc {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut proc = Proc::start(label.into(), cmd);
        if let Some(bytes) = stdin {
            let mut pipe = proc.child.stdin.take().expect("stdin is piped");
            thread::spawn(move || {
                // The child may exit before reading everything; a broken pipe is its business.
                let _ = pipe.write_all(&bytes);
                // Dropping `pipe` closes it: the child sees end of input.
            });
        }
        proc
    }

    /// Like [`Proc::spawn`], with stdin a pipe the caller writes to and closes when it wants
    /// (a REPL fed one line at a time).
    pub fn spawn_with_stdin(
        label: impl Into<String>,
        mut cmd: Command,
    ) -> (Proc, std::process::ChildStdin) {
        cmd.stdin(Stdio::piped());
        let mut proc = Proc::start(label.into(), cmd);
        let stdin = proc.child.stdin.take().expect("stdin is piped");
        (proc, stdin)
    }

    /// Spawns `cmd` (stdin already set up) with piped stdout/stderr read on threads.
    fn start(label: String, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The environment must not redirect a peer to another tracker or add colour, and a
            // developer's own settings (README, "Configuration") must not leak in.
            .env_remove("P2P_TRACKER")
            .env_remove("P2P_NAME")
            .env_remove("P2P_SHARED")
            .env_remove("P2P_DOWNLOADS")
            .env("P2P_CONFIG", "/dev/null")
            .env("NO_COLOR", "1");
        // LAN discovery stays off unless a test turns it on (with a group port of its own):
        // tests run in parallel must not hear each other, and no multicast may leave loopback.
        if !cmd.get_envs().any(|(key, _)| key == "P2P_NO_LAN") {
            cmd.env("P2P_NO_LAN", "1");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot spawn {cmd:?}: {e}"));

        let (tx, rx) = mpsc::channel();
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        thread::spawn(move || {
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match out.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let stderr_thread = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });

        Proc {
            label,
            child,
            stdout: rx,
            seen: Vec::new(),
            stderr,
            stderr_thread: Some(stderr_thread),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next stdout line satisfying `pred` (earlier lines are skipped but kept for
    /// diagnostics). Panics with everything the process printed if the deadline passes or the
    /// process closes its stdout first.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let diagnostics = self.diagnostics();
                    panic!(
                        "{}: no stdout line {what} within {timeout:?}\n{diagnostics}",
                        self.label
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.try_wait_for(Duration::from_secs(2));
                    let _ = self.stderr_text();
                    let diagnostics = self.diagnostics();
                    panic!(
                        "{}: stdout closed (exit status {status:?}) before a line {what}\n{diagnostics}",
                        self.label
                    )
                }
            }
        }
    }

    /// The next stdout line, whatever it is (bounded).
    pub fn next_line(&mut self, what: &str, timeout: Duration) -> String {
        self.wait_line(what, timeout, |_| true)
    }

    /// Waits (each line within `timeout`) until the peer said both that it registered with
    /// its tracker and what it shares, in either order.
    pub fn wait_registered_and_sharing(&mut self, timeout: Duration) {
        let (mut registered, mut sharing) = (false, false);
        while !(registered && sharing) {
            let line = self.wait_line(
                "`registered with tracker ADDR` and `sharing N files`",
                timeout,
                |l| l.starts_with("registered with tracker") || l.starts_with("sharing "),
            );
            registered |= line.starts_with("registered with tracker");
            sharing |= line.starts_with("sharing ");
        }
    }

    /// Stdout lines received so far without waiting (drains the channel).
    pub fn lines_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.stdout.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn try_wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit; kills it and panics if it does not within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_for(timeout) {
            Some(status) => status,
            None => {
                self.kill();
                let diagnostics = self.diagnostics();
                panic!(
                    "{}: still running after {timeout:?} (killed)\n{diagnostics}",
                    self.label
                )
            }
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) unless the process has already been reaped.
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.poll_exit().is_some() {
            return;
        }
        // SAFETY: kill(2) with the pid of our own unreaped child: it cannot name another process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "{}: kill({sig}) failed", self.label);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Everything on stderr so far. After the process has exited, waits (bounded) for the
    /// reader thread to reach end of file so the text is complete.
    pub fn stderr_text(&mut self) -> String {
        if self.status.is_some()
            && let Some(handle) = self.stderr_thread.take()
        {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !handle.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        self.stderr.lock().unwrap().clone()
    }

    /// Drains stdout to its end (bounded); used once the process has exited.
    pub fn collect_stdout(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return self.seen.clone(),
            }
        }
    }

    /// stdout and stderr seen so far, for failure messages.
    pub fn diagnostics(&mut self) -> String {
        let stdout = self.lines_so_far().join("\n");
        let stderr = self.stderr.lock().unwrap().clone();
        format!(
            "--- {} stdout ---\n{stdout}\n--- {} stderr ---\n{stderr}\n--- end ---",
            self.label, self.label
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Folders and content

/// A peer's folders: `ROOT/shared` (created, holds the files it shares) and `ROOT/downloads`
/// (NOT created: the peer must create it when missing). ROOT is also the child's working
/// directory and holds batch files. Removed on drop.
pub struct PeerDirs {
    root: TempDir,
    pub shared: PathBuf,
    pub downloads: PathBuf,
}

impl PeerDirs {
    pub fn new() -> PeerDirs {
        let root = tempfile::tempdir().expect("tempdir");
        let shared = root.path().join("shared");
        let downloads = root.path().join("downloads");
        fs::create_dir(&shared).expect("create shared/");
        PeerDirs {
            root,
            shared,
            downloads,
        }
    }

    pub fn with_files(files: &[(&str, &[u8])]) -> PeerDirs {
        let dirs = PeerDirs::new();
        for (name, bytes) in files {
            dirs.add_shared(name, bytes);
        }
        dirs
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn add_shared(&self, name: &str, bytes: &[u8]) {
        fs::write(self.shared.join(name), bytes).expect("write shared file");
    }

    /// Puts a file into downloads/ before a test runs (creating the folder).
    pub fn put_download(&self, name: &str, bytes: &[u8]) {
        fs::create_dir_all(&self.downloads).expect("create downloads/");
        fs::write(self.downloads.join(name), bytes).expect("write download");
    }

    /// Everything in downloads/, hidden entries and subfolders included, except the peer's
    /// own state folder `.p2p/` (hash cache, peer cache, resume records): not a download.
    pub fn downloads_listing(&self) -> Vec<String> {
        list_all(&self.downloads)
            .into_iter()
            .filter(|p| p != ".p2p" && !p.starts_with(".p2p/"))
            .collect()
    }
}

impl Default for PeerDirs {
    fn default() -> Self {
        PeerDirs::new()
    }
}

/// Every entry under `dir`, recursively, as paths relative to `dir` (hidden files, folders and
/// symlinks included, symlinks not followed), sorted. A missing `dir` is empty.
pub fn list_all(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("read_dir entry");
            let path = entry.path();
            let rel = path.strip_prefix(base).expect("under base");
            out.push(rel.to_string_lossy().into_owned());
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different for each `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The content id of `bytes` (PROTOCOL.md §8.4), as a peer sharing them computes it.
pub fn cid(bytes: &[u8]) -> p2p::wire::ContentId {
    let m = p2p::peer::manifest::manifest_of_reader(bytes, bytes.len() as u64)
        .expect("bytes in memory read without error");
    p2p::wire::ContentId::of(&m)
}

/// Asserts the file at `path` holds exactly `expected` (reports length and first difference,
/// never dumps megabytes).
pub fn assert_file_eq(path: &Path, expected: &[u8]) {
    let actual = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if actual != expected {
        let first_diff = actual
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(expected.len()));
        panic!(
            "{} differs from the original: {} bytes (sha256 {}) vs expected {} bytes (sha256 {}); \
             first difference at offset {first_diff}",
            path.display(),
            actual.len(),
            sha256_hex(&actual),
            expected.len(),
            sha256_hex(expected),
        );
    }
}

/// The fields of a listing line: split on runs of two or more spaces (so names with single
/// spaces survive and column padding is tolerated).
pub fn fields(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect()
}

/// An address on 127.0.0.1 where (most likely) nobody listens: bound by the OS, then released.
pub fn unused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local_addr")
}

fn parse_addr_after(line: &str, prefix: &str, who: &str) -> SocketAddr {
    let rest = line.strip_prefix(prefix).unwrap_or_else(|| {
        panic!("{who}: first stdout line should be `{prefix}ADDR`, got {line:?}")
    });
    rest.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{who}: cannot parse address in {line:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Tracker

/// A running `p2p tracker --listen 127.0.0.1:0`.
pub struct Tracker {
    pub addr: SocketAddr,
    pub proc: Proc,
    _cwd: TempDir,
}

impl Tracker {
    pub fn start() -> Tracker {
        Tracker::start_with(&[])
    }

    /// Starts a tracker with extra flags (e.g. `["--peer-ttl", "2"]`) and waits for its first
    /// line `tracker listening on ADDR`.
    pub fn start_with(extra: &[&str]) -> Tracker {
        let cwd = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(bin());
        cmd.args(["tracker", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(cwd.path());
        let mut proc = Proc::spawn("tracker", cmd, None);
        let line = proc.next_line("`tracker listening on ADDR`", STARTUP);
        let addr = parse_addr_after(&line, "tracker listening on ", "tracker");
        assert!(addr.port() != 0, "tracker printed port 0: {line:?}");
        Tracker {
            addr,
            proc,
            _cwd: cwd,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Peers

/// `p2p peer --name NAME --tracker ADDR --listen 127.0.0.1:0 --shared .. --downloads .. EXTRA`,
/// run in the peer's root folder.
pub fn peer_command(name: &str, tracker: SocketAddr, dirs: &PeerDirs, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("peer")
        .args(["--name", name])
        .arg("--tracker")
        .arg(tracker.to_string())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--shared")
        .arg(&dirs.shared)
        .arg("--downloads")
        .arg(&dirs.downloads)
        .args(extra)
        .current_dir(dirs.root());
    cmd
}

/// Waits for the peer's first line `NAME listening on ADDR` and returns ADDR.
pub fn expect_listening(proc: &mut Proc, name: &str) -> SocketAddr {
    let prefix = format!("{name} listening on ");
    let line = proc.next_line(&format!("`{prefix}ADDR`"), STARTUP);
    let addr = parse_addr_after(&line, &prefix, name);
    assert!(addr.port() != 0, "{name} printed port 0: {line:?}");
    addr
}

/// A peer running with `--serve`, registered with its tracker.
pub struct Peer {
    pub name: String,
    pub addr: SocketAddr,
    // Fields drop in this order: the process is killed before its folders are removed, so a
    // dropped peer never serves (or fails to serve) files that are being deleted under it.
    pub proc: Proc,
    pub dirs: PeerDirs,
}

impl Peer {
    /// Starts NAME with `--serve`, sharing `files`, and waits until it listens, is registered
    /// and has hashed its shared folder (`sharing ...`; hashing runs beside the reactor, so
    /// for a big file that line may come after the registration).
    pub fn serve(name: &str, tracker: SocketAddr, files: &[(&str, &[u8])]) -> Peer {
        Peer::serve_in(name, tracker, PeerDirs::with_files(files), &[])
    }

    /// Like [`Peer::serve`] with given folders and extra flags.
    pub fn serve_in(name: &str, tracker: SocketAddr, dirs: PeerDirs, extra: &[&str]) -> Peer {
        let mut args = vec!["--serve"];
        args.extend_from_slice(extra);
        let cmd = peer_command(name, tracker, &dirs, &args);
        let mut proc = Proc::spawn(name, cmd, None);
        let addr = expect_listening(&mut proc, name);
        proc.wait_registered_and_sharing(STARTUP);
        Peer {
            name: name.to_string(),
            addr,
            dirs,
            proc,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batch runs

/// What a finished batch run left behind.
pub struct BatchOutput {
    pub label: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl BatchOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Exit 0, or panic showing the output.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(0),
            "{}: expected exit 0 ({:?})\n{self}",
            self.label,
            self.status
        );
        self
    }

    /// Exit 1 and a line starting with `error:` on stderr, or panic showing the output.
    pub fn assert_failure(&self) -> &Self {
        self.assert_failed_with(1)
    }

    /// Exit `code` (README, "Exit status") and a line starting with `error:` on stderr.
    pub fn assert_failed_with(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "{}: expected exit {code} ({:?})\n{self}",
            self.label,
            self.status
        );
        assert!(
            self.stderr
                .lines()
                .any(|l| l.trim_start().starts_with("error:")),
            "{}: expected a line `error: ...` on stderr\n{self}",
            self.label
        );
        self
    }

    /// The `error: ...` lines on stderr, lowercased, joined.
    pub fn error_text(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| l.contains("error"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase()
    }
}

impl std::fmt::Display for BatchOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- {} ({:?}, {:?}) stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.label, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Starts `p2p peer --name NAME ... --batch FILE EXTRA` with `commands` written to a file of
/// its own in the peer's root, and returns it running (the test waits for or kills it).
pub fn spawn_batch(
    name: &str,
    tracker: SocketAddr,
    dirs: &PeerDirs,
    commands: &str,
    extra: &[&str],
) -> Proc {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dirs.root().join(format!("batch-{name}-{n}.txt"));
    fs::write(&path, commands).expect("write batch");
    let mut args = vec!["--batch", path.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let label = format!("{name} --batch {}", extra.join(" "));
    Proc::spawn(
        label.trim_end(),
        peer_command(name, tracker, dirs, &args),
        None,
    )
}

/// Runs `p2p peer --name NAME ... --batch FILE` with `commands` written to a file in the peer's
/// root; waits up to [`BATCH_TIMEOUT`] (kill + panic after).
pub fn run_batch(name: &str, tracker: SocketAddr, dirs: &PeerDirs, commands: &str) -> BatchOutput {
    run_batch_timeout(name, tracker, dirs, commands, BATCH_TIMEOUT)
}

pub fn run_batch_timeout(
    name: &str,
    tracker: SocketAddr,
    dirs: &PeerDirs,
    commands: &str,
    timeout: Duration,
) -> BatchOutput {
    run_batch_with(name, tracker, dirs, commands, &[], timeout)
}

/// `run_batch_timeout` with more flags for the peer.
pub fn run_batch_with(
    name: &str,
    tracker: SocketAddr,
    dirs: &PeerDirs,
    commands: &str,
    extra: &[&str],
    timeout: Duration,
) -> BatchOutput {
    let mut file = tempfile::Builder::new()
        .prefix("batch-")
        .suffix(".txt")
        .tempfile_in(dirs.root())
        .expect("batch file");
    file.write_all(commands.as_bytes()).expect("write batch");
    file.flush().expect("flush batch");
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let mut args = vec!["--batch", path.as_str()];
    args.extend_from_slice(extra);
    let cmd = peer_command(name, tracker, dirs, &args);
    run_to_end(&format!("{name} --batch"), cmd, None, timeout)
}

/// Runs `... --batch -` with `commands` on stdin.
pub fn run_batch_stdin(
    name: &str,
    tracker: SocketAddr,
    dirs: &PeerDirs,
    commands: &str,
) -> BatchOutput {
    let cmd = peer_command(name, tracker, dirs, &["--batch", "-"]);
    run_to_end(
        &format!("{name} --batch -"),
        cmd,
        Some(commands.as_bytes().to_vec()),
        BATCH_TIMEOUT,
    )
}

/// Runs any `p2p` invocation to its end (bounded), e.g. for CLI usage errors.
pub fn run_p2p(args: &[&str], timeout: Duration) -> BatchOutput {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd.path());
    run_to_end(&format!("p2p {}", args.join(" ")), cmd, None, timeout)
}

fn run_to_end(label: &str, cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> BatchOutput {
    let started = Instant::now();
    let mut proc = Proc::spawn(label, cmd, stdin);
    let status = proc.wait_exit(timeout);
    let elapsed = started.elapsed();
    let stdout = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    let stderr = proc.stderr_text();
    BatchOutput {
        label: label.to_string(),
        status,
        stdout,
        stderr,
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions about downloads

/// Hex digits of the content id the human `saved` line shows (the full 64 are in `--json`).
pub const SHORT_ID: usize = 16;

/// Asserts a `saved ...` line for `name` holding `content`: it mentions the file name, the size
/// in bytes and what was verified: `verified cid1:` and the first [`SHORT_ID`] hex digits of
/// the content id.
pub fn assert_saved_line(out: &BatchOutput, dirs: &PeerDirs, name: &str, content: &[u8]) {
    let full = cid(content).to_hex();
    let short = &full[..SHORT_ID];
    let line = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("saved ") && l.contains(name))
        .unwrap_or_else(|| panic!("no `saved ...{name}...` line on stdout\n{out}"));
    assert!(
        line.contains(&format!("verified cid1:{short}")),
        "`saved` line lacks the content id {short}: {line:?}"
    );
    // Look for the size as a number of its own, once the path and hash (which hold digits of
    // their own) are taken out.
    let rest = line
        .replace(short, " ")
        .replace(&*dirs.downloads.to_string_lossy(), " ")
        .replace(name, " ");
    let size = content.len().to_string();
    assert!(
        rest.split(|c: char| !c.is_ascii_digit()).any(|t| t == size),
        "`saved` line lacks the size {size}: {line:?}"
    );
}

/// Asserts downloads/ holds exactly `names` (nothing hidden, no partial or state files).
pub fn assert_downloads_exactly(dirs: &PeerDirs, names: &[&str]) {
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        dirs.downloads_listing(),
        expected,
        "downloads/ ({}) should hold exactly these entries",
        dirs.downloads.display()
    );
}

/// Whether `line` is the chat line `FROM: TEXT` as a peer prints it: the first message from a
/// name seen for the first time reads `FROM [new, SHORTID]: TEXT`.
pub fn is_chat(line: &str, from: &str, text: &str) -> bool {
    let line = line.trim();
    let Some(rest) = line.strip_prefix(from) else {
        return false;
    };
    let rest = match rest.strip_prefix(" [new, ") {
        Some(tail) => match tail.split_once("]") {
            Some((id, tail)) if id.len() == 7 => tail,
            _ => return false,
        },
        None => rest,
    };
    rest.strip_prefix(": ") == Some(text)
}
