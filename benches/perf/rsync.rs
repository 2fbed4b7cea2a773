//! `rsync -a` of a tree from a loopback rsync daemon: the yardstick for fetching folders of
//! small files (issue 15). Shared by `benches/folders.rs` and the folder rows of `perf`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `rsync -a` of `shared/TREE` from a daemon on 127.0.0.1 into `dest` (the daemon's start
/// is not timed, its connection and file list are); `Err` says why it was not measured.
pub fn rsync_time(work: &Path, shared: &Path, tree: &str, dest: &Path) -> Result<Duration, String> {
    let installed = Command::new("rsync")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err("rsync is not installed".into());
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let conf = work.join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "use chroot = no\nport = {port}\naddress = 127.0.0.1\npid file = {}\n[m]\npath = {}\nread only = yes\n",
            work.join(format!("rsyncd-{port}.pid")).display(),
            shared.display()
        ),
    )
    .map_err(|e| format!("rsyncd.conf: {e}"))?;
    let mut daemon = Command::new("rsync")
        .args(["--daemon", "--no-detach", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("rsync --daemon: {e}"))?;
    // Wait (bounded) until the daemon accepts connections.
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if ready.elapsed() > Duration::from_secs(10) {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err("the rsync daemon did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    let status = Command::new("rsync")
        .arg("-a")
        .arg(format!("rsync://127.0.0.1:{port}/m/{tree}"))
        .arg(dest)
        .status();
    let took = start.elapsed();
    let _ = daemon.kill();
    let _ = daemon.wait();
    match status {
        Ok(s) if s.success() => Ok(took),
        Ok(s) => Err(format!("rsync -a failed: {s}")),
        Err(e) => Err(format!("rsync -a: {e}")),
    }
}
