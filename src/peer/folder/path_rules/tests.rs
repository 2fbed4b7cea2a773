use super::*;

#[track_caller]
fn refused(text: &str, rule: Rule) {
    match EntryPath::parse(text) {
        Ok(p) => panic!("{text:?} was accepted as {p:?}"),
        Err(e) => {
            assert_eq!(e.rule, rule, "{text:?}: {e}");
            let shown = e.to_string();
            assert!(
                !shown.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "error text is not printable: {shown:?}"
            );
        }
    }
}

#[track_caller]
fn accepted(text: &str) -> EntryPath {
    EntryPath::parse(text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"))
}

#[test]
fn traversal_and_absolute_forms_are_refused() {
    refused("..", Rule::DotDot);
    refused("../../.bashrc", Rule::DotDot);
    refused("a/../b", Rule::DotDot);
    refused("a/../../b", Rule::DotDot);
    refused("a/..", Rule::DotDot);
    refused(".", Rule::Dot);
    refused("./a", Rule::Dot);
    refused("a/./b", Rule::Dot);
    refused("/etc/x", Rule::Absolute);
    refused("/", Rule::Absolute);
    refused("//srv/share", Rule::Absolute);
    refused("", Rule::EmptyPath);
    refused("a//b", Rule::EmptyComponent);
    refused("a/", Rule::EmptyComponent);
}

#[test]
fn windows_separators_and_drives_are_refused() {
    refused("C:\\x", Rule::Colon);
    refused("C:x", Rule::Colon);
    refused("C:/x", Rule::Colon);
    refused("a/file.txt:stream", Rule::Colon);
    refused("\\\\srv\\share", Rule::Backslash);
    refused("..\\..\\x", Rule::Backslash);
    refused("a/b\\c", Rule::Backslash);
    refused("a\u{FF0F}b", Rule::SlashLookalike('\u{FF0F}'));
    refused("a\u{FF3C}b", Rule::SlashLookalike('\u{FF3C}'));
    refused("x/a\u{2215}b", Rule::SlashLookalike('\u{2215}'));
}

#[test]
fn control_and_bidi_characters_are_refused() {
    refused("a\0b", Rule::Control('\0'));
    refused("a/b\0", Rule::Control('\0'));
    refused("\x1b[31mred", Rule::Control('\x1b'));
    refused("a\u{9b}2J", Rule::Control('\u{9b}'));
    refused("line\r", Rule::Control('\r'));
    refused("new\nline", Rule::Control('\n'));
    refused("tab\there", Rule::Control('\t'));
    refused("del\x7f", Rule::Control('\x7f'));
    refused("evil\u{202E}txt.exe", Rule::Bidi('\u{202E}'));
    refused("a/\u{2066}b", Rule::Bidi('\u{2066}'));
}

#[test]
fn windows_device_names_in_any_case_and_with_extensions_are_refused() {
    for name in [
        "CON",
        "con",
        "Prn",
        "AUX",
        "NUL",
        "nul.txt",
        "NUL.tar.gz",
        "COM1",
        "com9.log",
        "LPT1",
        "lpt0",
        "COM¹",
        "LPT³.x",
        "CONIN$",
        "conout$",
        "a/CON",
        "CON/a",
    ] {
        refused(name, Rule::WindowsReserved);
    }
    // Only the exact device stems: these are ordinary names.
    for name in [
        "CONSOLE",
        "nullable",
        "COM10",
        "LPT",
        "auxiliary.txt",
        "com",
        "a.con",
    ] {
        accepted(name);
    }
}

#[test]
fn trailing_dots_spaces_and_leading_spaces_are_refused() {
    refused("a.", Rule::TrailingDot);
    refused("dir./x", Rule::TrailingDot);
    refused("...", Rule::TrailingDot);
    refused("a ", Rule::TrailingSpace);
    refused(" a", Rule::LeadingSpace);
    refused("a/ b", Rule::LeadingSpace);
}

#[test]
fn our_own_names_are_refused() {
    refused("x.p2p-part", Rule::ReservedSuffix);
    refused("a/.b.P2P-PART", Rule::ReservedSuffix);
    refused(".p2p", Rule::StateDir);
    refused("a/.P2P/resume", Rule::StateDir);
}

#[test]
fn lengths_and_depth_are_limited() {
    refused(&"a".repeat(256), Rule::ComponentTooLong(256));
    refused(
        &format!("d/{}", "é".repeat(150)),
        Rule::ComponentTooLong(300),
    );
    accepted(&"a".repeat(255));
    let deep_ok = vec!["d"; MAX_DEPTH].join("/");
    assert_eq!(accepted(&deep_ok).depth(), MAX_DEPTH);
    refused(&vec!["d"; MAX_DEPTH + 1].join("/"), Rule::TooDeep);
    // Depth 1,000 stops at the limit; a path over PATH_MAX is refused before it is split.
    refused(&vec!["d"; 1000].join("/"), Rule::TooDeep);
    let long = vec!["x".repeat(200); 21].join("/");
    refused(&long, Rule::TooLong(long.len()));
}

#[test]
fn too_deep_is_found_before_a_bad_component_further_on() {
    // The limit is a limit on work: nothing past component MAX_DEPTH is looked at.
    let mut parts = vec!["d"; MAX_DEPTH];
    parts.push("..");
    refused(&parts.join("/"), Rule::TooDeep);
}

#[test]
fn unicode_must_be_nfc() {
    refused("cafe\u{301}", Rule::NotNfc);
    refused("a/cafe\u{301}/b", Rule::NotNfc);
    // Hangul jamo (NFD) composes to a syllable in NFC.
    refused("\u{1100}\u{1161}", Rule::NotNfc);
    accepted("caf\u{e9}");
    accepted("\u{AC00}");
}

#[test]
fn plain_trees_are_accepted() {
    let p = accepted("Photos 2024/Été/IMG 0001.jpg");
    assert_eq!(
        p.components().collect::<Vec<_>>(),
        ["Photos 2024", "Été", "IMG 0001.jpg"]
    );
    assert_eq!(
        p.ancestors().collect::<Vec<_>>(),
        ["Photos 2024", "Photos 2024/Été"]
    );
    assert_eq!(p.depth(), 3);
    accepted(".hidden/x");
    accepted("日本語/ファイル.txt");
    accepted("a b/c-d_e (1).tar.gz");
    accepted("emoji 🎉");
}

#[test]
fn errors_name_the_component_and_show_the_path_safely() {
    let e = EntryPath::parse("a/b/../c").unwrap_err();
    assert_eq!(e.component, Some(3));
    assert_eq!(
        e.to_string(),
        "unsafe entry path 'a/b/../c': a component is '..' (component 3)"
    );
    let e = EntryPath::parse("x\x1b[2J").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsafe entry path 'x\\x1b[2J': a component contains the control character \\x1b (component 1)"
    );
    let e = EntryPath::parse(&"a".repeat(5000)).unwrap_err();
    assert!(e.path.ends_with('…'), "{e}");
}

