//! Network namespaces for the tests that need a real link (LAN multicast, shaped links): two
//! namespaces joined by a veth pair, removed when the [`Link`] is dropped, and the command
//! runner that builds them. Needs root and iproute2 (`.ci/run` installs it).

use std::process::Command;

/// Two namespaces (and the veth pair between them); removed on drop (deleting a namespace
/// deletes its end of the veth, and with it the other end).
pub struct Link {
    pub ns: [String; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `args` (a command and its arguments); its stderr in the error if it fails.
pub fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
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

/// `PROGRAM ARGS` inside namespace `ns`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    cmd
}

/// `p2p peer --name NAME --tracker TRACKER --shared .. --downloads .. EXTRA` inside namespace
/// `ns`, run from the peer's folder: [`super::peer_command`] for a peer in a namespace, where
/// the caller says what it listens on.
pub fn peer_in_ns(
    ns: &str,
    name: &str,
    tracker: &str,
    dirs: &super::PeerDirs,
    extra: &[&str],
) -> Command {
    let mut cmd = in_ns(
        ns,
        super::bin(),
        &["peer", "--name", name, "--tracker", tracker],
    );
    cmd.arg("--shared")
        .arg(&dirs.shared)
        .arg("--downloads")
        .arg(&dirs.downloads)
        .args(extra)
        .current_dir(dirs.root());
    cmd
}
