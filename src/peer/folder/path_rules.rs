//! The rules an entry path of a shared folder obeys (PROTOCOL.md §10.3). Pure: no I/O.
//!
//! An entry path comes from the network and will name a file we create beneath `downloads/`,
//! so it is the one place where a remote text becomes a path: croc (GHSA-ppjh-xp5v-46wc),
//! Syncthing (CVE-2017-1000420) and LocalSend (CVE-2025-27142) all wrote outside the target
//! because a name was joined before it was checked. Here a path is checked once, component by
//! component, and *refused* (never repaired) when any component is not one plain name; an
//! [`EntryPath`] exists only after that check, and the whole listing is checked again for
//! entries that would land on one file on a case-insensitive or normalizing file system
//! ([`check_listing`]).
//!
//! The form: components joined by `/`, no leading or trailing `/`, each component a plain
//! file name under the rules of [`crate::names::check_file_name`] (no `..`, `.`, `\`, `:`,
//! control or bidi characters, slash look-alikes, trailing dot or space, our reserved names),
//! plus: no Windows device name (`CON`, `nul.txt`, `COM1`...: the tree must be writable
//! wherever it is copied next), and every component in Unicode NFC (the sender normalizes, so
//! the same tree from macOS and Linux has one id).
//!
//! Limits are checked before anything is allocated: the whole path's length first, then the
//! depth while splitting (a path of 1,000 components is refused at the 33rd).

use crate::names::{
    MAX_FILE_NAME_LEN, PARTIAL_SUFFIX, STATE_DIR_NAME, escape_char, has_partial_suffix,
    is_bidi_control, is_slash_lookalike, shown,
};
use std::collections::HashMap;
use std::fmt;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Most components in one entry path (`a/b/c` has 3). Deep enough for real trees (a photo
/// library, a source tree), small enough that a hostile listing costs nothing.
pub const MAX_DEPTH: usize = 32;

/// Longest entry path in bytes (Linux's `PATH_MAX`, so the joined path can be opened).
pub const MAX_PATH_LEN: usize = 4096;

/// Most entries (files and empty folders) in one shared folder. A receiver refuses a listing
/// that declares more before it allocates anything for it.
pub const MAX_ENTRIES: u64 = 65_536;

/// Which rule an entry path breaks: the user reads it, the tests match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The path is longer than [`MAX_PATH_LEN`] bytes (how long it is).
    TooLong(usize),
    /// It starts with `/`.
    Absolute,
    /// The whole path is empty.
    EmptyPath,
    /// A component is empty (`a//b`, a trailing `/`).
    EmptyComponent,
    /// A component is `.`.
    Dot,
    /// A component is `..`.
    DotDot,
    /// More than [`MAX_DEPTH`] components.
    TooDeep,
    /// A component is longer than 255 bytes (how long it is).
    ComponentTooLong(usize),
    /// A component contains `\` (a separator on Windows: `..\..\x`, `\\srv\share`).
    Backslash,
    /// A component contains `:` (drive letters `C:`, NTFS streams `a:b`).
    Colon,
    /// A component contains this control character (NUL, ESC, CR, DEL, C1...).
    Control(char),
    /// A component contains this bidi control (U+202E makes `txt.exe` read `exe.txt`).
    Bidi(char),
    /// A component contains this character, which looks like a slash (fullwidth solidus...).
    SlashLookalike(char),
    /// A component starts with a space.
    LeadingSpace,
    /// A component ends with a space (Windows drops it: two names become one).
    TrailingSpace,
    /// A component ends with a dot (Windows drops it too).
    TrailingDot,
    /// A component is a Windows device name, with or without an extension.
    WindowsReserved,
    /// A component ends with our partial-file suffix `.p2p-part`.
    ReservedSuffix,
    /// A component is `.p2p`, our state folder.
    StateDir,
    /// A component is not in Unicode NFC.
    NotNfc,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::TooLong(n) => write!(f, "{n} bytes long, at most {MAX_PATH_LEN} allowed"),
            Rule::Absolute => f.write_str("it is absolute (starts with '/')"),
            Rule::EmptyPath => f.write_str("it is empty"),
            Rule::EmptyComponent => f.write_str("a component is empty ('//' or a trailing '/')"),
            Rule::Dot => f.write_str("a component is '.'"),
            Rule::DotDot => f.write_str("a component is '..'"),
            Rule::TooDeep => write!(f, "more than {MAX_DEPTH} folders deep"),
            Rule::ComponentTooLong(n) => write!(
                f,
                "a component is {n} bytes long, at most {MAX_FILE_NAME_LEN} allowed"
            ),
            Rule::Backslash => f.write_str("a component contains '\\'"),
            Rule::Colon => f.write_str("a component contains ':'"),
            Rule::Control(c) => write!(
                f,
                "a component contains the control character {}",
                escape_char(*c)
            ),
            Rule::Bidi(c) => write!(
                f,
                "a component contains the bidi control {}",
                escape_char(*c)
            ),
            Rule::SlashLookalike(c) => write!(
                f,
                "a component contains {}, which looks like a slash",
                escape_char(*c)
            ),
            Rule::LeadingSpace => f.write_str("a component starts with a space"),
            Rule::TrailingSpace => f.write_str("a component ends with a space"),
            Rule::TrailingDot => f.write_str("a component ends with a dot"),
            Rule::WindowsReserved => f.write_str("a component is a Windows device name"),
            Rule::ReservedSuffix => {
                write!(
                    f,
                    "a component ends with the reserved suffix '{PARTIAL_SUFFIX}'"
                )
            }
            Rule::StateDir => write!(
                f,
                "a component is '{STATE_DIR_NAME}', reserved for this peer's own state"
            ),
            Rule::NotNfc => f.write_str("a component is not in Unicode NFC form"),
        }
    }
}

