//! Parsing one line of user input (REPL or batch) into a [`Command`]. The last argument of
//! `get` and `msg` is the rest of the line, so names and texts with spaces need no quotes;
//! one pair of double quotes around it is accepted and removed.

use crate::peer::command::{Command, LimitKind};

/// Name, usage and one-line description of every command, for `help` and usage errors.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "peers",
        "peers",
        "list known peers: name, address, last seen, source, reachable",
    ),
    (
        "files",
        "files PEER",
        "list what PEER shares: name, size, content id (cid1:...), SHA-256",
    ),
    (
        "get",
        "get [PEER] FILE",
        "download FILE (a name, cid1:ID or a SHA-256 prefix) from PEER, or from every peer that has it",
    ),
    (
        "search",
        "search TEXT",
        "ask every known peer for files whose name contains TEXT (or whose id starts with it)",
    ),
    ("msg", "msg PEER TEXT", "send a text message to PEER"),
    (
        "trust",
        "trust [NAME ID]",
        "list the names pinned to peer keys, or pin NAME to the peer id ID (a peer with a new key)",
    ),
    (
        "forget",
        "forget NAME",
        "unpin NAME: the next key seen with it is pinned",
    ),
    (
        "downloads",
        "downloads",
        "unfinished downloads: percent done, source, state",
    ),
    (
        "resume",
        "resume [FILE]",
        "continue one unfinished download, or all of them",
    ),
    (
        "cancel",
        "cancel FILE",
        "drop an unfinished download and its partial file",
    ),
    ("shared", "shared", "list the files this peer shares"),
    (
        "rescan",
        "rescan",
        "pick up new or changed files in the shared folder",
    ),
    (
        "wait-peer",
        "wait-peer NAME SECONDS",
        "wait until NAME is known (fails after SECONDS)",
    ),
    (
        "connect",
        "connect ADDR",
        "connect to the peer at ADDR (host:port), no tracker needed",
    ),
    (
        "limit",
        "limit [down|up|down-per-peer|up-per-peer RATE]",
        "show the rate limits, or set one (RATE: 20MB/s, 20MiB/s, 500k, off)",
    ),
    ("sleep", "sleep SECONDS", "pause (for scripts)"),
    (
        "help",
        "help [COMMAND]",
        "show this list, or what COMMAND does",
    ),
    ("quit", "quit", "leave (Ctrl-D too)"),
];

pub fn usage_of(name: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, usage, _)| usage)
}

/// `help COMMAND`: its usage and what it does; an unknown name is an error listing the
/// commands.
pub fn help_for(name: &str) -> Result<String, String> {
    match COMMANDS.iter().find(|(n, _, _)| *n == name) {
        Some((_, usage, what)) => Ok(format!("usage: {usage}\n  {what}")),
        None => {
            let names: Vec<&str> = COMMANDS.iter().map(|(n, _, _)| *n).collect();
            Err(format!(
                "no command '{}'; the commands are: {}",
                crate::names::printable(name),
                names.join(", ")
            ))
        }
    }
}

pub fn help_text() -> String {
    let mut out = String::from("commands:");
    for (_, usage, what) in COMMANDS {
        out.push_str(&format!("\n  {usage:<24} {what}"));
    }
    out
}

/// `Ok(None)` for a blank line or a `#` comment.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (name, rest) = split_word(line);
    let usage = || format!("usage: {}", usage_of(name));
    let no_args = |cmd: Command| rest.is_empty().then_some(cmd);
    let word = |rest: &str| {
        let (word, extra) = split_word(rest);
        (!word.is_empty() && extra.is_empty()).then(|| word.to_string())
    };
    let text = |rest: &str| {
        Some(unquote(rest))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let cmd = match name {
        "peers" => no_args(Command::Peers),
        "shared" => no_args(Command::Shared),
        "rescan" => no_args(Command::Rescan),
        "quit" | "exit" => no_args(Command::Quit),
        "downloads" => no_args(Command::Downloads),
        "help" | "?" => return parse_help(rest, usage).map(Some),
        "limit" => return parse_limit(rest, usage).map(Some),
        "resume" => Some(Command::Resume { file: text(rest) }),
        "cancel" => text(rest).map(|file| Command::Cancel { file }),
        "files" => word(rest).map(|peer| Command::Files { peer }),
        "connect" => word(rest).map(|addr| Command::Connect { addr }),
        "search" => text(rest).map(|text| Command::Search { text }),
        "get" => parse_get(rest),
        "msg" => {
            let (peer, tail) = split_word(rest);
            match (peer.is_empty(), text(tail)) {
                (false, Some(text)) => Some(Command::Msg {
                    peer: peer.into(),
                    text,
                }),
                _ => None,
            }
        }
        "wait-peer" => {
            let (peer, secs) = split_word(rest);
            match (peer.is_empty(), parse_seconds(secs)) {
                (false, Some(seconds)) => Some(Command::WaitPeer {
                    name: peer.into(),
                    seconds,
                }),
                _ => None,
            }
        }
        "sleep" => parse_seconds(rest).map(|seconds| Command::Sleep { seconds }),
        "forget" => word(rest).map(|name| Command::Forget { name }),
        "trust" => return parse_trust(rest, usage).map(Some),
        _ => {
            return Err(format!(
                "unknown command '{}' (type help for the list)",
                crate::names::printable(name)
            ));
        }
    };
    cmd.map(Some).ok_or_else(usage)
}

