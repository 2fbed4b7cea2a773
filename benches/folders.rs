//! `cargo bench --bench folders [-- --files N --size BYTES]`: the costs of a folder of many small
//! files (issue 15) on this machine, each as a ratio to `rsync -a` of the same tree from a
//! loopback rsync daemon measured in the same run (the target: a whole `get PEER
//! FOLDER` of 10,000 files of 4 KiB within 2× of it).
//!
//! The rows are the pieces a `get PEER FOLDER` is made of, each alone, in-process: sharing
//! (scanning and hashing the tree, cold cache), the listing (paging it and checking every
//! entry and the id, as a receiver does) and placing the verified files as a tree
//! (`place_tree`). The whole fetch between two real peers, against the same rsync, is row 7
//! of `cargo bench --bench transfer` (`-- --only folders`). Needs `rsync` on the PATH for the
//! baseline (the ratios are left out without it).

use p2p::peer::folder::beneath::Dir;
use p2p::peer::folder::manifest::{EntryKind, FolderManifest, PagedListing};
use p2p::peer::folder::place::place_tree;
use p2p::peer::index::SharedIndex;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "perf/rsync.rs"]
mod rsync;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tree of `files` files of `size` bytes, 100 to a folder, each with different bytes.
fn write_tree(root: &Path, files: usize, size: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut bytes = vec![0u8; size];
        bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
        std::fs::write(dir.join(format!("f{i:05}.bin")), bytes).unwrap();
    }
}

fn main() {
    let files = arg("--files", 10_000);
    let size = arg("--size", 4096);
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("shared");
    write_tree(&shared.join("Tree"), files, size);
    println!("folders: {files} files of {size} bytes in folders of 100");

    let rsync = rsync::rsync_time(
        work.path(),
        &shared,
        "Tree",
        &work.path().join("rsync-dest"),
    );
    let rsync = match rsync {
        Ok(t) => {
            println!(
                "  rsync -a from a loopback daemon   {:>8.1} ms  (baseline)",
                ms(t)
            );
            Some(t)
        }
        Err(why) => {
            println!("  rsync -a from a loopback daemon   skipped ({why})");
            None
        }
    };
    let row = |what: &str, t: Duration| match rsync {
        Some(r) => println!(
            "  {what:<32}  {:>8.1} ms  {:.2}× rsync",
            ms(t),
            t.as_secs_f64() / r.as_secs_f64()
        ),
        None => println!("  {what:<32}  {:>8.1} ms", ms(t)),
    };

    // Sharing: scan and hash the whole tree, no cache.
    let start = Instant::now();
    let (index, _) = SharedIndex::scan(&shared, &work.path().join("cache.cbor")).unwrap();
    row("share: scan + hash (cold cache)", start.elapsed());
    let info = index.folder_infos().pop().expect("the tree is shared");
    let manifest = index.folder_by_id(&info.id).unwrap().clone();

    // The listing: pages as a responder cuts them, checked as a receiver does.
    let start = Instant::now();
    let mut listing = PagedListing::new(info.id);
    let total = manifest.entries().len() as u64;
    let checked: FolderManifest = loop {
        let at = listing.next_start();
        let page = manifest.page(at, p2p::peer::folder::PAGE_BUDGET);
        if let Some(m) = listing.handle_page(&info.id, total, at, &page).unwrap() {
            break m;
        }
    };
    row("listing: page + check + id", start.elapsed());

    // Placing: the verified files (prepared untimed, named by content id) become the tree.
    let downloads = work.path().join("downloads");
    let verified = downloads.join(".p2p/verified");
    std::fs::create_dir_all(&verified).unwrap();
    for e in checked.entries() {
        if let EntryKind::File { id, .. } = e.kind {
            let src = shared.join("Tree").join(e.path.as_str());
            let _ = std::fs::hard_link(&src, verified.join(id.to_hex()));
        }
    }
    let root = Dir::open_root(&downloads).unwrap();
    let vdir = Dir::open_root(&verified).unwrap();
    let start = Instant::now();
    place_tree(&root, "Tree", &checked, &vdir, |id| id.to_hex()).unwrap();
    row("place: tree of hard links", start.elapsed());
    println!("  (the whole `get PEER FOLDER`: cargo bench --bench transfer -- --only folders)");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
