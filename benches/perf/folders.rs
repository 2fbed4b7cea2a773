//! Rows 7 and 8 (issue 15): whole folder fetches between two real peers over 127.0.0.1.
//!
//! Row 7: a tree of many small files, `get PEER FOLDER` timed from the command (the batch's
//! `wait-peer` answer, printed just before `get` runs) to its summary line, against `rsync -a`
//! of the same tree from a loopback rsync daemon (its connection and file list included).
//! Row 8: a tree of a few big files against one file of their total size, from the same
//! seeder, alternated round by round. Every fetch starts after a `sync`, so no fetch pays for
//! the writeback of the one before it.

use super::procs::Proc;
use super::rsync::rsync_time;
use super::{Bench, MIB, Place, io_err, summary_rate, write_random_file};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct FolderRows {
    pub small_files: usize,
    pub small_size: u64,
    /// Command to summary line of each `get PEER FOLDER` of the small-file tree, seconds.
    pub small_secs: Vec<f64>,
    /// `rsync -a` of the same tree each round, seconds; or why it was not measured.
    pub rsync_secs: Result<Vec<f64>, String>,
    pub parts: usize,
    pub part_size: u64,
    /// Summary-line rates of the folder of big files and of the one file, MB/s, each round.
    pub parts_mbps: Vec<f64>,
    pub one_mbps: Vec<f64>,
}

/// `files` files of `size` bytes under `root`, 100 to a folder, each with different bytes.
fn write_small_tree(root: &Path, files: usize, size: u64) -> std::io::Result<()> {
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let mut bytes = vec![0u8; size as usize];
        let n = bytes.len().min(8);
        bytes[..n].copy_from_slice(&(i as u64).to_be_bytes()[..n]);
        std::fs::write(dir.join(format!("f{i:05}.bin")), bytes)?;
    }
    Ok(())
}

/// Flushes dirty pages, so the next fetch does not pay for the last one's writeback.
fn sync() {
    let _ = Command::new("sync").status();
}

/// Regular files and their total size beneath `root`, the state folder `.p2p` left out.
fn count_files(root: &Path) -> std::io::Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() && entry.file_name() != ".p2p" {
                todo.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

struct Fetched {
    secs: f64,
    mbps: f64,
}

impl Bench<'_> {
    /// A receiving peer in batch mode runs `get FROM FOLDER`; checks the tree it made holds
    /// `files` files of `bytes` in all. The tree is left in place (see [`folder_rows`]).
    fn fetch_folder(
        &self,
        tracker: SocketAddr,
        from: &str,
        folder: &str,
        (files, bytes): (usize, u64),
        tag: &str,
    ) -> Result<Fetched, String> {
        let downloads = self.path(&format!("dl-{tag}"));
        let _ = std::fs::remove_dir_all(&downloads);
        std::fs::create_dir_all(&downloads).map_err(io_err("downloads folder"))?;
        self.key_for("receiver", &downloads)?;
        let batch = self.path(&format!("batch-{tag}.txt"));
        let script = format!("wait-peer {from} 30\nget {from} {folder}\n");
        std::fs::write(&batch, script).map_err(io_err("batch file"))?;
        let mut cmd = self.receiver_command(Place::Host, tracker, &downloads, &batch);
        let mut r = Proc::spawn("receiver", &mut cmd)?;
        r.wait_line("'... is known'", Duration::from_secs(60), |l| {
            l.ends_with(" is known")
        })?;
        let asked = Instant::now();
        let timeout = Duration::from_secs(120 + bytes / MIB);
        let line = r.wait_line("saved ...", timeout, |l| l.starts_with("saved "))?;
        let secs = asked.elapsed().as_secs_f64();
        r.expect_success(Duration::from_secs(60))?;
        let mbps =
            summary_rate(&line).ok_or_else(|| format!("no MB/s in the summary line '{line}'"))?;
        let got = count_files(&downloads.join(folder)).map_err(io_err("the fetched tree"))?;
        if got != (files, bytes) {
            return Err(format!(
                "fetched {} files of {} bytes in {folder}, expected {files} of {bytes}",
                got.0, got.1
            ));
        }
        Ok(Fetched { secs, mbps })
    }
}