/// `help [COMMAND]`: the command must exist (the node words the answer from the topic).
fn parse_help(rest: &str, usage: impl Fn() -> String) -> Result<Command, String> {
    let (topic, extra) = split_word(rest);
    if !extra.is_empty() {
        return Err(usage());
    }
    if topic.is_empty() {
        return Ok(Command::Help { topic: None });
    }
    help_for(topic)?;
    Ok(Command::Help {
        topic: Some(topic.to_string()),
    })
}

/// `trust` or `trust NAME ID` (the id's 56 letters may be written with or without dashes,
/// in one word or in its eight groups).
fn parse_trust(rest: &str, usage: impl Fn() -> String) -> Result<Command, String> {
    let (name, id) = split_word(rest);
    if name.is_empty() {
        return Ok(Command::Trust { set: None });
    }
    if id.trim().is_empty() {
        return Err(usage());
    }
    let id: crate::identity::PeerId = id.trim().parse().map_err(|e| {
        format!(
            "'{}' is no peer id: {e}",
            crate::names::printable(id.trim())
        )
    })?;
    Ok(Command::Trust {
        set: Some((name.to_string(), id)),
    })
}

/// `get [PEER] FILE`; `None` when nothing is named.
fn parse_get(rest: &str) -> Option<Command> {
    let (first, tail) = split_word(rest);
    let tail = unquote(tail);
    let query = unquote(rest).to_string();
    match (unquote(first).is_empty(), tail.is_empty()) {
        (true, _) => None,
        (false, true) => Some(Command::Get {
            peer: None,
            file: unquote(first).into(),
            query,
        }),
        (false, false) => Some(Command::Get {
            peer: Some(first.into()),
            file: tail.into(),
            query,
        }),
    }
}

/// `limit` shows the limits; `limit WHICH RATE` sets one.
fn parse_limit(rest: &str, usage: impl Fn() -> String) -> Result<Command, String> {
    let (which, rate) = split_word(rest);
    if which.is_empty() {
        return Ok(Command::Limit { set: None });
    }
    let kind = match which {
        "down" => LimitKind::Down,
        "up" => LimitKind::Up,
        "down-per-peer" => LimitKind::DownPerPeer,
        "up-per-peer" => LimitKind::UpPerPeer,
        _ => return Err(usage()),
    };
    if rate.is_empty() {
        return Err(usage());
    }
    let rate = crate::reactor::rate::parse_rate(rate)?;
    Ok(Command::Limit {
        set: Some((kind, rate)),
    })
}

