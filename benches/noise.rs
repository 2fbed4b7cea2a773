//! `cargo bench --bench noise [-- --seconds S]`: what encrypting a link costs on this machine
//! (issue 14). Each row seals and opens 64 KiB records (65,519 bytes of plaintext, one Noise
//! transport message of 65,535 bytes) through snow, for ChaCha20-Poly1305 and AES-256-GCM,
//! with snow's two crypto back ends (RustCrypto, its default; ring, which `p2p` uses), then
//! through `p2p::secure::Transport` with the parameters we chose. Throughput is plaintext
//! MB/s for encrypt + decrypt of each record, and each row is also given as a ratio to two
//! baselines measured in the same run: copying the record (memcpy) and SHA-256 of it (what a
//! download already pays per byte).

use sha2::Digest;
use snow::resolvers::{BoxedCryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use std::hint::black_box;
use std::time::{Duration, Instant};

const RECORD: usize = 65535 - 16;

/// Runs `f` on one record at a time for about `time`; plaintext bytes per second.
fn rate(time: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..8 {
        f(); // warm up caches and lazily detected CPU features
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    (n * RECORD as u64) as f64 / start.elapsed().as_secs_f64()
}

fn resolver(ring: bool) -> BoxedCryptoResolver {
    if ring {
        // ring has no X25519 for snow's static keys: the handshake falls back to RustCrypto.
        Box::new(FallbackResolver::new(
            Box::new(RingResolver),
            Box::new(DefaultResolver),
        ))
    } else {
        Box::new(DefaultResolver)
    }
}

/// A finished XX handshake between two fresh key pairs: (initiator, responder).
fn pair(params: &str, ring: bool) -> (snow::TransportState, snow::TransportState) {
    let build = |initiator: bool| {
        let p: snow::params::NoiseParams = params.parse().expect("a valid Noise name");
        let key = snow::Builder::with_resolver(p.clone(), resolver(ring))
            .generate_keypair()
            .expect("the resolver makes keys");
        let b = snow::Builder::with_resolver(p, resolver(ring))
            .local_private_key(&key.private)
            .expect("set once");
        if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .expect("XX needs only the local key")
    };
    let (mut i, mut r) = (build(true), build(false));
    let (mut buf, mut scratch) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut scratch).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut scratch).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut scratch).unwrap();
    (
        i.into_transport_mode().unwrap(),
        r.into_transport_mode().unwrap(),
    )
}

fn snow_rate(time: Duration, params: &str, ring: bool, plain: &[u8]) -> f64 {
    let (mut tx, mut rx) = pair(params, ring);
    let (mut wire, mut back) = (vec![0u8; 65535], vec![0u8; 65535]);
    rate(time, || {
        let n = tx.write_message(plain, &mut wire).unwrap();
        let m = rx.read_message(&wire[..n], &mut back).unwrap();
        black_box(&back[..m]);
    })
}

/// Our own transport (records behind their 2-byte length, the buffers it manages).
fn transport_rate(time: Duration, plain: &[u8]) -> f64 {
    use p2p::identity::Identity;
    use p2p::secure::{Handshake, Prologue, Role};
    let prologue = Prologue {
        version: 2,
        capabilities: 0,
    };
    let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let mut i = Handshake::new(Role::Initiator, &a, &prologue, None);
    let mut r = Handshake::new(Role::Responder, &b, &prologue, None);
    r.handle_input(&i.poll_transmit().unwrap()).unwrap();
    i.handle_input(&r.poll_transmit().unwrap()).unwrap();
    r.handle_input(&i.poll_transmit().unwrap()).unwrap();
    let (mut tx, mut rx) = (i.finish().unwrap().transport, r.finish().unwrap().transport);
    let (mut wire, mut back) = (Vec::with_capacity(65537), Vec::with_capacity(65535));
    rate(time, || {
        wire.clear();
        back.clear();
        tx.seal(plain, &mut wire).unwrap();
        rx.open(&wire, &mut back).unwrap();
        black_box(&back);
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<f64>().expect("--seconds takes a number"))
        .unwrap_or(1.0);
    let time = Duration::from_secs_f64(seconds);
    let plain: Vec<u8> = (0..RECORD).map(|i| (i * 31 + 7) as u8).collect();

    let mut copy = vec![0u8; RECORD];
    let memcpy = rate(time, || {
        copy.copy_from_slice(black_box(&plain));
        black_box(&copy);
    });
    let sha = rate(time, || {
        black_box(sha2::Sha256::digest(black_box(&plain)));
    });
    let mut rows: Vec<(String, f64)> = vec![
        ("memcpy (baseline)".into(), memcpy),
        ("SHA-256 (baseline)".into(), sha),
    ];
    for cipher in ["ChaChaPoly", "AESGCM"] {
        for ring in [false, true] {
            let params = format!("Noise_XX_25519_{cipher}_SHA256");
            let backend = if ring { "ring" } else { "RustCrypto" };
            let r = snow_rate(time, &params, ring, &plain);
            rows.push((format!("{cipher}, {backend}"), r));
        }
    }
    rows.push((
        format!("p2p::secure::Transport ({})", p2p::secure::NOISE_PARAMS),
        transport_rate(time, &plain),
    ));

    println!("64 KiB records, encrypt + decrypt, one core, {seconds} s each");
    println!();
    println!("| what | MB/s | × memcpy | × SHA-256 |");
    println!("|---|---:|---:|---:|");
    for (what, r) in rows {
        println!(
            "| {what} | {:.0} | {:.3} | {:.2} |",
            r / 1e6,
            r / memcpy,
            r / sha
        );
    }
}
