//! The `scp` yardstick: the same file copied with `scp` from an `sshd` of our own on
//! 127.0.0.1 (a port of its own, keys made for the run, nothing of the system's), which
//! encrypts but verifies nothing beyond its MAC. Needs OpenSSH's `sshd`, `scp` and
//! `ssh-keygen` (Debian: `apt-get install openssh-server openssh-client`); without them the
//! row is left out and a note says why.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// One copy: MB/s, and CPU seconds of the client (`scp` and its `ssh`) and of the server side
/// (the session `sshd` processes, as the listener reaps them).
pub struct ScpRun {
    pub mbps: f64,
    pub client_cpu: f64,
    pub server_cpu: f64,
}

/// A running `sshd` and the client key that logs in to it.
pub struct Sshd {
    child: Child,
    addr: SocketAddr,
    key: PathBuf,
    pub cipher: String,
}

/// Why the row cannot be measured here, if it cannot.
pub fn unavailable() -> Option<String> {
    for tool in [SSHD, "/usr/bin/scp", "/usr/bin/ssh-keygen"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} is not installed (apt-get install openssh-server)"
            ));
        }
    }
    None
}

fn run(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Sshd {
    /// Starts `sshd -D` on a free loopback port with keys made in `dir`.
    pub fn start(dir: &Path) -> io::Result<Sshd> {
        std::fs::create_dir_all(dir)?;
        // Privilege separation wants this folder; it may not exist in a container.
        let _ = std::fs::create_dir_all("/run/sshd");
        let (host, key) = (dir.join("host_key"), dir.join("client_key"));
        for k in [&host, &key] {
            if !k.exists() {
                run(
                    Command::new("ssh-keygen")
                        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                        .arg(k),
                    "ssh-keygen",
                )?;
            }
        }
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("sshd_config");
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin yes\nAllowUsers {user}\nPidFile {}\n\
                 Subsystem sftp internal-sftp\n",
                host.display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("sshd did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the client and this server agree on by default (OpenSSH's first choice).
        let out = Command::new("ssh").arg("-Q").arg("cipher").output()?;
        let cipher = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|c| c.starts_with("chacha20"))
            .unwrap_or("default")
            .to_string();
        Ok(Sshd {
            child,
            addr,
            key,
            cipher,
        })
    }

    /// Copies `from` (a path on this machine, through the server) to `to`.
    pub fn copy(&mut self, from: &Path, to: &Path) -> io::Result<ScpRun> {
        let _ = std::fs::remove_file(to);
        let server_before = children_cpu(self.child.id());
        let started = Instant::now();
        let mut scp = Command::new("scp")
            .args(["-q", "-B", "-P"])
            .arg(self.addr.port().to_string())
            .arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("127.0.0.1:{}", from.display()))
            .arg(to)
            .stdin(Stdio::null())
            .spawn()?;
        let status = wait_with_cpu(&mut scp)?;
        let secs = started.elapsed().as_secs_f64();
        if !status.0.success() {
            return Err(io::Error::other(format!("scp exited with {}", status.0)));
        }
        let size = std::fs::metadata(from)?.len();
        if std::fs::metadata(to)?.len() != size {
            return Err(io::Error::other("scp copied another length"));
        }
        // The session process exits right after the copy; the listener reaps it soon after.
        let mut server = children_cpu(self.child.id()) - server_before;
        let deadline = Instant::now() + Duration::from_secs(2);
        while server <= 0.0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            server = children_cpu(self.child.id()) - server_before;
        }
        Ok(ScpRun {
            mbps: size as f64 / secs / 1e6,
            client_cpu: status.1,
            server_cpu: server,
        })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds of the reaped children of `pid` (`cutime` + `cstime` of /proc/PID/stat).
fn children_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    let ticks: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Waits for `child`; its exit status and the CPU seconds it and its own children used.
fn wait_with_cpu(child: &mut Child) -> io::Result<(std::process::ExitStatus, f64)> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        std::process::ExitStatus::from_raw(status),
        secs(usage.ru_utime) + secs(usage.ru_stime),
    ))
}
