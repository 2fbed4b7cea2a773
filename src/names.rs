//! Name rules shared by the tracker, the peer and the downloader: peer names, file names that
//! come from the network, and making remote text safe to print.
//!
//! A remote file name is a display hint, never a path. We check it once, at the boundary, and
//! *refuse* anything that is not one plain path component; we never repair a name (a repaired
//! name is a name the sender did not choose, and repairs are where traversal bugs hide).

/// Longest peer name, in bytes.
pub const MAX_PEER_NAME_LEN: usize = 32;

/// Longest file name, in bytes (`NAME_MAX` on Linux and most Unix file systems).
///
/// Note: [`partial_name`] adds 10 bytes, so the partial file of a name longer than 245 bytes
/// cannot be created on a file system with a 255-byte limit; the downloader reports that as an
/// ordinary I/O error (`ENAMETOOLONG`) rather than this check refusing names we can share.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Suffix of in-progress download files. No accepted file name ends with it (in any ASCII
/// case), so a remote name can never collide with one of our own partial files.
pub const PARTIAL_SUFFIX: &str = ".p2p-part";

/// The peer's own state folder inside downloads/ (`crate::peer::state_dir`): hash cache and
/// resume records. No accepted file name equals it (in any ASCII case), so a remote name can
/// never collide with it.
pub const STATE_DIR_NAME: &str = ".p2p";

/// Characters that reorder or hide text on display (bidirectional embeddings, overrides,
/// isolates and marks). They make `evil\u{202E}txt.exe` look like `evilexe.txt`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that look like a path separator without being one on Unix. Harmless to the
/// kernel, but they make a name read like a path to the user (or to another OS / a zip tool).
pub fn is_slash_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{2215}' // DIVISION SLASH
            | '\u{2216}' // SET MINUS
            | '\u{2044}' // FRACTION SLASH
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
    )
}

/// The name in `known` that `typed` was most likely meant to be, for "did you mean": the same
/// name in another case, or one at most two edits away (one for short names). `None` when
/// nothing is close, or `typed` itself is known.
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = typed.to_lowercase();
    let limit = if typed.chars().count() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &str)> = None;
    for name in known {
        if name == typed {
            return None;
        }
        let d = if name.to_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &name.to_lowercase())
        };
        if d <= limit && best.is_none_or(|(bd, bn)| (d, name) < (bd, bn)) {
            best = Some((d, name));
        }
    }
    best.map(|(_, name)| name)
}

/// Levenshtein distance over chars (names are at most 32 bytes: the table is tiny).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A peer name: 1..=32 bytes, no whitespace, no control characters, no '"' (and no bidi
/// controls, so a name cannot disguise itself as another). `Err` holds text for the user.
pub fn check_peer_name(name: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "'{}' is not a valid peer name ({why})",
            shown(name)
        ))
    };
    if name.is_empty() {
        return Err("the peer name is empty".to_string());
    }
    if name.len() > MAX_PEER_NAME_LEN {
        return refuse(&format!(
            "{} bytes, at most {MAX_PEER_NAME_LEN} allowed",
            name.len()
        ));
    }
    for c in name.chars() {
        if c.is_whitespace() {
            return refuse("contains whitespace");
        }
        if c.is_control() {
            return refuse(&format!(
                "contains the control character {}",
                escape_char(c)
            ));
        }
        if c == '"' {
            return refuse("contains '\"'");
        }
        if is_bidi_control(c) {
            return refuse(&format!("contains the bidi control {}", escape_char(c)));
        }
    }
    Ok(())
}

