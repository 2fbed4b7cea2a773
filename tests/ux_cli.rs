//! The command line people and scripts meet first: configuration precedence and
//! `--print-config`, shell completions, usage exit codes, and `p2p demo`.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `p2p ARGS` in `cwd` with exactly the `P2P_*` / `XDG_CONFIG_HOME` variables given (the
/// developer's own are removed), bounded by `timeout`. Returns (exit code, stdout, stderr).
fn p2p_env(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &std::path::Path,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env("P2P_NO_LAN", "1");
    for var in [
        "P2P_NAME",
        "P2P_TRACKER",
        "P2P_SHARED",
        "P2P_DOWNLOADS",
        "P2P_CONFIG",
        "XDG_CONFIG_HOME",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn p2p");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "p2p {args:?} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn print_config(env: &[(&str, &str)], flags: &[&str], cwd: &std::path::Path) -> serde_json::Value {
    let mut args = vec!["peer", "--print-config", "--json"];
    args.extend_from_slice(flags);
    let (code, out, err) = p2p_env(&args, env, cwd, Duration::from_secs(20));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn origin_of(v: &serde_json::Value, key: &str) -> (String, String) {
    let row = &v["values"][key];
    (
        row["value"]
            .as_str()
            .map_or(row["value"].to_string(), str::to_string),
        row["origin"].as_str().unwrap_or("?").to_string(),
    )
}

#[test]
fn settings_come_from_flags_then_env_then_config_file_then_defaults() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("xdg");
    std::fs::create_dir_all(xdg.join("p2p")).unwrap();
    std::fs::write(
        xdg.join("p2p").join("config.toml"),
        "name = \"FileName\"\ntracker = \"127.0.0.1:7001\"\nshared = \"file-shared\"\n\
         downloads = \"/tmp/file-downloads\"\nretry_for = 7\n",
    )
    .unwrap();
    let xdg_s = xdg.to_str().unwrap();

    // The file alone.
    let v = print_config(&[("XDG_CONFIG_HOME", xdg_s)], &[], home.path());
    assert_eq!(v["config_file"]["found"], true, "{v}");
    assert_eq!(origin_of(&v, "name"), ("FileName".into(), "file".into()));
    assert_eq!(
        origin_of(&v, "tracker"),
        ("127.0.0.1:7001".into(), "file".into())
    );
    assert_eq!(
        origin_of(&v, "shared"),
        (
            xdg.join("p2p").join("file-shared").display().to_string(),
            "file".into()
        ),
        "relative paths in the file are relative to its folder"
    );
    assert_eq!(v["values"]["retry_for"]["value"], 7);
    assert_eq!(
        origin_of(&v, "listen"),
        ("0.0.0.0:0".into(), "default".into())
    );

    // The environment beats the file.
    let env = [
        ("XDG_CONFIG_HOME", xdg_s),
        ("P2P_NAME", "EnvName"),
        ("P2P_TRACKER", "127.0.0.1:7002"),
        ("P2P_SHARED", "/tmp/env-shared"),
        ("P2P_DOWNLOADS", "/tmp/env-downloads"),
    ];
    let v = print_config(&env, &[], home.path());
    assert_eq!(origin_of(&v, "name"), ("EnvName".into(), "env".into()));
    assert_eq!(v["values"]["name"]["from"], "P2P_NAME");
    assert_eq!(
        origin_of(&v, "tracker"),
        ("127.0.0.1:7002".into(), "env".into())
    );
    assert_eq!(
        origin_of(&v, "shared"),
        ("/tmp/env-shared".into(), "env".into())
    );
    assert_eq!(
        origin_of(&v, "downloads"),
        ("/tmp/env-downloads".into(), "env".into())
    );
    assert_eq!(v["values"]["retry_for"]["origin"], "file");

    // Flags beat both.
    let flags = [
        "--name",
        "FlagName",
        "--tracker",
        "127.0.0.1:7003",
        "--shared",
        "flag-shared",
        "--retry-for",
        "9",
    ];
    let v = print_config(&env, &flags, home.path());
    assert_eq!(origin_of(&v, "name"), ("FlagName".into(), "flag".into()));
    assert_eq!(
        origin_of(&v, "tracker"),
        ("127.0.0.1:7003".into(), "flag".into())
    );
    assert_eq!(
        origin_of(&v, "shared"),
        ("flag-shared".into(), "flag".into())
    );
    assert_eq!(origin_of(&v, "downloads").1, "env");
    assert_eq!(v["values"]["retry_for"]["value"], 9);

    // --config names another file; the human form says where each value came from.
    let other = home.path().join("other.toml");
    std::fs::write(&other, "name = \"Other\"\n").unwrap();
    let other_s = other.to_str().unwrap();
    let (code, out, err) = p2p_env(
        &["peer", "--print-config", "--config", other_s],
        &[("XDG_CONFIG_HOME", xdg_s), ("P2P_SHARED", "/tmp/s")],
        home.path(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in\n{out}"))
            .to_string()
    };
    assert!(line("config").contains(other_s), "{out}");
    assert!(
        line("name").contains("Other") && line("name").contains(other_s),
        "{out}"
    );
    assert!(line("shared").contains("(env P2P_SHARED)"), "{out}");
    assert!(line("tracker").contains("127.0.0.1:9000") && line("tracker").contains("(default)"));
}

#[test]
fn config_file_name_is_used_to_run_and_bad_config_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    let cfg = home.path().join("c.toml");
    std::fs::write(&cfg, "name = \"Cfg\"\nshared = \"s\"\ndownloads = \"d\"\n").unwrap();
    std::fs::write(home.path().join("batch.txt"), "shared\n").unwrap();
    let t = tracker.addr.to_string();
    let (code, out, err) = p2p_env(
        &[
            "peer",
            "--tracker",
            &t,
            "--listen",
            "127.0.0.1:0",
            "--batch",
            "batch.txt",
        ],
        &[("P2P_CONFIG", cfg.to_str().unwrap())],
        home.path(),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.starts_with("Cfg listening on"), "{out}");
    assert!(home.path().join("s").is_dir() && home.path().join("d").is_dir());

    std::fs::write(&cfg, "nmae = \"typo\"\n").unwrap();
    let (code, _, err) = p2p_env(
        &["peer", "--print-config"],
        &[("P2P_CONFIG", cfg.to_str().unwrap())],
        home.path(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("error:") && err.contains("nmae"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["peer"],                                        // no name anywhere
        vec!["peer", "--name", "A", "--json"],               // --json without batch/serve
        vec!["peer", "--name", "bad name"],                  // invalid name
        vec!["peer", "--name", "A", "--tracker", "nowhere"], // unresolvable tracker
        vec!["peer", "--name", "A", "--bogus"],              // clap
        vec!["completions", "tcsh"],                         // clap
    ] {
        let (code, out, err) = p2p_env(&args, &[], home.path(), Duration::from_secs(20));
        assert_eq!(
            code,
            Some(2),
            "p2p {args:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(err.contains("error"), "p2p {args:?}: {err}");
    }
}

#[test]
fn completions_generate_for_bash_zsh_and_fish() {
    let home = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef p2p"),
        ("fish", "complete -c p2p"),
    ] {
        let (code, out, err) = p2p_env(
            &["completions", shell],
            &[],
            home.path(),
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(0), "{shell}: {err}");
        assert!(out.contains(marker), "{shell} completions lack {marker:?}");
        for word in ["peer", "tracker", "print-config", "json", "demo"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
}

#[test]
fn demo_runs_and_reports_a_verified_transfer() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = p2p_env(
        &["demo", "--size-mib", "8"],
        &[],
        home.path(),
        Duration::from_secs(90),
    );
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("demo: ") && out.contains("verified:"), "{out}");
    assert!(out.contains("[Carol] saved "), "{out}");
    // Alice had never met Carol: the name comes with the short id of the key it is pinned to.
    assert!(
        out.lines()
            .any(|l| l.strip_prefix("[Alice] ").is_some_and(|l| is_chat(
                l,
                "Carol",
                "thanks for the file!"
            ))),
        "{out}"
    );
    // The temporary folder is gone.
    let dir = out
        .lines()
        .find_map(|l| l.split("working in ").nth(1))
        .expect("the demo names its folder");
    assert!(
        !std::path::Path::new(dir.trim()).exists(),
        "{dir} left behind"
    );
}

/// Runs `p2p peer NAME ... FLAGS --batch -` with `commands` on stdin and `env` set.
fn batch_run(
    tracker: std::net::SocketAddr,
    flags: &[&str],
    env: &[(&str, &str)],
    commands: &str,
) -> (Option<i32>, String, String) {
    let dirs = PeerDirs::new();
    let mut args = flags.to_vec();
    args.extend(["--batch", "-"]);
    let mut cmd = peer_command("Quinn", tracker, &dirs, &args);
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn("Quinn", cmd, Some(commands.as_bytes().to_vec()));
    let status = proc.wait_exit(BATCH_TIMEOUT);
    let out = proc.collect_stdout(Duration::from_secs(5)).join("\n");
    (status.code(), out, proc.stderr_text())
}

#[test]
fn quiet_keeps_results_and_verbose_or_rust_log_add_logs_on_stderr() {
    let tracker = Tracker::start();
    let (code, out, err) = batch_run(tracker.addr, &["-q"], &[], "shared\n");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("no files shared"), "{out}");
    assert!(
        !out.contains("listening on") && !out.contains("registered"),
        "{out}"
    );
    assert!(!err.contains("DEBUG") && !err.contains("INFO"), "{err}");

    let (code, out, err) = batch_run(tracker.addr, &["-vv"], &[], "shared\n");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("Quinn listening on"),
        "stdout is unchanged: {out}"
    );
    assert!(
        err.contains("DEBUG") && err.contains("command Shared"),
        "{err}"
    );
    assert!(!out.contains("DEBUG"), "logs stay off stdout: {out}");

    let env = [("RUST_LOG", "p2p::peer::ops=debug")];
    let (code, out, err) = batch_run(tracker.addr, &[], &env, "frobnicate\n");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("command failed (Failed)"), "{err}");
    assert!(err.contains("error: unknown command"), "{err}");
}

/// `--exempt-loopback` (bare or with yes/no) reaches the settings; without it loopback is
/// limited like anything else and `--print-config` lists no such row.
#[test]
fn exempt_loopback_is_a_flag_and_off_by_default() {
    let home = tempfile::tempdir().unwrap();
    let env = [("HOME", home.path().to_str().unwrap())];
    let v = print_config(&env, &["--exempt-loopback"], home.path());
    assert_eq!(
        origin_of(&v, "exempt_loopback"),
        ("yes".into(), "flag".into()),
        "{v}"
    );
    let v = print_config(&env, &["--exempt-loopback", "no"], home.path());
    assert_eq!(origin_of(&v, "exempt_loopback").0, "no", "{v}");
    let v = print_config(&env, &[], home.path());
    assert!(v["values"]["exempt_loopback"].is_null(), "{v}");
}