#[test]
fn fold_key_joins_case_and_normal_forms() {
    assert_eq!(fold_key("Café"), fold_key("cafe\u{301}"));
    assert_eq!(fold_key("CAFÉ"), fold_key("café"));
    assert_eq!(fold_key("A"), fold_key("a"));
    assert_eq!(fold_key("Straße"), fold_key("STRASSE"));
    assert_eq!(fold_key("ΟΔΟΣ"), fold_key("οδος"));
    assert_ne!(fold_key("a"), fold_key("b"));
}

fn listing(entries: &[(&str, Kind)]) -> Result<(), ListingError> {
    let parsed: Vec<(EntryPath, Kind)> = entries.iter().map(|(p, k)| (accepted(p), *k)).collect();
    check_listing(parsed.iter().map(|(p, k)| (p, *k)))
}

use Kind::{EmptyFolder, File};

#[test]
fn a_canonical_listing_passes() {
    listing(&[
        ("a b/c.txt", File),
        ("a b/empty", EmptyFolder),
        ("a b/sub/d", File),
        ("top.txt", File),
        ("zzz", EmptyFolder),
    ])
    .unwrap();
    listing(&[]).unwrap();
}

#[test]
fn case_and_normalization_clashes_are_refused() {
    // NFD paths are refused one by one; the clash check catches what is left: case.
    assert!(matches!(
        listing(&[("A", File), ("a", File)]),
        Err(ListingError::Clash { .. })
    ));
    assert!(matches!(
        listing(&[("Café", File), ("café", File)]),
        Err(ListingError::Clash { .. })
    ));
    // Two spellings of one folder: both files would land in one folder.
    let e = listing(&[("Dir/x", File), ("dir/y", File)]).unwrap_err();
    assert_eq!(
        e,
        ListingError::Clash {
            first: "Dir".into(),
            second: "dir".into()
        }
    );
    // A file and a folder under one key.
    assert!(matches!(
        listing(&[("README", File), ("readme/x", File)]),
        Err(ListingError::Clash { .. })
    ));
    assert!(matches!(
        listing(&[("STRASSE", File), ("straße", File)]),
        Err(ListingError::Clash { .. })
    ));
}

#[test]
fn unsorted_and_duplicate_listings_are_refused() {
    assert!(matches!(
        listing(&[("b", File), ("a", File)]),
        Err(ListingError::NotSorted { .. })
    ));
    assert!(matches!(
        listing(&[("a", File), ("a", File)]),
        Err(ListingError::NotSorted { .. })
    ));
    assert!(matches!(
        listing(&[("a", File), ("a", EmptyFolder)]),
        Err(ListingError::NotSorted { .. })
    ));
}

#[test]
fn files_and_empty_folders_cannot_hold_entries() {
    assert_eq!(
        listing(&[("a", File), ("a/b", File)]).unwrap_err(),
        ListingError::FileIsFolder {
            file: "a".into(),
            inside: "a/b".into()
        }
    );
    assert_eq!(
        listing(&[("a", EmptyFolder), ("a/b/c", File)]).unwrap_err(),
        ListingError::FolderNotEmpty {
            folder: "a".into(),
            inside: "a/b/c".into()
        }
    );
}

#[test]
fn entry_counts_are_limited_before_allocation() {
    check_entry_count(MAX_ENTRIES).unwrap();
    assert_eq!(
        check_entry_count(100_000),
        Err(ListingError::TooMany(100_000))
    );
    assert_eq!(
        check_entry_count(u64::MAX),
        Err(ListingError::TooMany(u64::MAX))
    );
    // check_listing refuses by the iterator's length before looking at an entry.
    struct Endless;
    impl Iterator for Endless {
        type Item = (&'static EntryPath, Kind);
        fn next(&mut self) -> Option<Self::Item> {
            panic!("an entry was read past the limit")
        }
    }
    impl ExactSizeIterator for Endless {
        fn len(&self) -> usize {
            100_000
        }
    }
    assert_eq!(check_listing(Endless), Err(ListingError::TooMany(100_000)));
}

#[test]
fn a_large_listing_is_checked_quickly() {
    let paths: Vec<EntryPath> = (0..MAX_ENTRIES)
        .map(|i| accepted(&format!("d{:03}/f{:06}", i / 1000, i)))
        .collect();
    check_listing(paths.iter().map(|p| (p, File))).unwrap();
}
