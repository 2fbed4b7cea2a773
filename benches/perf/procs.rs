//! Child processes for the benchmark: the real `p2p` binary, its stdout read line by line on a
//! thread, and its peak RSS and CPU time read from `/proc/PID/{status,stat}` while it still runs
//! ([`Proc::stop_measured`]).
//!
//! Not from `wait4(2)`: its `ru_maxrss` starts from the parent's resident set, because the child
//! shares (vfork) or copies (fork) the parent's memory until it execs and Linux keeps the
//! high-water mark across exec. A tracker spawned by a benchmark process holding 10,000 sockets'
//! worth of load generator showed 86 MiB that way, against 20 MiB in its own `VmHWM`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a child ended: its `wait4` status and peak resident set in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Ended {
    /// The exit code, or `128 + signal` if a signal ended it.
    pub code: i32,
    pub max_rss_kib: u64,
    /// User + system CPU time of the whole life of the process.
    pub cpu_secs: f64,
}

pub struct Proc {
    label: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    ended: Option<Ended>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout/stderr piped.
    pub fn spawn(label: &str, cmd: &mut Command) -> Result<Proc, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("P2P_TRACKER")
            .env("NO_COLOR", "1")
            // No LAN multicast: the benchmark's peers find each other through the tracker,
            // and nothing may leave this machine.
            .env("P2P_NO_LAN", "1");
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{label}: cannot spawn {cmd:?}: {e}"))?;
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        Ok(Proc {
            label: label.to_string(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            ended: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process printed so far, for error messages.
    pub fn diagnostics(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let err = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{err}",
            self.label,
            self.seen.join("\n"),
            self.label
        )
    }

    /// Waits for the next stdout line for which `pred` holds (earlier lines are skipped).
    /// Whether a line already read (by an earlier [`Self::wait_line`]) matches `pred`.
    pub fn has_seen(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.seen.iter().any(|l| pred(l))
    }

    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let diag = self.diagnostics();
                    return Err(format!(
                        "{}: no line {what} within {timeout:?}\n{diag}",
                        self.label
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.wait_exit(Duration::from_secs(2));
                    let diag = self.diagnostics();
                    return Err(format!(
                        "{}: exited ({:?}) before a line {what}\n{diag}",
                        self.label, self.ended
                    ));
                }
            }
        }
    }

    /// Peak RSS so far (KiB) from `/proc/PID/status`, while the process runs.
    pub fn vm_hwm_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// CPU time (user + system) of all the process's threads so far, in nanosecond resolution
    /// from the process's CPU-time clock. `/proc/PID/stat` counts in clock ticks (10 ms), which
    /// rounds the few milliseconds a smoke-size download costs on a fast machine down to 0; it
    /// stays as the fallback where the clock cannot be read.
    pub fn cpu_secs_now(&self) -> Option<f64> {
        self.cpu_clock_secs().or_else(|| self.cpu_ticks_secs())
    }

    fn cpu_clock_secs(&self) -> Option<f64> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: writes one clockid_t to a local.
        if unsafe { libc::clock_getcpuclockid(self.pid() as libc::pid_t, &mut clock) } != 0 {
            return None;
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: writes one timespec to a local.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return None;
        }
        Some(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
    }

    fn cpu_ticks_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The command name may hold spaces: count fields after its closing parenthesis.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no memory effects.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks > 0.0).then(|| (utime + stime) / ticks)
    }

    /// Peak RSS (`VmHWM`) and CPU time so far, then SIGTERM: the figures of a process that has
    /// done its work. `code` is how it then ended.
    pub fn stop_measured(&mut self) -> Result<Ended, String> {
        let (Some(max_rss_kib), Some(cpu_secs)) = (self.vm_hwm_kib(), self.cpu_secs_now()) else {
            let diag = self.diagnostics();
            return Err(format!("{} is not running any more\n{diag}", self.label));
        };
        let code = self.terminate().map_or(-1, |e| e.code);
        Ok(Ended {
            code,
            max_rss_kib,
            cpu_secs,
        })
    }

    /// Reaps the process if it has exited (non-blocking).
    fn try_reap(&mut self) -> Option<Ended> {
        if self.ended.is_none() {
            let mut status = 0;
            // SAFETY: zeroed rusage is a valid value for the out parameter.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: wait4 on our own child's pid, with valid pointers to locals. std's Child
            // never waits for it (we never call `Child::wait`), so the pid cannot be reused
            // before this reaps it.
            let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if rc == pid {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                self.ended = Some(Ended {
                    code,
                    // Linux reports ru_maxrss in KiB.
                    max_rss_kib: usage.ru_maxrss as u64,
                    cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
                });
            }
        }
        self.ended
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Ended> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ended) = self.try_reap() {
                return Some(ended);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a clean exit (status 0) within `timeout`; anything else is an error carrying
    /// what the process printed.
    pub fn expect_success(&mut self, timeout: Duration) -> Result<Ended, String> {
        match self.wait_exit(timeout) {
            Some(ended) if ended.code == 0 => Ok(ended),
            Some(ended) => {
                let diag = self.diagnostics();
                Err(format!(
                    "{} exited with status {}\n{diag}",
                    self.label, ended.code
                ))
            }
            None => {
                self.kill();
                let diag = self.diagnostics();
                Err(format!(
                    "{} still running after {timeout:?}; killed\n{diag}",
                    self.label
                ))
            }
        }
    }

    fn signal(&mut self, sig: libc::c_int) {
        if self.try_reap().is_none() {
            // SAFETY: kill(2) on our own child, which is not reaped yet (checked just above),
            // so the pid still names it.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; returns how it ended.
    pub fn terminate(&mut self) -> Option<Ended> {
        self.signal(libc::SIGTERM);
        if let Some(ended) = self.wait_exit(Duration::from_secs(5)) {
            return Some(ended);
        }
        self.kill();
        self.ended
    }

    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(5));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
