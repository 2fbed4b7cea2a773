//! A peer's settings and where each came from: a flag, then the environment (`P2P_NAME`,
//! `P2P_TRACKER`, `P2P_SHARED`, `P2P_DOWNLOADS`), then the config file
//! (`$XDG_CONFIG_HOME/p2p/config.toml`, else `~/.config/p2p/config.toml`; `--config PATH` or
//! `P2P_CONFIG` choose another), then the built-in default. `p2p peer --print-config` shows
//! the result.
//!
//! The config file is TOML with these keys, all optional (an unknown key is an error, so a typo
//! does not go unnoticed):
//!
//! ```toml
//! name = "Alice"
//! tracker = "tracker.example:9000"
//! listen = "0.0.0.0:7000"
//! shared = "~/Public"          # relative paths are relative to the config file's folder
//! downloads = "~/Downloads/p2p"
//! retry_for = 60
//! resume_on_start = true       # default: on in the REPL and --serve, off in --batch
//! max_down = "20MB/s"          # rate limits (README, "Rate limits"); "off" or 0: none
//! max_up = "5MiB/s"
//! max_down_per_peer = "500k"
//! max_up_per_peer = 1000000    # a number is bytes a second
//! exempt_loopback = true       # no limit for connections with this machine (default: false)
//! dht = true                   # publish on and search the Mainline DHT (default: false)
//! dht_bootstrap = ["192.0.2.1:6881"]  # DHT nodes to join through instead of the public ones
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_TRACKER: &str = "127.0.0.1:9000";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:0";
pub const DEFAULT_SHARED: &str = "shared";
pub const DEFAULT_DOWNLOADS: &str = "downloads";
pub const DEFAULT_RETRY_FOR: u64 = 60;

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (`--name`).
    Flag(&'static str),
    /// An environment variable (`P2P_NAME`).
    Env(&'static str),
    /// The config file.
    File(PathBuf),
    /// Built in.
    Default,
}

impl Origin {
    fn kind(&self) -> &'static str {
        match self {
            Origin::Flag(_) => "flag",
            Origin::Env(_) => "env",
            Origin::File(_) => "file",
            Origin::Default => "default",
        }
    }

    fn from(&self) -> Option<String> {
        match self {
            Origin::Flag(f) => Some(f.to_string()),
            Origin::Env(v) => Some(v.to_string()),
            Origin::File(p) => Some(p.display().to_string()),
            Origin::Default => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.from() {
            Some(from) => write!(f, "{} {from}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// What the command line said about one setting: clap reports whether a value came from the
/// flag or from its environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Given<T> {
    Flag(T),
    Env(T),
    #[default]
    Absent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// The settings `p2p peer` takes from the command line, the environment or the config file.
#[derive(Clone, Debug, Default)]
pub struct CommandLine {
    pub config: Given<PathBuf>,
    pub name: Given<String>,
    pub tracker: Given<String>,
    pub listen: Given<String>,
    pub shared: Given<PathBuf>,
    pub downloads: Given<PathBuf>,
    pub retry_for: Given<u64>,
    pub resume_on_start: Given<bool>,
    pub max_down: Given<String>,
    pub max_up: Given<String>,
    pub max_down_per_peer: Given<String>,
    pub max_up_per_peer: Given<String>,
    pub exempt_loopback: Given<bool>,
    pub dht: Given<bool>,
    pub dht_bootstrap: Given<Vec<String>>,
}

/// A rate in the config file: text (`"20MB/s"`, `"off"`) or a number of bytes a second.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RateValue {
    Bytes(u64),
    Text(String),
}

impl RateValue {
    fn text(self) -> String {
        match self {
            RateValue::Bytes(n) => n.to_string(),
            RateValue::Text(t) => t,
        }
    }
}

/// The config file as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub name: Option<String>,
    pub tracker: Option<String>,
    pub listen: Option<String>,
    pub shared: Option<PathBuf>,
    pub downloads: Option<PathBuf>,
    pub retry_for: Option<u64>,
    pub resume_on_start: Option<bool>,
    pub max_down: Option<RateValue>,
    pub max_up: Option<RateValue>,
    pub max_down_per_peer: Option<RateValue>,
    pub max_up_per_peer: Option<RateValue>,
    pub exempt_loopback: Option<bool>,
    pub dht: Option<bool>,
    pub dht_bootstrap: Option<Vec<String>>,
}

/// Which config file was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSource {
    /// `None`: no path could be made (no `XDG_CONFIG_HOME` and no `HOME`).
    pub path: Option<PathBuf>,
    pub origin: Origin,
    pub found: bool,
}

#[derive(Clone, Debug)]
pub struct PeerSettings {
    pub config_file: ConfigSource,
    /// `None`: given nowhere (required to run, not to print the configuration).
    pub name: Option<Setting<String>>,
    pub tracker: Setting<String>,
    pub listen: Setting<String>,
    pub shared: Setting<PathBuf>,
    pub downloads: Setting<PathBuf>,
    pub retry_for: Setting<u64>,
    /// `None`: not given anywhere, so it depends on the mode (on in the REPL and `--serve`,
    /// off in `--batch`, where the script says what to fetch).
    pub resume_on_start: Option<Setting<bool>>,
    /// Upload and download rate limits (all unlimited unless given).
    pub rate_limits: crate::reactor::RateLimits,
    /// Where each limit that is set came from: (config key, text as given, origin).
    pub rate_origins: Vec<RateOrigin>,
    /// The Mainline DHT: on only if asked for (`--dht`, or implied by `--dht-bootstrap`).
    pub dht: Setting<bool>,
    /// DHT nodes to join through; empty: the public bootstrap nodes.
    pub dht_bootstrap: Option<Setting<Vec<String>>>,
}

/// The environment the settings are read from (the real one, or a test's).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// `$XDG_CONFIG_HOME/p2p/config.toml`, else `$HOME/.config/p2p/config.toml`.
pub fn default_config_path(env: &impl Env) -> Option<PathBuf> {
    let base = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("p2p").join("config.toml"))
}

/// Reads the config file and layers everything: flag > environment > file > default.
pub fn resolve(cli: CommandLine, env: &impl Env) -> Result<PeerSettings, String> {
    let (config_file, file) = read_config_file(cli.config, env)?;
    let path = config_file.path.clone();
    let file_origin = || Origin::File(path.clone().unwrap_or_default());
    let file_dir = path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let home = env.var("HOME").map(PathBuf::from);
    let file_path = |p: Option<PathBuf>| p.map(|p| file_relative(&p, &file_dir, home.as_deref()));

    let name = pick(cli.name, "--name", "P2P_NAME", file.name, &file_origin);
    let tracker = pick(
        cli.tracker,
        "--tracker",
        "P2P_TRACKER",
        file.tracker,
        &file_origin,
    )
    .unwrap_or_else(|| default(DEFAULT_TRACKER.to_string()));
    let listen = pick(cli.listen, "--listen", "", file.listen, &file_origin)
        .unwrap_or_else(|| default(DEFAULT_LISTEN.to_string()));
    let shared = pick(
        cli.shared,
        "--shared",
        "P2P_SHARED",
        file_path(file.shared),
        &file_origin,
    )
    .unwrap_or_else(|| default(PathBuf::from(DEFAULT_SHARED)));
    let downloads = pick(
        cli.downloads,
        "--downloads",
        "P2P_DOWNLOADS",
        file_path(file.downloads),
        &file_origin,
    )
    .unwrap_or_else(|| default(PathBuf::from(DEFAULT_DOWNLOADS)));
    let retry_for = pick(
        cli.retry_for,
        "--retry-for",
        "",
        file.retry_for,
        &file_origin,
    )
    .unwrap_or_else(|| default(DEFAULT_RETRY_FOR));
    let resume_on_start = pick(
        cli.resume_on_start,
        "--resume-on-start",
        "P2P_RESUME_ON_START",
        file.resume_on_start,
        &file_origin,
    );
    let rates = [
        cli.max_down,
        cli.max_up,
        cli.max_down_per_peer,
        cli.max_up_per_peer,
    ];
    let in_file = [
        file.max_down,
        file.max_up,
        file.max_down_per_peer,
        file.max_up_per_peer,
    ];
    let (mut rate_limits, mut rate_origins) = resolve_rates(rates, in_file, &file_origin)?;
    if let Some(set) = pick(
        cli.exempt_loopback,
        "--exempt-loopback",
        "P2P_EXEMPT_LOOPBACK",
        file.exempt_loopback,
        &file_origin,
    ) {
        rate_limits.exempt_loopback = set.value;
        let text = if set.value { "yes" } else { "no" };
        rate_origins.push(("exempt_loopback", text.to_string(), set.origin));
    }
    let dht_bootstrap = pick(
        cli.dht_bootstrap,
        "--dht-bootstrap",
        "P2P_DHT_BOOTSTRAP",
        file.dht_bootstrap,
        &file_origin,
    )
    .filter(|b| !b.value.is_empty());
    let dht = pick(cli.dht, "--dht", "P2P_DHT", file.dht, &file_origin)
        .or_else(|| {
            // Naming nodes to join through is asking for the DHT.
            (dht_bootstrap.as_ref()).map(|b| Setting {
                value: true,
                origin: b.origin.clone(),
            })
        })
        .unwrap_or_else(|| default(false));
    Ok(PeerSettings {
        dht,
        dht_bootstrap,
        rate_limits,
        rate_origins,
        config_file,
        name,
        tracker,
        listen,
        shared,
        downloads,
        retry_for,
        resume_on_start,
    })
}

/// The config file named by `--config` or `$P2P_CONFIG`, or the default one. Only the
/// default may be missing (an empty file then).
fn read_config_file(
    config: Given<PathBuf>,
    env: &impl Env,
) -> Result<(ConfigSource, ConfigFile), String> {
    let (path, origin) = match config {
        Given::Flag(p) => (Some(p), Origin::Flag("--config")),
        Given::Env(p) => (Some(p), Origin::Env("P2P_CONFIG")),
        Given::Absent => (default_config_path(env), Origin::Default),
    };
    let explicit = origin != Origin::Default;
    let (file, found) = match &path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => (
                toml::from_str::<ConfigFile>(&text).map_err(|e| toml_error(p, &text, &e))?,
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (ConfigFile::default(), false)
            }
            Err(e) => return Err(format!("cannot read config file {}: {e}", p.display())),
        },
        None => (ConfigFile::default(), false),
    };
    Ok((
        ConfigSource {
            path,
            origin,
            found,
        },
        file,
    ))
}