/// A file name from the network or the user that we will create inside `downloads/`: exactly
/// one plain path component. Refused (never repaired): empty, ".", "..", any '/' or '\\', any
/// control character (NUL, newline, CR, ESC, DEL, C1), more than 255 bytes, a leading or
/// trailing whitespace, a trailing dot, any ':' (Windows drive and stream forms such as
/// "C:x"), slash look-alikes (fullwidth solidus U+FF0F and reverse solidus U+FF3C, division
/// slash...), bidi controls (U+202A..U+202E, U+2066..U+2069, LRM/RLM/ALM), and any name ending
/// in our reserved suffix ".p2p-part" (ASCII case-insensitive; this covers the partial file
/// names ".x.p2p-part" we create ourselves), and ".p2p", the name of our own state folder
/// (ASCII case-insensitive).
///
/// Dot files (".hidden") are accepted as plain names; the shared-folder scan skips them on its
/// own, so we never offer them, but a user may still download to such a name.
/// Windows device names (`CON`, `NUL.txt`) are accepted: this tool runs on Unix, where they are
/// ordinary names.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!(
            "'{}' is not a plain file name ({why})",
            shown(name)
        ))
    };
    if name.is_empty() {
        return Err("'' is not a plain file name (it is empty)".to_string());
    }
    if name == "." || name == ".." {
        return refuse(format!("'{name}' names a directory"));
    }
    if name.len() > MAX_FILE_NAME_LEN {
        return refuse(format!(
            "{} bytes long, at most {MAX_FILE_NAME_LEN} allowed",
            name.len()
        ));
    }
    for c in name.chars() {
        let why = match c {
            '/' => "contains '/'".to_string(),
            '\\' => "contains '\\'".to_string(),
            ':' => "contains ':'".to_string(),
            c if c.is_control() => format!("contains the control character {}", escape_char(c)),
            c if is_bidi_control(c) => format!("contains the bidi control {}", escape_char(c)),
            c if is_slash_lookalike(c) => {
                format!("contains {}, which looks like a slash", escape_char(c))
            }
            _ => continue,
        };
        return refuse(why);
    }
    if name.starts_with(char::is_whitespace) {
        return refuse("starts with a space".to_string());
    }
    if name.ends_with(char::is_whitespace) {
        return refuse("ends with a space".to_string());
    }
    if name.ends_with('.') {
        return refuse("ends with a dot".to_string());
    }
    if has_partial_suffix(name) {
        return refuse(format!("ends with the reserved suffix '{PARTIAL_SUFFIX}'"));
    }
    if name.eq_ignore_ascii_case(STATE_DIR_NAME) {
        return refuse(format!(
            "'{STATE_DIR_NAME}' is reserved for this peer's own state"
        ));
    }
    Ok(())
}

/// True if `name` ends with [`PARTIAL_SUFFIX`], ignoring ASCII case.
pub fn has_partial_suffix(name: &str) -> bool {
    let (n, s) = (name.as_bytes(), PARTIAL_SUFFIX.as_bytes());
    n.len() >= s.len() && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
}

/// The name of the in-progress download file for `name`: `.{name}.p2p-part`.
pub fn partial_name(name: &str) -> String {
    format!(".{name}{PARTIAL_SUFFIX}")
}

/// Text from the network made safe to print on a terminal. Every control character (C0 including
/// newline and tab, DEL, C1) and every bidi control is escaped — `\x1b`, `\x0a`, `\u{9b}`,
/// `\u{202e}` — so a chat message or a remote file name can neither move the cursor, recolour
/// the screen, add fake lines, nor reorder what is displayed. Everything else is unchanged.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&escape_char(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `\xHH` for ASCII controls, `\u{hhhh}` for the others.
pub fn escape_char(c: char) -> String {
    if c.is_ascii() {
        format!("\\x{:02x}", c as u32)
    } else {
        format!("\\u{{{:x}}}", c as u32)
    }
}

