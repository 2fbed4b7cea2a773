//! The download machine through its own API: fake time, fake connection ids, an in-memory
//! store. Each test covers a rule that only the process tests (tests/swarm.rs, resume.rs,
//! failures.rs, faults.rs) covered before.

mod checks;
mod lifecycle;
mod sources;

use super::scheduler::ChunkState;
use super::sources::ManifestAnswer;
use super::store::MemStore;
use super::*;
use crate::peer::manifest::{Manifest, manifest_of_reader};
use crate::reactor::ConnId;
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;
const RETRY_FOR: Duration = Duration::from_secs(10);

/// A file of `chunks` chunks, the last one short.
fn file(chunks: usize) -> Vec<u8> {
    (0..chunks * CHUNK - 100)
        .map(|i| ((i % 251) ^ (i / CHUNK)) as u8)
        .collect()
}

struct Rig {
    dl: Download,
    store: MemStore,
    data: Vec<u8>,
    m: Manifest,
    t0: Instant,
    now: Instant,
}

impl Rig {
    /// A download of a `chunks`-chunk file from `sources`, its partial file not checked yet.
    fn new(chunks: usize, sources: &[&str], recorded: Option<u64>) -> Rig {
        let data = file(chunks);
        let m = manifest_of_reader(data.as_slice(), data.len() as u64).unwrap();
        assert_eq!(m.chunk_size as usize, CHUNK);
        let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let t0 = Instant::now();
        let dl = Download::new(
            DownloadId(1),
            "f.bin",
            &names,
            m.clone(),
            recorded,
            RETRY_FOR,
            t0,
        );
        Rig {
            dl,
            store: MemStore::default(),
            data,
            m,
            t0,
            now: t0,
        }
    }

    /// [`Rig::new`], checked: nothing here yet.
    fn started(chunks: usize, sources: &[&str]) -> Rig {
        let mut rig = Rig::new(chunks, sources, None);
        rig.dl.handle_checked(&[], rig.now);
        let outs = rig.drain();
        assert!(
            matches!(outs[..], [Output::Reach { refresh: false }]),
            "{outs:?}"
        );
        rig
    }

    fn at(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    /// Every output, the disk ones carried out on the store at once (and left out).
    fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(out) = self.dl.poll_output() {
            if let Some(out) = run_disk_output(&mut self.dl, &mut self.store, out, self.now) {
                outs.push(out);
            }
        }
        outs
    }

    /// [`Rig::drain`], but a chunk's check is left out for the test to answer (as a checking
    /// thread would, later).
    fn drain_but_checks(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(out) = self.dl.poll_output() {
            if matches!(out, Output::Check { .. }) {
                outs.push(out);
            } else if let Some(out) = run_disk_output(&mut self.dl, &mut self.store, out, self.now)
            {
                outs.push(out);
            }
        }
        outs
    }

    fn ix(&self, i: u64) -> ChunkIndex {
        self.dl.chunk_index(i).unwrap()
    }

    fn src(&self, name: &str) -> SourceId {
        self.dl.source_named(name).unwrap()
    }

    fn bytes(&self, i: u64) -> Vec<u8> {
        let off = i as usize * CHUNK;
        self.data[off..(off + CHUNK).min(self.data.len())].to_vec()
    }

    /// Source `name` is reached on `conn`, confirms the manifest and says what it has (its
    /// `GetHave` answered `rtt_ms` after it was asked).
    fn join_with(
        &mut self,
        name: &str,
        conn: ConnId,
        have: HaveAnswer,
        rtt_ms: u64,
    ) -> Vec<Output> {
        let s = self.src(name);
        self.dl
            .handle_reached(s, Reached::Connected(conn), self.now);
        let outs = self.drain();
        assert!(
            matches!(&outs[..], [Output::Ask { conn: c, ask: Ask::Manifest }] if *c == conn),
            "{outs:?}"
        );
        self.dl
            .handle_manifest(s, ManifestAnswer::Sent(Ok(self.m.clone())), self.now);
        let outs = self.drain();
        assert!(
            matches!(&outs[..], [Output::Ask { ask: Ask::Have, .. }]),
            "{outs:?}"
        );
        let asked = self.now;
        self.now += Duration::from_millis(rtt_ms);
        self.dl.handle_have(s, have, self.now);
        self.now = asked;
        self.drain()
    }

    fn join(&mut self, name: &str, conn: ConnId) -> Vec<Output> {
        self.join_with(name, conn, HaveAnswer::All, 0)
    }

    fn send(&mut self, name: &str, i: u64, data: Vec<u8>) -> Vec<Output> {
        let s = self.src(name);
        let answer = ChunkAnswer::Data { index: i, data };
        self.dl.handle_chunk(s, self.ix(i), answer, self.now);
        self.drain()
    }

    fn good(&mut self, name: &str, i: u64) -> Vec<Output> {
        let data = self.bytes(i);
        self.send(name, i, data)
    }

    fn bad(&mut self, name: &str, i: u64) -> Vec<Output> {
        let mut data = self.bytes(i);
        data[7] ^= 1;
        self.send(name, i, data)
    }

    fn tick(&mut self, ms: u64) -> Vec<Output> {
        self.at(ms);
        self.dl.handle_timeout(self.now);
        self.drain()
    }

    fn state(&self, i: u64) -> ChunkState {
        self.dl.sched.state(self.ix(i))
    }
}

fn conn(n: usize) -> ConnId {
    ConnId::fake(n)
}

/// The chunks asked over `c` in `outs`.
fn asked(outs: &[Output], c: ConnId) -> Vec<u64> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Ask {
                conn,
                ask: Ask::Chunks(chunks),
            } if *conn == c => Some(chunks.iter().map(|c| c.get())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn reports(outs: &[Output]) -> Vec<&Report> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn end(outs: &[Output]) -> Option<&End> {
    outs.iter().find_map(|o| match o {
        Output::End(e) => Some(e),
        _ => None,
    })
}

fn closed(outs: &[Output]) -> Vec<ConnId> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Close(c) => Some(*c),
            _ => None,
        })
        .collect()
}