/// Where a rate limit that is set came from: (config key, text as given, origin).
pub type RateOrigin = (&'static str, String, Origin);

/// The rate limits (down, up, down per peer, up per peer: from the flags or variables, and
/// from the config file), and where each one that is set came from.
fn resolve_rates(
    given: [Given<String>; 4],
    in_file: [Option<RateValue>; 4],
    file_origin: &impl Fn() -> Origin,
) -> Result<(crate::reactor::RateLimits, Vec<RateOrigin>), String> {
    const NAMES: [(&str, &str, &str); 4] = [
        ("max_down", "--max-down", "P2P_MAX_DOWN"),
        ("max_up", "--max-up", "P2P_MAX_UP"),
        ("max_down_per_peer", "--max-down-per-peer", ""),
        ("max_up_per_peer", "--max-up-per-peer", ""),
    ];
    let mut rate_limits = crate::reactor::RateLimits::default();
    let mut rate_origins = Vec::new();
    for (((key, flag, var), given), in_file) in NAMES.into_iter().zip(given).zip(in_file) {
        let Some(set) = pick(given, flag, var, in_file.map(RateValue::text), file_origin) else {
            continue;
        };
        let rate = crate::reactor::rate::parse_rate(&set.value)
            .map_err(|why| format!("{why} ({})", set.origin))?;
        match key {
            "max_down" => rate_limits.down = rate,
            "max_up" => rate_limits.up = rate,
            "max_down_per_peer" => rate_limits.down_per_peer = rate,
            _ => rate_limits.up_per_peer = rate,
        }
        rate_origins.push((key, crate::reactor::rate::format_rate(rate), set.origin));
    }
    Ok((rate_limits, rate_origins))
}

/// `config file PATH, line N: what is wrong` (toml's own text says "invalid float, expected
/// `inf`" with no hint of where).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let place = e
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| format!(", line {}", before.matches('\n').count() + 1))
        .unwrap_or_default();
    format!("config file {}{place}: {}", path.display(), e.message())
}

