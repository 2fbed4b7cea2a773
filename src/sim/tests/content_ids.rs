//! Content ids against a lying seeder (issue 13): a peer that lists a file under its true
//! name, size, content id and SHA-256, but answers `GetManifest` with the chunk hashes of
//! other bytes of the same length and serves those bytes. Before content ids, `get NAME` beside
//! one honest seeder fetched the whole file from the liar now and then and failed at the end,
//! the honest source dropped for a manifest that "differs".

use super::pseudo_random;
use crate::peer::event::{Event, Warning};
use crate::peer::first_flight::first_flight_len;
use crate::sim::script::{FakeEvent, FakeScript};
use crate::sim::{NodeId, PeerSpec, Sim};
use crate::tracker::TrackerConfig;
use std::time::Duration;

const CHUNK: usize = 262_144;

/// Chunk requests the fake saw.
fn chunk_requests(events: &[FakeEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, FakeEvent::Request(_, kind) if kind == "GetChunk"))
        .count()
}

/// Whether `node` reported `liar` for a forged manifest (as a warning or a dropped source).
fn reported(sim: &Sim, node: NodeId, liar: &str) -> bool {
    sim.events(node).iter().any(|(_, e)| match e {
        Event::Warning(Warning::ForgedManifest { peer, .. }) => peer == liar,
        Event::SourceDropped { peer, reason, .. } => peer == liar && reason.contains("forged"),
        _ => false,
    })
}

/// Beside an honest seeder, whichever of the two is asked first (the names order them) and
/// whether the file is asked for by name, by content id or by SHA-256: every download ends
/// byte-identical, nothing the liar sent is kept, it is asked for no chunk beyond the first
/// flight (sent right behind the `GetManifest`, before the manifest could be checked), and it
/// is reported.
#[test]
fn a_lying_seeder_never_sinks_a_swarm_download() {
    // Larger than a first flight, so the second source is needed too.
    let content = pseudo_random(25 * CHUNK + 777, 13);
    let mut forged = content.clone();
    for b in forged.iter_mut().step_by(4099) {
        *b ^= 0x5A;
    }
    let id = crate::peer::index::fixture::cid(&content);
    let sha = crate::wire::Sha256::of(&content).to_hex();
    let queries = [
        "f.bin".to_string(),
        id.to_string(),
        id.to_string()[..5 + 12]
            .to_uppercase()
            .replacen("CID1", "cid1", 1),
        sha[..12].to_string(),
    ];
    let first_flight = first_flight_len(content.len() as u64) as usize;
    for (liar, honest) in [("Aaron", "Zelda"), ("Zelda", "Aaron")] {
        for query in &queries {
            let mut sim = Sim::new();
            sim.add_tracker(TrackerConfig::default());
            let mut script = FakeScript::default();
            script.share_forged("f.bin", &content, &forged);
            script.chunks = Box::new(FakeScript::honest(forged.clone()));
            let (_, fake) = sim.add_fake_peer(liar, script);
            sim.add_peer(PeerSpec::new(honest).file("f.bin", &content));
            let commands = format!("wait-peer {liar} 10\nwait-peer {honest} 10\nget {query}\n");
            let bob = sim.add_peer(PeerSpec::new("Bob").batch(&commands));
            let code = sim.run_to_exit(bob, Duration::from_secs(120));
            let case = format!("liar {liar}, get {query}");
            assert_eq!(code, 0, "{case}\n{}", sim.diagnostics(bob));
            let got = std::fs::read(sim.dirs(bob).downloads.join("f.bin")).unwrap();
            assert!(got == content, "{case}: f.bin differs from the original");
            let asked = chunk_requests(&fake.events());
            assert!(
                asked <= first_flight,
                "{case}: asked the liar for {asked} chunks"
            );
            assert!(
                reported(&sim, bob, liar),
                "{case}: the liar was not reported\n{}",
                sim.diagnostics(bob)
            );
        }
    }
}

/// Asked of the liar alone, the manifest is refused before any chunk is taken (only the first
/// flight was asked, behind the `GetManifest`): the command fails with the reason, and nothing
/// stands under the file's name.
#[test]
fn a_manifest_that_does_not_make_the_id_is_refused_before_any_chunk() {
    let content = pseudo_random(3 * CHUNK + 5, 14);
    let forged = pseudo_random(content.len(), 15);
    let mut sim = Sim::new();
    sim.add_tracker(TrackerConfig::default());
    let mut script = FakeScript::default();
    script.share_forged("f.bin", &content, &forged);
    script.chunks = Box::new(FakeScript::honest(forged.clone()));
    let (_, fake) = sim.add_fake_peer("Mallory", script);
    let bob = sim.add_peer(PeerSpec::new("Bob").batch("wait-peer Mallory 10\nget Mallory f.bin\n"));
    let code = sim.run_to_exit(bob, Duration::from_secs(60));
    assert_ne!(code, 0, "{}", sim.diagnostics(bob));
    let stderr = sim.stderr(bob).join("\n");
    assert!(
        stderr.contains("Mallory sent a bad manifest") && stderr.contains("cid1:"),
        "{stderr}"
    );
    let asked = chunk_requests(&fake.events());
    assert!(
        asked <= first_flight_len(content.len() as u64) as usize,
        "{asked} chunks asked"
    );
    assert!(!sim.dirs(bob).downloads.join("f.bin").exists());
}