/// A name as quoted in an error: printable, and cut to a readable length.
pub fn shown(name: &str) -> String {
    const MAX_SHOWN_CHARS: usize = 64;
    if name.chars().count() <= MAX_SHOWN_CHARS {
        printable(name)
    } else {
        let head: String = name.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{}…", printable(&head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn refused(name: &str, reason_part: &str) {
        match check_file_name(name) {
            Ok(()) => panic!("{name:?} was accepted"),
            Err(e) => {
                assert!(
                    e.contains(reason_part),
                    "{name:?}: error {e:?} lacks {reason_part:?}"
                );
                assert!(
                    !e.chars().any(|c| c.is_control()),
                    "error text is not printable: {e:?}"
                );
            }
        }
    }

    #[test]
    fn hostile_file_names_are_refused() {
        refused("../x", "contains '/'");
        refused("/etc/passwd", "contains '/'");
        refused("a/../../b", "contains '/'");
        refused("a/", "contains '/'");
        refused("a\\b", "contains '\\'");
        refused("C:\\x", "contains ':'");
        refused("C:x", "contains ':'");
        refused("file.txt:stream", "contains ':'");
        refused("\\\\srv\\share", "contains '\\'");
        refused("..\\..\\x", "contains '\\'");
        refused("a\0b", "\\x00");
        refused("a\nb", "\\x0a");
        refused("a\rb", "\\x0d");
        refused("a\tb", "\\x09");
        refused("\x1b[31mred", "\\x1b");
        refused("del\x7f", "\\x7f");
        refused("csi\u{9b}31m", "\\u{9b}");
        refused(&"a".repeat(300), "300 bytes");
        refused(&"é".repeat(128), "256 bytes");
        refused(".", "names a directory");
        refused("..", "names a directory");
        refused("name.", "ends with a dot");
        refused("name...", "ends with a dot");
        refused("name ", "ends with a space");
        refused(" name", "starts with a space");
        refused("name\u{a0}", "ends with a space");
        refused("evil\u{202E}txt.exe", "\\u{202e}");
        refused("a\u{2066}b", "\\u{2066}");
        refused("a\u{FF0F}b", "\\u{ff0f}");
        refused("a\u{FF3C}b", "\\u{ff3c}");
        refused("a\u{2215}b", "looks like a slash");
        refused("", "empty");
        refused("x.p2p-part", "reserved suffix");
        refused(".x.p2p-part", "reserved suffix");
        refused(".report.pdf.P2P-PART", "reserved suffix");
        refused(&partial_name("report.pdf"), "reserved suffix");
        refused(".p2p", "reserved for this peer's own state");
        refused(".P2P", "reserved for this peer's own state");
    }

    #[test]
    fn the_reserved_state_name_is_the_state_folder() {
        let d = std::path::Path::new("downloads");
        assert_eq!(crate::peer::state_dir(d), d.join(STATE_DIR_NAME));
    }

    #[test]
    fn plain_file_names_are_accepted() {
        for name in [
            "report.pdf",
            "my notes.txt",
            "ünïcödé.txt",
            "a.b.c",
            ".hidden",
            "..foo",
            "a..b",
            "CON",
            "NUL.txt",
            "p2p-part",
            "x.p2p-partial",
            "日本語のファイル.txt",
            "emoji 🎉.png",
        ] {
            assert_eq!(check_file_name(name), Ok(()), "{name:?}");
        }
        assert_eq!(check_file_name(&"a".repeat(255)), Ok(()));
        assert!(check_file_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn long_names_are_shortened_in_errors() {
        let e = check_file_name(&format!("{}/", "a".repeat(300))).unwrap_err();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains('…'));
    }

    #[test]
    fn error_text_matches_the_documented_form() {
        assert_eq!(
            check_file_name("../x").unwrap_err(),
            "'../x' is not a plain file name (contains '/')"
        );
    }

    #[test]
    fn peer_names() {
        for ok in ["alice", "Bob_2", "ünï", "a", &"x".repeat(32), "a.b-c"] {
            assert_eq!(check_peer_name(ok), Ok(()), "{ok:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            (&"x".repeat(33) as &str, "33 bytes"),
            ("al ice", "whitespace"),
            ("alice\n", "whitespace"),
            ("a\u{3000}b", "whitespace"),
            ("a\x1bb", "\\x1b"),
            ("a\0", "\\x00"),
            ("a\u{7f}", "\\x7f"),
            ("a\"b", "'\"'"),
            ("adm\u{202E}nim", "bidi"),
        ] {
            let e = check_peer_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e:?}");
            assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        }
        // 32 bytes but fewer characters is fine; 33 bytes in 17 characters is not.
        assert_eq!(check_peer_name(&"é".repeat(16)), Ok(()));
        assert!(check_peer_name(&format!("{}a", "é".repeat(16))).is_err());
    }

    #[test]
    fn partial_names() {
        assert_eq!(partial_name("report.pdf"), ".report.pdf.p2p-part");
        assert!(has_partial_suffix(&partial_name("x")));
    }

    #[test]
    fn printable_escapes_every_control() {
        assert_eq!(printable("hello ünï 🎉"), "hello ünï 🎉");
        assert_eq!(printable("\x1b[2J\x1b[Hgotcha"), "\\x1b[2J\\x1b[Hgotcha");
        assert_eq!(printable("line1\nline2\r"), "line1\\x0aline2\\x0d");
        assert_eq!(printable("a\0b\x07\x7f"), "a\\x00b\\x07\\x7f");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("evil\u{202E}fdp.exe"), "evil\\u{202e}fdp.exe");
        let out = printable(&(0u8..=0x7f).map(char::from).collect::<String>());
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
    }

    #[test]
    fn closest_finds_case_and_typo_slips_only() {
        let known = ["Alice", "Bob", "Carol"];
        assert_eq!(closest("alice", known), Some("Alice"));
        assert_eq!(closest("Alcie", known), Some("Alice"));
        assert_eq!(closest("bob", known), Some("Bob"));
        assert_eq!(closest("Bo", known), Some("Bob"));
        assert_eq!(closest("Dave", known), None);
        assert_eq!(closest("Alice", known), None);
        assert_eq!(closest("x", []), None);
    }
}