fn default<T>(value: T) -> Setting<T> {
    Setting {
        value,
        origin: Origin::Default,
    }
}

fn pick<T>(
    given: Given<T>,
    flag: &'static str,
    var: &'static str,
    file: Option<T>,
    file_origin: &impl Fn() -> Origin,
) -> Option<Setting<T>> {
    match given {
        Given::Flag(value) => Some(Setting {
            value,
            origin: Origin::Flag(flag),
        }),
        Given::Env(value) => Some(Setting {
            value,
            origin: Origin::Env(var),
        }),
        Given::Absent => file.map(|value| Setting {
            value,
            origin: file_origin(),
        }),
    }
}

/// A path written in the config file: `~/x` is in the home folder, a relative path is relative
/// to the file's folder.
fn file_relative(p: &Path, dir: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), home) {
        return home.join(rest);
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

#[derive(Serialize)]
struct JsonSetting {
    value: serde_json::Value,
    origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

impl PeerSettings {
    fn rows(
        &self,
    ) -> Vec<(
        &'static str,
        Option<String>,
        Option<&Origin>,
        serde_json::Value,
    )> {
        fn s(v: &Setting<String>) -> (Option<String>, Option<&Origin>) {
            (Some(v.value.clone()), Some(&v.origin))
        }
        fn p(v: &Setting<PathBuf>) -> (Option<String>, Option<&Origin>) {
            (Some(v.value.display().to_string()), Some(&v.origin))
        }
        let mut rows = Vec::new();
        let (name, name_origin) = match &self.name {
            Some(n) => s(n),
            None => (None, None),
        };
        let json = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, Into::into);
        rows.push(("name", name.clone(), name_origin, json(&name)));
        for (key, (value, origin)) in [
            ("tracker", s(&self.tracker)),
            ("listen", s(&self.listen)),
            ("shared", p(&self.shared)),
            ("downloads", p(&self.downloads)),
        ] {
            let j = json(&value);
            rows.push((key, value, origin, j));
        }
        rows.push((
            "retry_for",
            Some(self.retry_for.value.to_string()),
            Some(&self.retry_for.origin),
            self.retry_for.value.into(),
        ));
        rows.push(match &self.resume_on_start {
            Some(r) => (
                "resume_on_start",
                Some(r.value.to_string()),
                Some(&r.origin),
                r.value.into(),
            ),
            None => (
                "resume_on_start",
                Some("on in the REPL and --serve, off in --batch".to_string()),
                None,
                serde_json::Value::Null,
            ),
        });
        rows.push((
            "dht",
            Some(self.dht.value.to_string()),
            Some(&self.dht.origin),
            self.dht.value.into(),
        ));
        if let Some(b) = &self.dht_bootstrap {
            let json = b.value.iter().map(|a| a.clone().into()).collect();
            rows.push((
                "dht_bootstrap",
                Some(b.value.join(", ")),
                Some(&b.origin),
                serde_json::Value::Array(json),
            ));
        }
        // Rate limits appear only when set somewhere (unlimited otherwise).
        for (key, text, origin) in &self.rate_origins {
            rows.push((key, Some(text.clone()), Some(origin), text.clone().into()));
        }
        rows
    }

    /// The `--print-config` text: one `key  value  (origin)` line per setting.
    pub fn describe(&self) -> String {
        let cfg = &self.config_file;
        let state = if cfg.found { "found" } else { "not found" };
        let path = cfg
            .path
            .as_ref()
            .map_or("(none: no XDG_CONFIG_HOME or HOME)".to_string(), |p| {
                p.display().to_string()
            });
        let mut rows = vec![(
            "config",
            path,
            format!("  ({} path; {state})", cfg.origin.kind()),
        )];
        for (key, value, origin, _) in self.rows() {
            let value = value.unwrap_or_else(|| "(not set; required to run)".into());
            let origin = origin.map_or(String::new(), |o| format!("  ({o})"));
            rows.push((key, value, origin));
        }
        let width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value, origin) in rows {
            out.push_str(&format!("{key:<10} {value:<width$}{origin}\n"));
        }
        out
    }

    /// The `--print-config --json` object.
    pub fn to_json(&self) -> String {
        let mut values = serde_json::Map::new();
        for (key, _, origin, value) in self.rows() {
            let (origin, from) = origin.map_or(("unset", None), |o| (o.kind(), o.from()));
            let row = JsonSetting {
                value,
                origin,
                from,
            };
            values.insert(
                key.to_string(),
                serde_json::to_value(row).unwrap_or_default(),
            );
        }
        let cfg = &self.config_file;
        serde_json::json!({
            "type": "config",
            "config_file": {
                "path": cfg.path.as_ref().map(|p| p.display().to_string()),
                "origin": cfg.origin.kind(),
                "found": cfg.found,
            },
            "values": values,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, String>);

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("p2p").join("config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(
            &cfg,
            "name = \"FromFile\"\ntracker = \"10.0.0.1:1\"\nshared = \"s\"\ndownloads = \"/abs/dl\"\n",
        )
        .unwrap();
        let xdg = dir.path().to_str().unwrap();
        let e = env(&[("XDG_CONFIG_HOME", xdg)]);
        let cli = CommandLine {
            name: Given::Flag("FromFlag".into()),
            tracker: Given::Env("10.0.0.2:2".into()),
            ..CommandLine::default()
        };
        let s = resolve(cli, &e).unwrap();
        assert!(s.config_file.found);
        assert_eq!(s.config_file.path.as_deref(), Some(cfg.as_path()));
        let name = s.name.clone().unwrap();
        assert_eq!(name.value, "FromFlag");
        assert_eq!(name.origin, Origin::Flag("--name"));
        assert_eq!(s.tracker.value, "10.0.0.2:2");
        assert_eq!(s.tracker.origin, Origin::Env("P2P_TRACKER"));
        assert_eq!(s.shared.value, cfg.parent().unwrap().join("s"));
        assert_eq!(s.shared.origin, Origin::File(cfg.clone()));
        assert_eq!(s.downloads.value, PathBuf::from("/abs/dl"));
        assert_eq!(s.listen.value, DEFAULT_LISTEN);
        assert_eq!(s.listen.origin, Origin::Default);
        assert_eq!(s.retry_for.value, DEFAULT_RETRY_FOR);
        let text = s.describe();
        assert!(text.contains("name       FromFlag "), "{text}");
        assert!(text.contains("(flag --name)"), "{text}");
        assert!(text.contains("(env P2P_TRACKER)"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["values"]["shared"]["origin"], "file");
        assert_eq!(v["values"]["listen"]["origin"], "default");
    }

    /// Loopback is limited unless exempted: by the config file, overridden by the flag; the
    /// limits carry it and `--print-config` says where it came from.
    #[test]
    fn exempt_loopback_comes_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("p2p").join("config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        let e = env(&[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())]);
        let s = resolve(CommandLine::default(), &e).unwrap();
        assert!(!s.rate_limits.exempt_loopback, "limited by default");
        std::fs::write(&cfg, "max_down = \"1MB/s\"\nexempt_loopback = true\n").unwrap();
        let s = resolve(CommandLine::default(), &e).unwrap();
        assert!(s.rate_limits.exempt_loopback);
        assert_eq!(s.rate_limits.down, Some(1_000_000));
        assert!(s.describe().contains("exempt_loopback"), "{}", s.describe());
        let cli = CommandLine {
            exempt_loopback: Given::Flag(false),
            ..CommandLine::default()
        };
        assert!(!resolve(cli, &e).unwrap().rate_limits.exempt_loopback);
    }

    #[test]
    fn missing_default_file_is_fine_but_missing_named_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", dir.path().to_str().unwrap())]);
        let s = resolve(CommandLine::default(), &e).unwrap();
        assert!(!s.config_file.found);
        assert_eq!(
            s.config_file.path,
            Some(dir.path().join(".config/p2p/config.toml"))
        );
        assert!(s.name.is_none());
        assert!(s.describe().contains("(not set; required to run)"));
        let cli = CommandLine {
            config: Given::Flag(dir.path().join("nope.toml")),
            ..CommandLine::default()
        };
        assert!(resolve(cli, &e).unwrap_err().contains("nope.toml"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "nmae = \"typo\"\n").unwrap();
        let cli = CommandLine {
            config: Given::Flag(path.clone()),
            ..CommandLine::default()
        };
        let err = resolve(cli.clone(), &env(&[])).unwrap_err();
        assert!(err.contains("nmae"), "{err}");
        std::fs::write(&path, "retry_for = \"soon\"\n").unwrap();
        assert!(resolve(cli, &env(&[])).is_err());
    }

    #[test]
    fn a_bad_value_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "name = \"Alice\"\n\nretry_for = in\n").unwrap();
        let cli = CommandLine {
            config: Given::Flag(path.clone()),
            ..CommandLine::default()
        };
        let err = resolve(cli, &env(&[])).unwrap_err();
        let want = format!("config file {}, line 3: ", path.display());
        assert!(err.starts_with(&want), "{err}");
    }

    #[test]
    fn home_is_expanded_in_file_paths() {
        let got = file_relative(
            Path::new("~/Public"),
            Path::new("/etc/p2p"),
            Some(Path::new("/home/a")),
        );
        assert_eq!(got, PathBuf::from("/home/a/Public"));
        let got = file_relative(Path::new("x"), Path::new("/etc/p2p"), None);
        assert_eq!(got, PathBuf::from("/etc/p2p/x"));
    }
}
