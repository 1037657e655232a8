"""Checkpoints are C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519, verified against a pinned key and origin."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.audit.checkpoint import (
    Checkpoint, CheckpointInvalid, CheckpointSigner, NoteVerifier, key_id, load_or_create_key, open_note, parse_body,
    verify_checkpoint,
)

ORIGIN = "registry.tjotc.example/log"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = CheckpointSigner(KEY, origin=ORIGIN)
ROOT = hashlib.sha256(b"root").digest()


def test_a_checkpoint_is_origin_size_and_base64_root_then_a_blank_line_and_an_em_dash_signature_line() -> None:
    note = SIGNER.sign(42, ROOT)
    body, _, signatures = note.partition("\n\n")
    assert body + "\n" == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert signatures.endswith("\n") and signatures.count("\n") == 1
    dash, name, encoded = signatures[:-1].split(" ")
    assert dash == "\u2014" and name == ORIGIN
    raw = base64.b64decode(encoded)
    public = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4] == key_id(ORIGIN, public)
    assert len(raw) == 4 + 64
    KEY.public_key().verify(raw[4:], (body + "\n").encode())  # the signature covers the body and its last newline


def test_the_verifier_key_is_name_plus_key_id_hex_plus_base64_of_0x01_and_the_public_key() -> None:
    public = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    encoded = base64.b64encode(bytes([1]) + public).decode()
    assert SIGNER.vkey == f"{ORIGIN}+{key_id(ORIGIN, public).hex()}+{encoded}"
    assert NoteVerifier.parse(SIGNER.vkey) == SIGNER.verifier


def test_notes_match_the_go_sumdb_note_reference_example() -> None:
    """golang.org/x/mod/sumdb/note documents this key and signed message; we must produce the same bytes."""
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    signer = CheckpointSigner(Ed25519PrivateKey.from_private_bytes(seed), origin="unused", name="PeterNeumann")
    assert signer.vkey == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    expected = text + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
                       "qdngotpRZb6KE6RyyBwJnAM=\n")
    assert signer.sign_note(text) == expected
    assert open_note(expected, NoteVerifier.parse(signer.vkey)) == text


def test_a_signed_checkpoint_verifies_with_the_pinned_key_and_origin() -> None:
    checkpoint = verify_checkpoint(SIGNER.sign(7, ROOT), origin=ORIGIN, vkey=SIGNER.vkey)
    assert checkpoint == Checkpoint(origin=ORIGIN, size=7, root_hash=ROOT)


def test_another_origin_or_another_key_is_refused() -> None:
    note = SIGNER.sign(7, ROOT)
    with pytest.raises(CheckpointInvalid, match="not 'other.example/log'"):
        verify_checkpoint(note, origin="other.example/log", vkey=SIGNER.vkey)
    stranger = CheckpointSigner(Ed25519PrivateKey.generate(), origin=ORIGIN)
    with pytest.raises(CheckpointInvalid, match="not signed by"):
        verify_checkpoint(note, origin=ORIGIN, vkey=stranger.vkey)


def test_a_note_signed_by_someone_else_too_still_verifies_and_a_bad_signature_of_ours_refuses() -> None:
    witness = CheckpointSigner(Ed25519PrivateKey.generate(), origin=ORIGIN, name="witness.example")
    note = SIGNER.sign(7, ROOT)
    cosigned = note + witness.sign_note(Checkpoint(origin=ORIGIN, size=7, root_hash=ROOT).body()).split("\n\n")[1]
    assert verify_checkpoint(cosigned, origin=ORIGIN, vkey=SIGNER.vkey).size == 7
    assert verify_checkpoint(cosigned, origin=ORIGIN, vkey=witness.vkey).size == 7
    ours = note.split("\n\n")[1]
    forged = ours[:-6] + ("A" if ours[-6] != "A" else "B") + ours[-5:]
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verify_checkpoint(note.split("\n\n")[0] + "\n\n" + forged, origin=ORIGIN, vkey=SIGNER.vkey)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 2**40), root=st.binary(min_size=32, max_size=32), byte=st.integers(0, 10_000),
       bit=st.integers(0, 7))
def test_any_single_flipped_bit_in_a_checkpoint_is_caught(size: int, root: bytes, byte: int, bit: int) -> None:
    note = SIGNER.sign(size, root).encode()
    assert verify_checkpoint(note, origin=ORIGIN, vkey=SIGNER.vkey) == Checkpoint(origin=ORIGIN, size=size,
                                                                                  root_hash=root)
    i = byte % len(note)
    flipped = note[:i] + bytes([note[i] ^ (1 << bit)]) + note[i + 1:]
    with pytest.raises(CheckpointInvalid):
        verify_checkpoint(flipped, origin=ORIGIN, vkey=SIGNER.vkey)


@pytest.mark.parametrize("body", [
    "registry.tjotc.example/log\n7\n",  # no root
    "registry.tjotc.example/log\n07\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
    "registry.tjotc.example/log\n-7\n" + base64.b64encode(ROOT).decode() + "\n",
    "registry.tjotc.example/log\n7\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short root
    "registry.tjotc.example/log\n7\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n",  # not std base64
    "\n7\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
    "registry.tjotc.example/log\n7\n" + base64.b64encode(ROOT).decode(),  # no final newline
])
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointInvalid):
        parse_body(body)


def test_extension_lines_are_kept() -> None:
    body = f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\nextra one\n"
    note = SIGNER.sign_note(body)
    assert verify_checkpoint(note, origin=ORIGIN, vkey=SIGNER.vkey).extensions == ("extra one",)


@pytest.mark.parametrize("vkey", [
    "no-plus-signs",
    "a+b+c+d",
    "name+zzzzzzzz+AQ==",
    SIGNER.vkey.replace("+", "+0", 1)[:-1],  # id of the wrong length
    SIGNER.vkey[:-4] + "AAA=",  # key does not match its id
])
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(CheckpointInvalid):
        NoteVerifier.parse(vkey)


def test_key_names_with_spaces_or_plus_are_refused() -> None:
    for name in ("with space", "a+b", "tab\tname"):
        with pytest.raises(CheckpointInvalid):
            CheckpointSigner(KEY, origin=ORIGIN, name=name)


def test_the_key_is_read_from_a_pem_setting_or_made_once_in_the_data_folder(tmp_path: Path) -> None:
    made = load_or_create_key(tmp_path)
    path = tmp_path / "keys" / "checkpoint-ed25519.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(tmp_path)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert made.public_key().public_bytes(*raw) == again.public_key().public_bytes(*raw)
    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    assert load_or_create_key(tmp_path, pem).public_key().public_bytes(*raw) == \
        KEY.public_key().public_bytes(*raw)


def test_the_signer_never_shows_its_private_key() -> None:
    seed = KEY.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    shown = repr(SIGNER) + SIGNER.vkey + SIGNER.sign(1, ROOT)
    assert seed.hex() not in shown and base64.b64encode(seed).decode() not in shown
