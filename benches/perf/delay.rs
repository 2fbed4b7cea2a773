//! A delayed link for the 50 ms row: `netem` in a network namespace where the kernel has it,
//! otherwise a user-space TCP proxy that holds every byte for a fixed time in each direction.
//!
//! The proxy models a link with that one-way delay and no bandwidth limit: bytes are read as soon
//! as they arrive (so TCP between the proxy and either end never stalls) and written to the
//! other side `one_way` later. What it shows is exactly what the row is about: whether the
//! protocol keeps enough requests in flight to cover the round trip, or waits one round trip
//! per chunk. (It does not model TCP's own slow start over a long path; netem would.)

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::{Duration, Instant};

pub struct DelayProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on 127.0.0.1 (port chosen by the OS); every accepted connection is forwarded to
    /// `target` with `one_way` added in each direction.
    pub fn start(target: SocketAddr, one_way: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(target) {
                            pipe(&client, &server, one_way);
                            pipe(&server, &client, one_way);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(DelayProxy { addr, stop })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to`, each read delivered `delay` after it arrived: one thread reads and
/// timestamps, another sleeps until each block is due and writes it.
fn pipe(from: &TcpStream, to: &TcpStream, delay: Duration) {
    let (Ok(mut from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let _ = to.set_nodelay(true);
    let (tx, rx) = channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer after it delivered everything.
    });
    thread::spawn(move || deliver(rx, to));
}

fn deliver(rx: Receiver<(Instant, Vec<u8>)>, mut to: TcpStream) {
    while let Ok((due, bytes)) = rx.recv() {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if to.write_all(&bytes).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Whether `tc qdisc ... netem` can be set up here; `Err` is the reason it cannot.
pub fn netem_available() -> Result<(), String> {
    let ns = format!("p2p-bench-probe-{}", std::process::id());
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(&["ip", "netns", "add", &ns])?;
    let result = run(&["ip", "-n", &ns, "link", "set", "lo", "up"]).and_then(|()| {
        run(&[
            "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
            "delay", "1ms",
        ])
    });
    let _ = run(&["ip", "netns", "del", &ns]);
    result
}

/// A network namespace with its loopback up and, if `one_way` is not zero, netem adding
/// `one_way` to every packet leaving it (both directions pass through `lo`, so the round trip
/// is twice `one_way`). Deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(tag: &str, one_way: Duration) -> Result<Netns, String> {
        let name = format!("p2p-bench-{tag}-{}", std::process::id());
        let ok = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        if !one_way.is_zero() {
            let delay = format!("{}us", one_way.as_micros());
            ok(Command::new("ip").args([
                "netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                "delay", &delay, "limit", "100000",
            ]))?;
        }
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
