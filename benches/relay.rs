//! `cargo bench --bench relay [-- --size 256MiB]`: a relayed transfer against a direct one on
//! this machine (issue 18's target: relayed ≥ 0.5× direct), and the relay's CPU per relayed GiB.
//!
//! One tracker with `--relay` on 127.0.0.1. Direct: a peer serves the file on 127.0.0.1 and
//! another fetches it. Relayed: a peer serves the same file listening on 127.0.0.2 only (the
//! tracker lists it at 127.0.0.1, where nothing listens, so every direct dial is refused) and
//! the fetch goes through the relay. Each time is the one the `saved` line reports (the
//! download itself, not the start-up); the tracker's CPU time (user + system, from
//! /proc/PID/stat) is read before and after the relayed fetch. Prints one line per run and the
//! ratio.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_p2p");

struct Proc {
    child: Child,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.env("P2P_NO_LAN", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn p2p");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first line `pick` accepts, within `timeout`.
    fn wait_for<T>(&self, timeout: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no expected line within {timeout:?}: {e}"));
            if let Some(v) = pick(&line) {
                return v;
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces, so split after its ')').
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn serve(name: &str, listen: &str, tracker: SocketAddr, dir: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    // No hole punching: from 127.0.0.2 the relayed peer could dial the fetcher's listener
    // on 127.0.0.1 itself, and this measures the relay.
    cmd.args(["peer", "--name", name, "--serve", "--listen", listen])
        .arg("--no-punch")
        .arg("--tracker")
        .arg(tracker.to_string())
        .arg("--shared")
        .arg(dir.join("shared"))
        .arg("--downloads")
        .arg(dir.join(format!("{name}-dl")));
    let p = Proc::spawn(cmd);
    let (mut registered, mut sharing) = (false, false);
    p.wait_for(Duration::from_secs(120), |l| {
        registered |= l.starts_with("registered with tracker");
        sharing |= l.starts_with("sharing ");
        (registered && sharing).then_some(())
    });
    p
}

/// Fetches `file` from `from` in a batch; returns the seconds its `saved` line reports.
fn fetch(name: &str, from: &str, tracker: SocketAddr, dir: &Path) -> f64 {
    let peer_dir = dir.join(name);
    std::fs::create_dir_all(peer_dir.join("shared")).unwrap();
    let batch = peer_dir.join("batch.txt");
    std::fs::write(&batch, format!("wait-peer {from} 30\nget {from} big.bin\n")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["peer", "--name", name, "--listen", "127.0.0.1:0"])
        .arg("--tracker")
        .arg(tracker.to_string())
        .arg("--shared")
        .arg(peer_dir.join("shared"))
        .arg("--downloads")
        .arg(peer_dir.join("dl"))
        .arg("--batch")
        .arg(&batch);
    let p = Proc::spawn(cmd);
    let secs = p.wait_for(Duration::from_secs(600), |l| {
        let rest = l.strip_prefix("saved ")?;
        let after = &rest[rest.find(" in ")? + 4..];
        after[..after.find("s,")?].parse::<f64>().ok()
    });
    let _ = std::fs::remove_dir_all(peer_dir.join("dl"));
    secs
}

fn size_arg() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--size") else {
        return Ok(256 << 20);
    };
    let v = args
        .get(i + 1)
        .ok_or("--size needs a value")?
        .to_ascii_lowercase();
    let (n, mul) = match v.strip_suffix("mib") {
        Some(n) => (n, 1u64 << 20),
        None => (
            v.strip_suffix("gib").ok_or("--size: NMiB or NGiB")?,
            1 << 30,
        ),
    };
    n.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad --size {v}"))
}

fn main() -> ExitCode {
    let size = match size_arg() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    {
        // Bytes that do not compress or repeat (xorshift), written once for both runs.
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.path().join("shared/big.bin")).unwrap(),
        );
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..size >> 20 {
            for word in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["tracker", "--listen", "127.0.0.1:0", "--relay", "--state"])
        .arg(dir.path().join("tracker-state"));
    let tracker = Proc::spawn(cmd);
    let addr: SocketAddr = tracker.wait_for(Duration::from_secs(30), |l| {
        l.strip_prefix("tracker listening on ")?.parse().ok()
    });
    let mib = size as f64 / (1 << 20) as f64;

    let direct = {
        let _alice = serve("Alice", "127.0.0.1:0", addr, dir.path());
        fetch("Bob", "Alice", addr, dir.path())
    };
    println!(
        "direct:  {mib:.0} MiB in {direct:.2} s ({:.0} MiB/s)",
        mib / direct
    );

    let (relayed, cpu) = {
        let _carol = serve("Carol", "127.0.0.2:0", addr, dir.path());
        let pid = tracker.child.id();
        let before = cpu_secs(pid);
        let secs = fetch("Dave", "Carol", addr, dir.path());
        (secs, cpu_secs(pid) - before)
    };
    println!(
        "relayed: {mib:.0} MiB in {relayed:.2} s ({:.0} MiB/s)",
        mib / relayed
    );
    let ratio = direct / relayed;
    let per_gib = cpu / (size as f64 / (1u64 << 30) as f64);
    println!("relayed/direct throughput: {ratio:.2}x (target >= 0.5x)");
    println!("relay CPU: {cpu:.2} s for {mib:.0} MiB = {per_gib:.2} CPU-s per relayed GiB");
    if ratio >= 0.5 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