/// The whole argument of a `get` line (a command's `query`), for `get FILE` whose first word
/// turned out to be no peer's name.
pub fn get_query(line: &str) -> Option<String> {
    let (name, rest) = split_word(line.trim());
    let rest = unquote(rest);
    (name == "get" && !rest.is_empty()).then(|| rest.to_string())
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// A non-negative, finite number of seconds, at most a day.
fn parse_seconds(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && (0.0..=86_400.0).contains(&v)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(peer: &str, file: &str, query: &str) -> Option<Command> {
        Some(Command::Get {
            peer: Some(peer.into()),
            file: file.into(),
            query: query.into(),
        })
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("# get Alice x"), Ok(None));
    }

    #[test]
    fn last_argument_is_the_rest_of_the_line() {
        assert_eq!(
            parse("get Alice my notes.txt"),
            Ok(get("Alice", "my notes.txt", "Alice my notes.txt"))
        );
        assert_eq!(
            parse("get  Alice   my  notes.txt  "),
            Ok(get("Alice", "my  notes.txt", "Alice   my  notes.txt"))
        );
        assert_eq!(
            parse("get Alice \"my notes.txt\""),
            Ok(get("Alice", "my notes.txt", "Alice \"my notes.txt\""))
        );
        assert_eq!(
            parse("msg Alice hello there"),
            Ok(Some(Command::Msg {
                peer: "Alice".into(),
                text: "hello there".into()
            }))
        );
    }

    #[test]
    fn wrong_arguments_give_usage() {
        assert_eq!(
            parse("get Alice"),
            Ok(Some(Command::Get {
                peer: None,
                file: "Alice".into(),
                query: "Alice".into()
            }))
        );
        assert_eq!(parse("get"), Err("usage: get [PEER] FILE".into()));
        assert_eq!(parse("get \"\""), Err("usage: get [PEER] FILE".into()));
        assert_eq!(parse("search"), Err("usage: search TEXT".into()));
        assert_eq!(
            get_query("get  my  notes.txt "),
            Some("my  notes.txt".into())
        );
        assert_eq!(get_query("get \"a b\""), Some("a b".into()));
        assert_eq!(parse("files"), Err("usage: files PEER".into()));
        assert_eq!(parse("files a b"), Err("usage: files PEER".into()));
        assert_eq!(parse("peers now"), Err("usage: peers".into()));
        assert_eq!(parse("sleep x"), Err("usage: sleep SECONDS".into()));
        assert_eq!(parse("sleep -1"), Err("usage: sleep SECONDS".into()));
        assert_eq!(parse("sleep NaN"), Err("usage: sleep SECONDS".into()));
        assert_eq!(
            parse("wait-peer Bob"),
            Err("usage: wait-peer NAME SECONDS".into())
        );
    }

    #[test]
    fn numbers_parse() {
        assert_eq!(
            parse("sleep 0.5"),
            Ok(Some(Command::Sleep { seconds: 0.5 }))
        );
        assert_eq!(
            parse("wait-peer Bob 10"),
            Ok(Some(Command::WaitPeer {
                name: "Bob".into(),
                seconds: 10.0
            }))
        );
    }

    #[test]
    fn unknown_command_is_an_error_with_escaped_text() {
        let err = parse("frobnicate now").unwrap_err();
        assert!(err.contains("unknown command 'frobnicate'"), "{err}");
        let err = parse("\u{1b}[2J").unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }

    #[test]
    fn connect_takes_one_address() {
        assert_eq!(
            parse("connect 10.0.0.5:4000"),
            Ok(Some(Command::Connect {
                addr: "10.0.0.5:4000".into()
            }))
        );
        assert_eq!(parse("connect"), Err("usage: connect ADDR".into()));
        assert_eq!(parse("connect a b"), Err("usage: connect ADDR".into()));
    }

    #[test]
    fn limit_shows_or_sets_one_rate() {
        assert_eq!(parse("limit"), Ok(Some(Command::Limit { set: None })));
        assert_eq!(
            parse("limit down 5MB/s"),
            Ok(Some(Command::Limit {
                set: Some((LimitKind::Down, Some(5_000_000)))
            }))
        );
        assert_eq!(
            parse("limit up-per-peer off"),
            Ok(Some(Command::Limit {
                set: Some((LimitKind::UpPerPeer, None))
            }))
        );
        assert!(parse("limit sideways 5M").is_err());
        assert!(parse("limit down").is_err());
        assert!(parse("limit down fast").is_err());
    }

    #[test]
    fn help_takes_a_command_name() {
        assert_eq!(parse("help"), Ok(Some(Command::Help { topic: None })));
        assert_eq!(
            parse("help get"),
            Ok(Some(Command::Help {
                topic: Some("get".into())
            }))
        );
        assert_eq!(parse("help a b"), Err("usage: help [COMMAND]".into()));
        assert_eq!(parse("help frob"), Err(help_for("frob").unwrap_err()));
        let get = help_for("get").unwrap();
        assert!(get.starts_with("usage: get [PEER] FILE\n"), "{get}");
        let err = help_for("frob").unwrap_err();
        assert!(
            err.contains("no command 'frob'") && err.contains("wait-peer"),
            "{err}"
        );
    }

    #[test]
    fn every_listed_command_has_usage() {
        for (name, usage, _) in COMMANDS {
            assert!(usage.starts_with(name));
        }
        assert!(help_text().contains("wait-peer NAME SECONDS"));
    }
}
