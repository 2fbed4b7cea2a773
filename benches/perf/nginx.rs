//! The curl←nginx yardstick of row 6 (issue 17: "64 MiB over a 50 ms link ≤ 1.1× curl←nginx on
//! the same link"): an `nginx` of our own serving the test file on 127.0.0.1 (a free port found
//! at run time; its own configuration, pid file, error log and temporary folders under the
//! benchmark's folder; one process in the foreground, as the user running the benchmark), and
//! `curl -o FILE` fetching it through the same delay as the p2p download. Needs `nginx` and
//! `curl` (Debian: `apt-get install nginx-light curl`); without them the row says so.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nginx` on the PATH, else where Debian puts it (`/usr/sbin` is not on every user's PATH).
fn nginx_program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

fn curl_program() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("curl"))
            .find(|p| p.is_file())
    })
}

/// Why the comparison cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let missing: Vec<&str> = [
        ("nginx", nginx_program().is_none()),
        ("curl", curl_program().is_none()),
    ]
    .into_iter()
    .filter_map(|(tool, gone)| gone.then_some(tool))
    .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "{} not installed (apt-get install nginx-light curl)",
            missing.join(" and ")
        ))
    }
}

/// A running `nginx` serving one folder; killed on drop.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    error_log: PathBuf,
}

impl Nginx {
    /// Serves `root` (read-only) on a free port of `ip` (127.0.0.1, or an address of a delayed
    /// link's end on this host), with everything nginx writes under `dir`. `wrap` turns the program into the command that runs it (on this host,
    /// or inside a network namespace). Returns once the port accepts connections.
    pub fn start(
        root: &Path,
        dir: &Path,
        ip: Ipv4Addr,
        wrap: impl Fn(&Path) -> Command,
    ) -> Result<Nginx, String> {
        let program = nginx_program().ok_or("nginx is not installed")?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("nginx folder: {e}"))?;
        // Modules built in write temporary files under paths compiled in (/var/lib/nginx,
        // root's); point every one that exists in this build at our folder.
        let built = Command::new(&program)
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        let mut temp_paths = format!("client_body_temp_path {}/tmp/body;\n", dir.display());
        for module in ["proxy", "fastcgi", "uwsgi", "scgi"] {
            if !built.contains(&format!("--without-http_{module}_module")) {
                temp_paths.push_str(&format!(
                    "    {module}_temp_path {}/tmp/{module};\n",
                    dir.display()
                ));
            }
        }
        let mut last_error = String::new();
        // The port is free when asked for and taken by nginx a moment later: another
        // process may take it in between, so try a few.
        for _ in 0..3 {
            let port = TcpListener::bind((ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("a free port: {e}"))?
                .port();
            let addr: SocketAddr = (ip, port).into();
            let config = dir.join("nginx.conf");
            let error_log = dir.join("error.log");
            // `master_process off`: one process that stays the user who started it (no
            // `user` switch, so it reads the benchmark's private folder). sendfile and
            // tcp_nopush as in Debian's default configuration.
            let text = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\n\
                 error_log {log} warn;\nevents {{ worker_connections 64; }}\n\
                 http {{\n    access_log off;\n    {temp_paths}\
                     sendfile on;\n    tcp_nopush on;\n    default_type application/octet-stream;\n\
                     server {{\n        listen {addr};\n        root {root};\n    }}\n}}\n",
                pid = dir.join("nginx.pid").display(),
                log = error_log.display(),
                root = root.display(),
            );
            std::fs::write(&config, text).map_err(|e| format!("nginx.conf: {e}"))?;
            let mut cmd = wrap(&program);
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&config)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd.spawn().map_err(|e| format!("cannot run nginx: {e}"))?;
            let mut nginx = Nginx {
                child,
                addr,
                error_log,
            };
            match nginx.wait_ready() {
                Ok(()) => return Ok(nginx),
                Err(why) => last_error = why,
            }
        }
        Err(format!("nginx did not start: {last_error}"))
    }

    /// Waits until the port accepts a connection, or nginx exits (with its reason).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut why = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut err, &mut why);
                }
                let log = std::fs::read_to_string(&self.error_log).unwrap_or_default();
                return Err(format!(
                    "exited with {status}: {} {}",
                    why.trim(),
                    log.trim()
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("its port did not open within 10 s".into())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -o out URL`: seconds from spawning curl to its exit, the file complete. Checks the
/// file holds `size` bytes. `wrap` as in [`Nginx::start`].
pub fn curl_get(
    url: &str,
    out: &Path,
    size: u64,
    wrap: impl Fn(&Path) -> Command,
) -> Result<f64, String> {
    let program = curl_program().ok_or("curl is not installed")?;
    let _ = std::fs::remove_file(out);
    let mut cmd = wrap(&program);
    // -q: no ~/.curlrc; --noproxy: an http_proxy in the environment must not send it elsewhere.
    cmd.args([
        "-q",
        "--silent",
        "--show-error",
        "--fail",
        "--noproxy",
        "*",
        "-o",
    ])
    .arg(out)
    .arg(url)
    .stdin(Stdio::null());
    let started = Instant::now();
    let result = cmd.output().map_err(|e| format!("cannot run curl: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !result.status.success() {
        return Err(format!(
            "curl {url} failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    let got = std::fs::metadata(out)
        .map_err(|e| format!("curl's file: {e}"))?
        .len();
    let _ = std::fs::remove_file(out);
    if got != size {
        return Err(format!("curl fetched {got} bytes, expected {size}"));
    }
    Ok(secs)
}
