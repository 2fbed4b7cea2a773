#!/usr/bin/env python3
"""Replays docs/secure-links-draft.md §7 (the worked handshake and records) with Python's
`noiseprotocol` package, an implementation that shares nothing with ours, and checks every byte.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install noiseprotocol
    /tmp/venv/bin/python docs/secure-links-interop.py

Prints "ok" and exits 0 when the transcript matches; an assertion names the first difference.
"""
import struct
import warnings
from noise.connection import NoiseConnection, Keypair

PARAMS = b"Noise_XX_25519_AESGCM_SHA256"
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
E_ALICE = bytes(range(0x00, 0x20))
E_BOB = bytes(range(0x20, 0x40))
# "p2p-secure-link" NUL, wire version 2 (u32 BE), capabilities 0 (u64 BE).
PROLOGUE = b"p2p-secure-link\0" + struct.pack(">IQ", 2, 0)

# §7.4-7.5 of the draft: each record is a 2-byte big-endian length and one Noise message.
MSG1 = "00208f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
MSG2 = ("0060358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662541583ca64fe0a9346"
        "33b9d640282050a892e48438709ff5e6d0325c8b913d494befec10a04f78dfcba35a359294d1d3a8efe3"
        "6206a91f407ad5a5a336005263a7")
MSG3 = ("00406d034ed58fad70ee83aec303f45764c4e8da1278fb67c6f51f18f48de847df33680a1b13b374e165"
        "e8296a5eca2e1f2d0197279aed1738cd7048b4d2f4d98718")
HASH = "b28ded846278f4c06c7f44d443833189b38d7fba5160d358e45f3d0798fcfc82"
HEARTBEAT = bytes.fromhex("0000000a69486561727462656174")  # frame: u32 length + CBOR "Heartbeat"
REC_A_TO_B = "001e3f00abd0af7705b4561ae89b548e45ad2e2f5c66350eaaef35095a1fd65a"
REC_B_TO_A = "001e37e7119a49d161107152464e07218d983efb5ae1bb1e113c8b937148c2f0"


warnings.filterwarnings("ignore", "One of ephemeral keypairs")  # fixed on purpose here


def side(initiator, static, ephemeral):
    c = NoiseConnection.from_name(PARAMS)
    c.set_as_initiator() if initiator else c.set_as_responder()
    c.set_keypair_from_private_bytes(Keypair.STATIC, static)
    c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    c.set_prologue(PROLOGUE)
    c.start_handshake()
    return c


def record(message):
    return struct.pack(">H", len(message)) + bytes(message)


def unrecord(hex_text):
    raw = bytes.fromhex(hex_text)
    (n,) = struct.unpack(">H", raw[:2])
    assert n == len(raw) - 2, "record length"
    return raw[2:]


a, b = side(True, ALICE, E_ALICE), side(False, BOB, E_BOB)
for sender, receiver, expected in [(a, b, MSG1), (b, a, MSG2), (a, b, MSG3)]:
    sent = record(sender.write_message(b""))
    assert sent.hex() == expected, f"handshake message differs:\n{sent.hex()}\n{expected}"
    assert receiver.read_message(unrecord(expected)) == b"", "handshake payloads are empty"
assert a.handshake_finished and b.handshake_finished
assert a.get_handshake_hash().hex() == HASH == b.get_handshake_hash().hex()
assert record(a.encrypt(HEARTBEAT)).hex() == REC_A_TO_B
assert b.decrypt(unrecord(REC_A_TO_B)) == HEARTBEAT
assert record(b.encrypt(HEARTBEAT)).hex() == REC_B_TO_A
assert a.decrypt(unrecord(REC_B_TO_A)) == HEARTBEAT
print("ok")
