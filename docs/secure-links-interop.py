#!/usr/bin/env python3
"""Replays PROTOCOL.md §15.7 (the worked handshake and records) with Python's
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
# "p2p-secure-link" NUL, wire version 3 (u32 BE), capabilities 0 (u64 BE).
PROLOGUE = b"p2p-secure-link\0" + struct.pack(">IQ", 3, 0)

# §15.7.4-15.7.5 of PROTOCOL.md: each record is a 2-byte big-endian length and one Noise message.
MSG1 = "00208f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
MSG2 = ("0060358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662541583ca64fe0a934633"
        "b9d640282050a892e48438709ff5e6d0325c8b913d494b9b64d45dbf4568ecabc3a8dd2837f4c17d3b0240"
        "4e726593cc0be2b9006f2639")
MSG3 = ("00406d034ed58fad70ee83aec303f45764c4e8da1278fb67c6f51f18f48de847df330c7a65531d823eba4e"
        "0727dd072d5728e9f06aa724ccaa41a30da03de7e3ac67")
HASH = "1ce03bf8efa2a1577e5998bde364c60155d97034015a7515f35b2a71b6ba90d0"
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