/// An entry path refused: which path (printable, shortened), which component (1-based; `None`
/// for a rule about the whole path) and which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub component: Option<usize>,
    pub rule: Rule,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsafe entry path '{}': {}", self.path, self.rule)?;
        if let Some(n) = self.component {
            write!(f, " (component {n})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PathError {}

/// An entry path that passed every rule of this module: relative, at most [`MAX_DEPTH`]
/// plain components joined by `/`. Only [`EntryPath::parse`] makes one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(String);

impl EntryPath {
    /// Checks `text` against every rule (module docs). `Err` names the rule and the component.
    pub fn parse(text: &str) -> Result<EntryPath, PathError> {
        let refuse = |component: Option<usize>, rule: Rule| PathError {
            path: shown(text),
            component,
            rule,
        };
        // The whole-path limits first: nothing below allocates per component.
        if text.len() > MAX_PATH_LEN {
            return Err(refuse(None, Rule::TooLong(text.len())));
        }
        if text.is_empty() {
            return Err(refuse(None, Rule::EmptyPath));
        }
        if text.starts_with('/') {
            return Err(refuse(None, Rule::Absolute));
        }
        for (i, component) in text.split('/').enumerate() {
            if i == MAX_DEPTH {
                return Err(refuse(None, Rule::TooDeep));
            }
            check_component(component).map_err(|rule| refuse(Some(i + 1), rule))?;
        }
        Ok(EntryPath(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, outermost first (never empty, never `.` or `..`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// How many components (1 for a top-level entry).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The folders it is in, outermost first: `a/b/c` → `a`, `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(move |(at, _)| &self.0[..at])
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryPath({:?})", self.0)
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::names::printable(&self.0))
    }
}

/// One component: a plain name (see the module docs), or the rule it breaks.
pub fn check_component(c: &str) -> Result<(), Rule> {
    match c {
        "" => return Err(Rule::EmptyComponent),
        "." => return Err(Rule::Dot),
        ".." => return Err(Rule::DotDot),
        _ => {}
    }
    if c.len() > MAX_FILE_NAME_LEN {
        return Err(Rule::ComponentTooLong(c.len()));
    }
    for ch in c.chars() {
        match ch {
            '\\' => return Err(Rule::Backslash),
            ':' => return Err(Rule::Colon),
            ch if ch.is_control() => return Err(Rule::Control(ch)),
            ch if is_bidi_control(ch) => return Err(Rule::Bidi(ch)),
            ch if is_slash_lookalike(ch) => return Err(Rule::SlashLookalike(ch)),
            _ => {}
        }
    }
    if c.starts_with(char::is_whitespace) {
        return Err(Rule::LeadingSpace);
    }
    if c.ends_with(char::is_whitespace) {
        return Err(Rule::TrailingSpace);
    }
    if c.ends_with('.') {
        return Err(Rule::TrailingDot);
    }
    if is_windows_device_name(c) {
        return Err(Rule::WindowsReserved);
    }
    if has_partial_suffix(c) {
        return Err(Rule::ReservedSuffix);
    }
    if c.eq_ignore_ascii_case(STATE_DIR_NAME) {
        return Err(Rule::StateDir);
    }
    if !is_nfc(c) {
        return Err(Rule::NotNfc);
    }
    Ok(())
}

fn is_nfc(s: &str) -> bool {
    match is_nfc_quick(s.chars()) {
        IsNormalized::Yes => true,
        IsNormalized::No => false,
        IsNormalized::Maybe => s.nfc().eq(s.chars()),
    }
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (and the superscript digits
/// Windows also reserves), `CONIN$`, `CONOUT$`: in any case, alone or before an extension
/// (`nul.txt` is the device too).
fn is_windows_device_name(c: &str) -> bool {
    let stem = c.split('.').next().unwrap_or(c).trim_end();
    let upper = stem.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    let mut chars = upper.chars();
    let head: String = chars.by_ref().take(3).collect();
    let rest: Vec<char> = chars.collect();
    (head == "COM" || head == "LPT")
        && rest.len() == 1
        && matches!(rest[0], '0'..='9' | '¹' | '²' | '³')
}

/// The key two names share when a case-insensitive or normalizing file system (macOS, Windows)
/// would store them as one: NFC, then lower case char by char (the context-free mapping),
/// with the few full case foldings `to_lowercase` lacks (`ß`, `ẞ` → `ss`, final `ς` → `σ`,
/// long `ſ` → `s`).
pub fn fold_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfc() {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'ς' => out.push('σ'),
            'ſ' => out.push('s'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out.nfc().collect()
}

/// What an entry is in a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    /// A folder with nothing in it (a folder with entries is implied by their paths).
    EmptyFolder,
}

/// Why a listing of valid entry paths is refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListingError {
    /// More entries than [`MAX_ENTRIES`] (how many were declared).
    TooMany(u64),
    /// Entries are not in strictly increasing byte order of their paths (an exact duplicate
    /// is this too): the listing is not canonical, so its id would not be the tree's.
    NotSorted { before: String, after: String },
    /// Two paths that one file system would store as one (after NFC and case folding):
    /// `A` and `a`, `Café/x` and `CAFÉ/y`.
    Clash { first: String, second: String },
    /// A file's path is also a folder of another entry (`a` and `a/b`).
    FileIsFolder { file: String, inside: String },
    /// An empty folder has entries (`a` listed empty, and `a/b`).
    FolderNotEmpty { folder: String, inside: String },
}

impl fmt::Display for ListingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListingError::TooMany(n) => write!(
                f,
                "the folder has {n} entries, at most {MAX_ENTRIES} allowed"
            ),
            ListingError::NotSorted { before, after } => write!(
                f,
                "the listing is not in order ('{after}' comes after '{before}')"
            ),
            ListingError::Clash { first, second } => write!(
                f,
                "entries '{first}' and '{second}' differ only in case or Unicode form"
            ),
            ListingError::FileIsFolder { file, inside } => {
                write!(f, "'{file}' is a file but '{inside}' is inside it")
            }
            ListingError::FolderNotEmpty { folder, inside } => {
                write!(f, "'{folder}' is listed empty but '{inside}' is inside it")
            }
        }
    }
}

impl std::error::Error for ListingError {}

/// Checks a declared entry count against [`MAX_ENTRIES`]: call it before allocating for a
/// listing.
pub fn check_entry_count(declared: u64) -> Result<(), ListingError> {
    if declared > MAX_ENTRIES {
        Err(ListingError::TooMany(declared))
    } else {
        Ok(())
    }
}

/// Checks a whole listing of entry paths (each already an [`EntryPath`]): at most
/// [`MAX_ENTRIES`], strictly increasing, no two the same after [`fold_key`] (folders
/// included: `A/x` and `a/y` put two folders on one), no file that is also a folder, no empty
/// folder with entries. After it, creating every entry beneath a fresh folder creates exactly
/// one file system object per entry on any file system.
pub fn check_listing<'a>(
    entries: impl ExactSizeIterator<Item = (&'a EntryPath, Kind)>,
) -> Result<(), ListingError> {
    check_entry_count(entries.len() as u64)?;
    /// What a folded key stands for so far: the spelling first seen and what it is.
    #[derive(PartialEq)]
    enum Seen {
        File,
        EmptyFolder,
        Folder,
    }
    let mut seen: HashMap<String, (String, Seen)> = HashMap::new();
    let mut previous: Option<&EntryPath> = None;
    for (path, kind) in entries {
        if let Some(before) = previous
            && before.as_str().as_bytes() >= path.as_str().as_bytes()
        {
            return Err(ListingError::NotSorted {
                before: before.to_string(),
                after: path.to_string(),
            });
        }
        previous = Some(path);
        for folder in path.ancestors() {
            match seen.get(&fold_key(folder)) {
                Some((spelling, _)) if spelling != folder => {
                    return Err(ListingError::Clash {
                        first: shown(spelling),
                        second: shown(folder),
                    });
                }
                Some((_, Seen::File)) => {
                    return Err(ListingError::FileIsFolder {
                        file: shown(folder),
                        inside: path.to_string(),
                    });
                }
                Some((_, Seen::EmptyFolder)) => {
                    return Err(ListingError::FolderNotEmpty {
                        folder: shown(folder),
                        inside: path.to_string(),
                    });
                }
                Some((_, Seen::Folder)) => {}
                None => {
                    seen.insert(fold_key(folder), (folder.to_string(), Seen::Folder));
                }
            }
        }
        let key = fold_key(path.as_str());
        if let Some((spelling, what)) = seen.get(&key) {
            // Sorted order puts "a" before "a/b", so an exact spelling seen before is a folder
            // implied by an earlier entry: only possible when that entry sorts first by case.
            return Err(if spelling == path.as_str() && *what == Seen::Folder {
                match kind {
                    Kind::File => ListingError::FileIsFolder {
                        file: path.to_string(),
                        inside: shown(spelling),
                    },
                    Kind::EmptyFolder => ListingError::FolderNotEmpty {
                        folder: path.to_string(),
                        inside: shown(spelling),
                    },
                }
            } else {
                ListingError::Clash {
                    first: shown(spelling),
                    second: path.to_string(),
                }
            });
        }
        let what = match kind {
            Kind::File => Seen::File,
            Kind::EmptyFolder => Seen::EmptyFolder,
        };
        seen.insert(key, (path.as_str().to_string(), what));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
