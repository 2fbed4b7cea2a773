//! A delayed link at the packet level, for row 6 where the kernel has no netem: two TUN
//! devices, one on this host ("far", [`TunLink::far`]) and one moved into a network namespace
//! of its own ("near", [`TunLink::near`]), and a forwarder here that carries every IP packet
//! from one to the other `one_way` after it left.
//!
//! Unlike the TCP proxy of `delay.rs` (which accepts a connection at once and only delays the
//! bytes), this is a link as TCP sees one: the connection's own handshake takes a round trip,
//! slow start and the receive window play out over the delay, and the kernel's TCP on both
//! ends does what it does on a long path. So curl pays its TCP handshake and slow start too,
//! as it would on a real 50 ms link. The forwarder adds no loss and no bandwidth limit of its
//! own beyond the packets it can copy (at an MTU of [`MTU`], far more than the row moves).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Both devices' MTU: loopback's, so the forwarder copies few, large packets (TCP segments
/// of up to 64 KiB) and is never what bounds the rate.
pub const MTU: u32 = 65_000;

/// The link; deleted (devices, namespace, threads) on drop.
pub struct TunLink {
    /// The namespace holding [`Self::near`].
    pub ns: String,
    /// This host's end of the link.
    pub far: Ipv4Addr,
    /// The namespace's end.
    pub near: Ipv4Addr,
    far_dev: String,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    writers: Vec<JoinHandle<()>>,
}

fn run(args: &[&str]) -> Result<(), String> {
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
}

/// Opens a new TUN device called `name` (no packet-information header); it lives while the
/// descriptor is open.
fn open_tun(name: &str) -> Result<OwnedFd, String> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let path = c"/dev/net/tun";
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("/dev/net/tun: {}", io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `IfReq` lays out.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        return Err(format!("TUNSETIFF {name}: {}", io::Error::last_os_error()));
    }
    Ok(fd)
}

impl TunLink {
    /// Whether a link can be made here; `Err` is why not.
    pub fn available() -> Result<(), String> {
        TunLink::create("probe", Duration::ZERO).map(drop)
    }

    /// A link adding `one_way` to every packet each way. Names and addresses are this
    /// process's own (a /24 of 10.77/16 from the process id, device and namespace names from
    /// it and a count), so links of other runs on the machine do not collide with it.
    pub fn create(tag: &str, one_way: Duration) -> Result<TunLink, String> {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed) % 1000;
        let id = std::process::id();
        let ns = format!("p2p-bench-{tag}-{id}-{n}");
        // Device names hold at most 15 bytes: "p" + 7 digits + "-" + 3 + "f".
        let far_dev = format!("p{id}-{n}f");
        let near_dev = format!("p{id}-{n}n");
        let subnet = (id % 250) as u8;
        let far = open_tun(&far_dev)?;
        let near = open_tun(&near_dev)?;
        run(&["ip", "netns", "add", &ns])?;
        let mut link = TunLink {
            ns,
            far: Ipv4Addr::new(10, 77, subnet, 1),
            near: Ipv4Addr::new(10, 77, subnet, 2),
            far_dev,
            stop: Arc::new(AtomicBool::new(false)),
            readers: Vec::new(),
            writers: Vec::new(),
        };
        let (ns, far_dev) = (link.ns.clone(), link.far_dev.clone());
        let (far_ip, near_ip) = (link.far.to_string(), link.near.to_string());
        let mtu = MTU.to_string();
        run(&["ip", "link", "set", &near_dev, "netns", &ns])?;
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        run(&[
            "ip", "-n", &ns, "addr", "add", &near_ip, "peer", &far_ip, "dev", &near_dev,
        ])?;
        run(&["ip", "-n", &ns, "link", "set", &near_dev, "mtu", &mtu, "up"])?;
        run(&[
            "ip", "addr", "add", &far_ip, "peer", &near_ip, "dev", &far_dev,
        ])?;
        run(&["ip", "link", "set", &far_dev, "mtu", &mtu, "up"])?;
        let (far, near) = (Arc::new(far), Arc::new(near));
        for (from, to) in [(&far, &near), (&near, &far)] {
            let (tx, rx) = channel::<(Instant, Vec<u8>)>();
            let (from, to, stop) = (Arc::clone(from), Arc::clone(to), Arc::clone(&link.stop));
            link.readers.push(thread::spawn(move || {
                let mut buf = vec![0u8; MTU as usize + 64];
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&from, Duration::from_millis(50)) {
                        continue;
                    }
                    // SAFETY: `buf` is valid for its length; one read is one packet.
                    let n =
                        unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        continue;
                    }
                    let packet = buf[..n as usize].to_vec();
                    if tx.send((Instant::now() + one_way, packet)).is_err() {
                        break;
                    }
                }
            }));
            link.writers.push(thread::spawn(move || deliver(rx, &to)));
        }
        Ok(link)
    }

    /// A command that runs `program` inside the namespace (at [`Self::near`]).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }
}

fn readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) > 0 }
}

/// Writes each packet to `to` once it is due, in the order they came.
fn deliver(rx: Receiver<(Instant, Vec<u8>)>, to: &OwnedFd) {
    while let Ok((due, packet)) = rx.recv() {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // SAFETY: `packet` is valid for its length. A packet the device refuses is lost, as
        // on any link.
        unsafe { libc::write(to.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Readers stop within one poll; their channels close, so the writers end once they
        // delivered what was queued. The last descriptor closed removes each device.
        for t in self.readers.drain(..).chain(self.writers.drain(..)) {
            let _ = t.join();
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = run(&["ip", "link", "del", &self.far_dev]);
    }
}
