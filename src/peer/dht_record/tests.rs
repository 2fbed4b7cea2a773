use super::*;
use ed25519_dalek::{Signature, VerifyingKey};

/// RFC 7748 §6.1: Alice's X25519 private key (its public key is checked in `keypair.rs`).
const ALICE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";

fn alice() -> crate::identity::Identity {
    crate::identity::Identity::from_private(hex::decode(ALICE).unwrap().try_into().unwrap())
}

fn verifies(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(msg, &Signature::from_bytes(sig)).is_ok()
}

/// The worked example of PROTOCOL.md §17: every byte of it comes out of this code.
#[test]
fn the_worked_example_of_protocol_md_holds() {
    let id = alice();
    let public = ed25519_public(id.public_key()).unwrap();
    let record = Record {
        addrs: vec!["192.0.2.7:4000".parse().unwrap()],
        at: 1_700_000_000,
    };
    let value = encode_record(&record).unwrap();
    let item = signed_record(id.private_key(), &value, 1_700_000_000);
    let cid = "cid1:0000000000000000000000000000000000000000000000000000000000000000";
    let got = [
        hex::encode(public),
        hex::encode(&value),
        hex::encode(bep44_signable(RECORD_SALT, 1_700_000_000, &value)),
        hex::encode(item.signature()),
        hex::encode(item.target().as_bytes()),
        hex::encode(content_info_hash(cid)),
    ];
    let want = [
        "8120f299c37ae1ca64a179f638a6c6fafde968f1c33705e28c413c7579d9884f",
        "a3617601656164647273816e3139322e302e322e373a343030306261741a6553f100",
        "343a73616c7431313a7032702070656572207631333a736571693137303030303030303065313a7633343aa3617601656164647273816e3139322e302e322e373a343030306261741a6553f100",
        "389ffc685f7c5f2cf039f56761e738b8b3ab0b390207a708b1ddf4846a056417e2a1818593ff156021cf7207d39b9476e51fa0a7e6b223330dcd1ea0eddaff0d",
        "273993b8db2cdb5c2ce43bf53c74d28f8505b200",
        "8484f789395e4a12783731975a9cb46c2ee507cc",
    ];
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w);
    }
}

/// The XEdDSA public key is what anyone computes from the peer id, and signatures verify as
/// plain Ed25519 under it, for keys whose Edwards point has either sign bit.
#[test]
fn xeddsa_signatures_verify_as_ed25519_under_the_key_of_the_peer_id() {
    let mut signs = [false; 2];
    for _ in 0..32 {
        let id = crate::identity::Identity::generate().unwrap();
        let k = Scalar::from_bytes_mod_order(clamp_integer(*id.private_key()));
        let sign = EdwardsPoint::mul_base(&k).compress().to_bytes()[31] >> 7;
        signs[sign as usize] = true;
        let public = ed25519_public(id.peer_id().public_key()).unwrap();
        let sig = xeddsa_sign(id.private_key(), b"a message");
        assert!(verifies(&public, b"a message", &sig), "sign bit {sign}");
        assert!(!verifies(&public, b"another message", &sig));
        assert_eq!(
            sig,
            xeddsa_sign(id.private_key(), b"a message"),
            "deterministic"
        );
    }
    assert_eq!(signs, [true, true], "both sign bits were tried");
}

#[test]
fn a_record_signed_by_one_key_fails_under_another_and_a_tampered_value_fails() {
    let (a, b) = (alice(), crate::identity::Identity::generate().unwrap());
    let value = encode_record(&Record {
        addrs: vec!["127.0.0.1:4000".parse().unwrap()],
        at: 5,
    })
    .unwrap();
    let item = signed_record(a.private_key(), &value, 5);
    let signable = bep44_signable(RECORD_SALT, 5, &value);
    let key_a = ed25519_public(a.public_key()).unwrap();
    let key_b = ed25519_public(b.public_key()).unwrap();
    assert_eq!(item.key(), &key_a);
    assert!(verifies(&key_a, &signable, item.signature()));
    assert!(
        !verifies(&key_b, &signable, item.signature()),
        "another key"
    );
    let mut tampered = value.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let signable = bep44_signable(RECORD_SALT, 5, &tampered);
    assert!(
        !verifies(&key_a, &signable, item.signature()),
        "tampered value"
    );
    let signable = bep44_signable(RECORD_SALT, 6, &value);
    assert!(
        !verifies(&key_a, &signable, item.signature()),
        "another seq"
    );
    // The item's target is BEP 44's: SHA-1 of the key and the salt, which a finder computes.
    assert_eq!(
        item.target(),
        &mainline::MutableItem::target_from_key(&key_a, Some(RECORD_SALT))
    );
}

