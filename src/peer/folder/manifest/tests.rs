use super::*;
use crate::wire::Sha256;

const PROTOCOL: &str = include_str!("../../../../PROTOCOL.md");

/// The content id of the 4 bytes `abcd` (PROTOCOL.md §8.4.1).
fn abcd_id() -> ContentId {
    ContentId::from_parts(4, 262_144, &[Sha256::of(b"abcd")])
}

fn file(path: &str, size: u64, id: ContentId) -> Entry {
    Entry {
        path: EntryPath::parse(path).unwrap(),
        kind: EntryKind::File { size, id },
    }
}

fn empty(path: &str) -> Entry {
    Entry {
        path: EntryPath::parse(path).unwrap(),
        kind: EntryKind::EmptyFolder,
    }
}

/// §8.5.1's example: `a.txt` holding `abcd`, and an empty folder `empty`.
fn example() -> FolderManifest {
    FolderManifest::new(vec![file("a.txt", 4, abcd_id()), empty("empty")]).unwrap()
}

fn input_of(m: &FolderManifest) -> Vec<u8> {
    let mut input = DOMAIN_TAG.to_vec();
    input.extend((m.entries().len() as u64).to_be_bytes());
    for e in m.entries() {
        encode_entry(e, |b| input.extend_from_slice(b));
    }
    input
}

#[test]
fn the_worked_example_in_protocol_md_is_what_we_compute() {
    let m = example();
    let input = input_of(&m);
    assert_eq!(FolderId(sha2::Sha256::digest(&input).into()), m.id());
    let input_hex = hex::encode(&input);
    assert!(
        PROTOCOL.contains(&input_hex),
        "§8.5.1 lacks input {input_hex}"
    );
    let id = m.id().to_string();
    assert!(PROTOCOL.contains(&id), "§8.5.1 lacks id {id}");
    assert_eq!(id.parse::<FolderId>().unwrap(), m.id());
}

#[test]
fn the_id_commits_to_every_field_and_not_to_the_name() {
    let base = example().id();
    let other = ContentId::from_parts(4, 262_144, &[Sha256::of(b"abce")]);
    for changed in [
        vec![file("b.txt", 4, abcd_id()), empty("empty")],
        vec![file("a.txt", 5, abcd_id()), empty("empty")],
        vec![file("a.txt", 4, other), empty("empty")],
        vec![file("a.txt", 4, abcd_id()), empty("empty2")],
        vec![file("a.txt", 4, abcd_id())],
        vec![file("a.txt", 4, abcd_id()), file("empty", 0, other)],
    ] {
        assert_ne!(FolderManifest::new(changed).unwrap().id(), base);
    }
    // The empty tree has an id too.
    assert_ne!(FolderManifest::new(vec![]).unwrap().id(), base);
}

#[test]
fn a_listing_from_the_network_must_have_the_id_asked_for() {
    let m = example();
    let wire: Vec<FolderEntry> = m.entries().iter().map(Entry::to_wire).collect();
    assert_eq!(FolderManifest::from_wire(&m.id(), &wire).unwrap(), m);
    let wrong = FolderId([7; 32]);
    assert!(matches!(
        FolderManifest::from_wire(&wrong, &wire),
        Err(ManifestError::IdMismatch { .. })
    ));
}

#[test]
fn hostile_entries_are_refused_before_the_id_is_looked_at() {
    let id = abcd_id();
    for path in [
        "../x",
        "/etc/passwd",
        "a//b",
        "./a",
        "CON",
        "a\0b",
        "cafe\u{301}",
    ] {
        let wire = vec![FolderEntry {
            path: path.into(),
            size: 4,
            id: Some(id),
        }];
        let e = FolderManifest::from_wire(&FolderId([0; 32]), &wire).unwrap_err();
        assert!(matches!(e, ManifestError::Path(_)), "{path:?}: {e}");
    }
    let wire = vec![FolderEntry {
        path: "d".into(),
        size: 9,
        id: None,
    }];
    assert!(matches!(
        FolderManifest::from_wire(&FolderId([0; 32]), &wire),
        Err(ManifestError::SizedFolder(_))
    ));
    let clash = vec![
        FolderEntry {
            path: "A".into(),
            size: 4,
            id: Some(id),
        },
        FolderEntry {
            path: "a".into(),
            size: 4,
            id: Some(id),
        },
    ];
    assert!(matches!(
        FolderManifest::from_wire(&FolderId([0; 32]), &clash),
        Err(ManifestError::Listing(ListingError::Clash { .. }))
    ));
}

fn big(n: usize) -> FolderManifest {
    let id = abcd_id();
    FolderManifest::new(
        (0..n)
            .map(|i| file(&format!("dir/{i:06}.bin"), 4, id))
            .collect(),
    )
    .unwrap()
}

