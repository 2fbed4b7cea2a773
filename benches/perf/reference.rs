//! The yardsticks the verified download is compared with, measured in-process on the same file:
//! - the plain TCP copy (raw transport: blocking send of the file, blocking receive, discard);
//! - the reference loop: the same receive, plus SHA-256 over every byte and a write to a file —
//!   the unavoidable work of a verified download, with no protocol at all;
//! - single-core SHA-256 over the same bytes.

use sha2::Digest;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Instant;

/// Receive buffer of the reference loops (the protocol's chunk size).
const RECV_BUF: usize = 256 * 1024;
/// Read size of the sending side.
const SEND_BUF: usize = 1024 * 1024;

/// Sends `path` over a fresh loopback connection from another thread and runs `sink` on every
/// received block in this one. Returns MB/s (10^6 bytes) from the first byte sent to the last
/// one handled.
fn over_loopback(path: &Path, mut sink: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut file = File::open(path)?;
    let started = Instant::now();
    let sender = thread::spawn(move || -> io::Result<u64> {
        let mut sock = TcpStream::connect(addr)?;
        let mut buf = vec![0u8; SEND_BUF];
        let mut sent = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(sent);
            }
            sock.write_all(&buf[..n])?;
            sent += n as u64;
        }
    });
    let (mut sock, _) = listener.accept()?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut got = 0u64;
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sink(&buf[..n])?;
        got += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    if sent != got {
        return Err(io::Error::other(format!(
            "sent {sent} bytes, received {got}"
        )));
    }
    Ok(got as f64 / secs / 1e6)
}

/// The raw transport: bytes over loopback TCP, received and dropped.
pub fn tcp_copy(path: &Path) -> io::Result<f64> {
    over_loopback(path, |_| Ok(()))
}

/// CPU time (user + system) this thread has used so far, in seconds.
pub fn thread_cpu_secs() -> f64 {
    // SAFETY: getrusage with a valid pointer to a zeroed local.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The minimal verified receive: loopback TCP, SHA-256 over every byte, written to `out`.
/// Returns MB/s, the digest, and the CPU seconds of the receiving thread.
pub fn reference_loop(path: &Path, out: &Path) -> io::Result<(f64, [u8; 32], f64)> {
    let mut file = File::create(out)?;
    let mut hasher = sha2::Sha256::new();
    let cpu = thread_cpu_secs();
    let rate = over_loopback(path, |block| {
        hasher.update(block);
        file.write_all(block)
    })?;
    let cpu = thread_cpu_secs() - cpu;
    drop(file);
    let _ = std::fs::remove_file(out);
    Ok((rate, hasher.finalize().into(), cpu))
}

/// Single-core SHA-256 of the file's bytes (reading them is not timed).
pub fn sha256_speed(path: &Path) -> io::Result<(f64, [u8; 32])> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; SEND_BUF];
    let mut hasher = sha2::Sha256::new();
    let mut hashing = 0.0;
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let t = Instant::now();
        hasher.update(&buf[..n]);
        hashing += t.elapsed().as_secs_f64();
        total += n as u64;
    }
    Ok((total as f64 / hashing / 1e6, hasher.finalize().into()))
}