#[test]
fn records_round_trip_and_hostile_ones_are_refused() {
    let record = Record {
        addrs: vec![
            "127.0.0.1:4000".parse().unwrap(),
            "[2001:db8::1]:4001".parse().unwrap(),
        ],
        at: 1234,
    };
    let bytes = encode_record(&record).unwrap();
    assert_eq!(parse_record(&bytes).unwrap(), record);
    // Undialable addresses are left out when writing; none left is no record.
    let only_wild = Record {
        addrs: vec![
            "0.0.0.0:4000".parse().unwrap(),
            "1.2.3.4:0".parse().unwrap(),
        ],
        at: 1,
    };
    assert_eq!(encode_record(&only_wild), None);

    let cbor = |v: &ciborium::Value| {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    };
    use ciborium::Value as V;
    let map = |entries: Vec<(&str, V)>| {
        V::Map(
            entries
                .into_iter()
                .map(|(k, v)| (V::Text(k.into()), v))
                .collect(),
        )
    };
    let addrs = |list: &[&str]| V::Array(list.iter().map(|a| V::Text(a.to_string())).collect());
    let good = map(vec![
        ("v", V::from(1)),
        ("addrs", addrs(&["1.2.3.4:5"])),
        ("at", V::from(9)),
    ]);
    assert!(parse_record(&cbor(&good)).is_ok());
    let refused = [
        map(vec![
            ("v", V::from(2)),
            ("addrs", addrs(&["1.2.3.4:5"])),
            ("at", V::from(9)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&[])),
            ("at", V::from(9)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["1.2.3.4:0"])),
            ("at", V::from(9)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["0.0.0.0:5"])),
            ("at", V::from(9)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["224.0.0.1:5"])),
            ("at", V::from(9)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["host:5"])),
            ("at", V::from(9)),
        ]),
        map(vec![("v", V::from(1)), ("addrs", addrs(&["1.2.3.4:5"]))]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["1.2.3.4:5"])),
            ("at", V::from(9)),
            ("extra", V::from(1)),
        ]),
        map(vec![
            ("v", V::from(1)),
            ("addrs", addrs(&["1.2.3.4:5"; 9])),
            ("at", V::from(9)),
        ]),
        V::Array(vec![V::from(1)]),
    ];
    for (i, v) in refused.iter().enumerate() {
        assert!(parse_record(&cbor(v)).is_err(), "case {i} was accepted");
    }
    let mut trailing = cbor(&good);
    trailing.push(0);
    assert!(parse_record(&trailing).is_err(), "trailing bytes");
    let mut deep = vec![0x81u8; 10_000];
    deep.push(0);
    assert!(parse_record(&deep).is_err(), "deep nesting");
    assert!(
        parse_record(&vec![0u8; MAX_RECORD_LEN + 1]).is_err(),
        "too long"
    );
    // Duplicates are read once.
    let dup = map(vec![
        ("v", V::from(1)),
        ("addrs", addrs(&["1.2.3.4:5", "1.2.3.4:5"])),
        ("at", V::from(9)),
    ]);
    assert_eq!(parse_record(&cbor(&dup)).unwrap().addrs.len(), 1);
}

/// Files and folders are announced under different info-hashes, and none is a plain hash of
/// the id (which a torrent's could be).
#[test]
fn content_info_hashes_carry_the_prefix_and_the_kind() {
    let hex = "ab".repeat(32);
    let file = content_info_hash(&format!("cid1:{hex}"));
    let folder = content_info_hash(&format!("tree1:{hex}"));
    assert_ne!(file, folder);
    let plain: [u8; 32] = Sha256::digest(format!("cid1:{hex}").as_bytes()).into();
    assert_ne!(&plain[..20], &file);
}