/// The rows. Trees of small files are removed only at the end: ext4 without a journal (this
/// machine's) scans past every inode freed in the last seconds when it makes a new one, so a
/// tree deleted just before a fetch would slow whichever fetch comes next.
pub(super) fn folder_rows(b: &Bench) -> Result<FolderRows, String> {
    let cfg = b.cfg;
    let shared = b.path("folders");
    let (files, size) = (cfg.folder_files, cfg.folder_file_size);
    let parts = cfg.folder_parts.max(1);
    let part_size = cfg.big / parts as u64;
    write_small_tree(&shared.join("Small"), files, size).map_err(io_err("small-file tree"))?;
    std::fs::create_dir_all(shared.join("Parts")).map_err(io_err("tree of big files"))?;
    for i in 0..parts {
        let path = shared.join(format!("Parts/part{i}.bin"));
        write_random_file(&path, part_size, 0x51_7CC1_B727_220A ^ i as u64)
            .map_err(io_err("tree of big files"))?;
    }
    let whole = part_size * parts as u64;
    write_random_file(&shared.join("one.bin"), whole, 0x6A09_E667_F3BC_C908)
        .map_err(io_err("one big file"))?;

    let (mut tracker, taddr) = b.start_tracker(Place::Host, 0)?;
    let mut seeder = b.start_peer(Place::Host, "folders", taddr, "folders", true, false)?;
    let mut rows = FolderRows {
        small_files: files,
        small_size: size,
        small_secs: Vec::new(),
        rsync_secs: Ok(Vec::new()),
        parts,
        part_size,
        parts_mbps: Vec::new(),
        one_mbps: Vec::new(),
    };
    for round in 0..cfg.repeat.max(1) {
        super::say(cfg, &format!("folders: round {}", round + 1));
        sync();
        let (one, _) = b.download(Place::Host, taddr, "folders", "one.bin", whole, "f-one")?;
        rows.one_mbps.push(one);
        sync();
        let tree = b.fetch_folder(taddr, "folders", "Parts", (parts, whole), "f-parts")?;
        rows.parts_mbps.push(tree.mbps);
        let _ = std::fs::remove_dir_all(b.path("dl-f-parts"));
        sync();
        let small = (files, files as u64 * size);
        let tag = format!("f-small-{round}");
        let fetched = b.fetch_folder(taddr, "folders", "Small", small, &tag)?;
        rows.small_secs.push(fetched.secs);
        sync();
        let dest = b.path(&format!("rsync-dest-{round}"));
        let rsync = rsync_time(b.dir.path(), &shared, "Small", &dest);
        match (&mut rows.rsync_secs, rsync) {
            (Ok(all), Ok(t)) => all.push(t.as_secs_f64()),
            (all @ Ok(_), Err(why)) => *all = Err(why),
            (Err(_), _) => {}
        }
    }
    seeder.proc.terminate();
    tracker.terminate();
    for round in 0..cfg.repeat.max(1) {
        let _ = std::fs::remove_dir_all(b.path(&format!("dl-f-small-{round}")));
        let _ = std::fs::remove_dir_all(b.path(&format!("rsync-dest-{round}")));
    }
    Ok(rows)
}

fn best(all: &[f64], better: fn(f64, f64) -> f64, start: f64) -> f64 {
    all.iter().copied().fold(start, better)
}

fn listed(all: &[f64], digits: usize) -> String {
    let runs: Vec<String> = all.iter().map(|v| format!("{v:.digits$}")).collect();
    runs.join(", ")
}

/// Rows 7 and 8 of the table.
pub(super) fn rows_table(f: &FolderRows, out: &mut String) {
    use std::fmt::Write as _;
    let small = best(&f.small_secs, f64::min, f64::INFINITY);
    let compared = match &f.rsync_secs {
        Ok(all) if !all.is_empty() => {
            let r = best(all, f64::min, f64::INFINITY);
            format!(
                "**{:.2}×** `rsync -a` from a loopback daemon ({r:.2} s, best of {}: {})",
                small / r,
                all.len(),
                listed(all, 2)
            )
        }
        Ok(_) => "`rsync -a`: not run".into(),
        Err(why) => format!("`rsync -a`: {why}"),
    };
    let _ = writeln!(
        out,
        "| 7 | `get PEER FOLDER`, {} files of {} bytes, command to summary (best of {}: {}) \
         | **{small:.2} s** | {compared} | ≤ 2× rsync |",
        f.small_files,
        f.small_size,
        f.small_secs.len(),
        listed(&f.small_secs, 2)
    );
    let tree = best(&f.parts_mbps, f64::max, 0.0);
    let one = best(&f.one_mbps, f64::max, 0.0);
    let ratio = if one > 0.0 { tree / one } else { 0.0 };
    let _ = writeln!(
        out,
        "| 8 | `get PEER FOLDER`, {} files of {} (best of {}: {}) | **{tree:.0} MB/s** | \
         **{ratio:.2}×** one file of {} ({one:.0} MB/s, best of {}: {}), alternated with it \
         | ≥ 0.9× one file |",
        f.parts,
        super::size(f.part_size),
        f.parts_mbps.len(),
        listed(&f.parts_mbps, 0),
        super::size(f.part_size * f.parts as u64),
        f.one_mbps.len(),
        listed(&f.one_mbps, 0)
    );
}