#[test]
fn a_listing_larger_than_a_page_arrives_in_pages() {
    let m = big(10_000);
    let mut listing = PagedListing::new(m.id());
    let mut pages = 0;
    let done = loop {
        let start = listing.next_start();
        let page = m.page(start, 64 * 1024);
        pages += 1;
        if let Some(done) = listing
            .handle_page(&m.id(), m.entries().len() as u64, start, &page)
            .unwrap()
        {
            break done;
        }
    };
    assert!(pages > 1, "{pages} pages");
    assert_eq!(done, m);
    assert_eq!(m.totals(), (10_000, 40_000));
}

#[test]
fn pages_that_do_not_continue_the_listing_are_refused() {
    let m = big(10);
    let total = 10;
    let page = m.page(0, 200);
    assert!(page.len() < 10 && !page.is_empty());
    let bad = |listing: &mut PagedListing, total, start, page: &[FolderEntry]| {
        matches!(
            listing.handle_page(&m.id(), total, start, page),
            Err(ManifestError::BadPage(_))
        )
    };
    let mut l = PagedListing::new(m.id());
    assert!(bad(&mut l, total, 1, &page), "a gap");
    let mut l = PagedListing::new(m.id());
    assert!(bad(&mut l, total, 0, &[]), "an empty page before the end");
    let mut l = PagedListing::new(m.id());
    assert!(bad(&mut l, 2, 0, &m.page(0, usize::MAX)), "past the total");
    let mut l = PagedListing::new(m.id());
    l.handle_page(&m.id(), total, 0, &page).unwrap();
    let next = l.next_start();
    assert!(
        bad(&mut l, total + 1, next, &m.page(next, 200)),
        "total changed"
    );
    let mut l = PagedListing::new(m.id());
    assert!(matches!(
        l.handle_page(&FolderId([1; 32]), total, 0, &page),
        Err(ManifestError::BadPage(_))
    ));
}

#[test]
fn a_declared_total_over_the_limit_is_refused_before_any_entry_is_kept() {
    let mut l = PagedListing::new(FolderId([0; 32]));
    let page = big(1).page(0, usize::MAX);
    assert!(matches!(
        l.handle_page(&FolderId([0; 32]), 100_000, 0, &page),
        Err(ManifestError::Listing(ListingError::TooMany(100_000)))
    ));
    assert_eq!(l.next_start(), 0);
}

#[test]
fn the_empty_tree_is_one_empty_page() {
    let m = FolderManifest::new(vec![]).unwrap();
    let mut l = PagedListing::new(m.id());
    assert_eq!(l.handle_page(&m.id(), 0, 0, &[]).unwrap(), Some(m));
}

#[test]
fn a_page_fits_in_a_frame_even_with_the_longest_paths() {
    // 16 entries of 4,096-byte paths, all in the listing's order.
    let long = |i: usize| {
        let mut parts = vec!["x".repeat(250); 16];
        parts[0] = format!("{i:02}{}", "x".repeat(248));
        parts.join("/")
    };
    let id = abcd_id();
    let m = FolderManifest::new((0..16).map(|i| file(&long(i), 4, id)).collect()).unwrap();
    let page = m.page(0, super::super::PAGE_BUDGET);
    let msg = crate::wire::Message::Folder {
        req: u64::MAX,
        id: m.id(),
        total: 16,
        start: 0,
        entries: page,
    };
    assert!(crate::wire::encode_message(&msg).len() <= super::super::PAGE_BUDGET + 1024);
}

#[test]
fn the_empty_tree_id_in_protocol_md_is_what_we_compute() {
    let id = FolderManifest::new(vec![]).unwrap().id().to_string();
    assert!(PROTOCOL.contains(&id), "§8.5.1 lacks {id}");
}

#[test]
fn folder_messages_round_trip_through_the_codec() {
    use crate::wire::{FolderInfo, Message, decode_message, encode_message};
    let m = example();
    for msg in [
        Message::ListFolders { req: 1 },
        Message::Folders {
            req: 1,
            folders: vec![FolderInfo {
                name: "album".into(),
                id: m.id(),
                entries: 2,
                files: 1,
                size: 4,
            }],
        },
        Message::GetFolder {
            req: 2,
            id: m.id(),
            start: 0,
        },
        Message::Folder {
            req: 2,
            id: m.id(),
            total: 2,
            start: 0,
            entries: m.page(0, usize::MAX),
        },
    ] {
        let frame = encode_message(&msg);
        assert_eq!(decode_message(&frame[4..]).unwrap(), msg);
    }
    // An empty folder's entry has no "id" key at all: a map of two keys.
    let mut bytes = Vec::new();
    ciborium::into_writer(&m.entries()[1].to_wire(), &mut bytes).unwrap();
    assert_eq!(bytes[0], 0xa2, "{}", hex::encode(&bytes));
}
