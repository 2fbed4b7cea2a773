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

/// Receiving 256 KiB `Chunk` frames through our transport, timed on the receiving side only
/// (opening the records, assembling the frame, making the message): the frame decoder with
/// whole chunks (what the reactor runs: the data opened straight into the chunk's buffer) or
/// without (the frame assembled in the decoder's buffer, the data copied out by
/// `decode_message`). The sender seals each frame as `Conn::queue` does: the head in a record of
/// its own. Plaintext bytes of data per second of receiving.
fn chunk_receive_rate(time: Duration, whole_chunks: bool) -> f64 {
    use p2p::identity::Identity;
    use p2p::secure::{Handshake, Prologue, Role};
    use p2p::wire::{FrameDecoder, Message, chunk_frame_head, chunk_head_cut};
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
    const DATA: usize = 256 * 1024;
    let mut frame = chunk_frame_head(1, 0, DATA);
    frame.extend((0..DATA).map(|i| (i * 13) as u8));
    let head = chunk_head_cut(&frame);
    assert!(head > 0);
    let mut decoder = if whole_chunks {
        FrameDecoder::with_whole_chunks()
    } else {
        FrameDecoder::new()
    };
    let mut wire = Vec::with_capacity(DATA + 4096);
    let mut receive = |decoder: &mut FrameDecoder| -> Duration {
        wire.clear();
        tx.seal(&frame[..head], &mut wire).unwrap();
        tx.seal(&frame[head..], &mut wire).unwrap();
        let start = Instant::now();
        // In pieces of about a socket read.
        for piece in wire.chunks(64 * 1024) {
            rx.open(piece, decoder).unwrap();
        }
        let msg = match decoder.take_frame().unwrap().unwrap() {
            p2p::wire::Frame::Body(body) => p2p::wire::decode_message(body).unwrap(),
            chunk => chunk.decode().unwrap(),
        };
        let elapsed = start.elapsed();
        let Message::Chunk { data, .. } = msg else {
            panic!("not a chunk")
        };
        assert_eq!(data.len(), DATA);
        p2p::wire::recycle_chunk_buffer(black_box(data));
        elapsed
    };
    for _ in 0..8 {
        receive(&mut decoder);
    }
    let (mut spent, mut n, wall) = (Duration::ZERO, 0u64, Instant::now());
    while wall.elapsed() < time {
        spent += receive(&mut decoder);
        n += 1;
    }
    (n * DATA as u64) as f64 / spent.as_secs_f64()
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

    let copied = chunk_receive_rate(time, false);
    let whole = chunk_receive_rate(time, true);

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
    println!();
    println!("256 KiB chunk frames received (open + frame + message), receiving side only");
    println!();
    println!("| decoder | MB/s | × copied out |");
    println!("|---|---:|---:|");
    println!(
        "| frame in the decoder's buffer, data copied out | {:.0} | 1.000 |",
        copied / 1e6
    );
    println!(
        "| whole chunks: data opened into its own buffer | {:.0} | {:.3} |",
        whole / 1e6,
        whole / copied
    );
}
