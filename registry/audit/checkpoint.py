"""Signed checkpoints: tree heads in the C2SP `tlog-checkpoint` format, signed as C2SP signed notes (Ed25519).

A checkpoint's body is three lines — the log's origin, the tree size in decimal, the root hash in
base64 — and the note carries, after a blank line, one signature line per signer:
`— <key name> <base64(key id ‖ Ed25519 signature)>`, where the key id is the first 4 bytes of
SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key). Verifiers pin the origin and the verifier key
`<name>+<key id hex>+<base64(0x01 ‖ public key)>`, so a regulator who kept a checkpoint can later
check it, and a newer one, without trusting the service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from registry.access import tokens

ED25519 = 0x01
"""Signature type byte of Ed25519 in signed notes."""
SIGNATURE_PREFIX = "\u2014 "
"""Each signature line starts with an em dash (U+2014) and a space."""
MAX_SIGNATURES = 100
KEY_FILE = Path("keys") / "checkpoint-ed25519.pem"
_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})")


class CheckpointInvalid(ValueError):
    """A note or checkpoint that does not parse, is not signed by the pinned key, or names another log."""


class Checkpoint(msgspec.Struct, kw_only=True, frozen=True):
    """A tree head as a checkpoint body states it."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)


# -- keys ---------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def check_key_name(name: str) -> str:
    """Key names are non-empty UTF-8 with no whitespace and no '+' (the vkey separator)."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise CheckpointInvalid(f"{name!r} is not a valid key name (non-empty, no spaces, no '+')")
    return name


class NoteVerifier(msgspec.Struct, kw_only=True, frozen=True):
    """A verifier key: who signs (name), which key (id), and the Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Read `<name>+<key id hex>+<base64(0x01 ‖ public key)>`, checking the id matches the key."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself hold "+"
        if len(parts) != 3:
            raise CheckpointInvalid("a verifier key reads <name>+<key id hex>+<base64 key>")
        name, id_hex, encoded = parts
        check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
            raise CheckpointInvalid("the verifier key's id is not 8 lowercase hex digits")
        raw = _b64(encoded, "the verifier key")
        if len(raw) != 33 or raw[0] != ED25519:
            raise CheckpointInvalid("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        verifier = cls(name=name, key_id=bytes.fromhex(id_hex), public_key=raw[1:])
        if key_id(name, verifier.public_key) != verifier.key_id:
            raise CheckpointInvalid("the verifier key's id does not match its name and public key")
        return verifier

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public_key).decode()}"

    def verifies(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class CheckpointSigner:
    """Signs this market's tree heads. The private key stays here: only the verifier key is ever shown."""

    def __init__(self, key: Ed25519PrivateKey, *, origin: str, name: str | None = None) -> None:
        if not origin or "\n" in origin:
            raise ValueError("the log origin is one non-empty line")
        self._key = key
        self.origin = origin
        self.name = check_key_name(name or origin)
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = NoteVerifier(name=self.name, key_id=key_id(self.name, public), public_key=public)

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def sign(self, size: int, root_hash: bytes) -> str:
        """The signed note of the checkpoint (origin, size, root)."""
        return self.sign_note(Checkpoint(origin=self.origin, size=size, root_hash=root_hash).body())

    def sign_note(self, text: str) -> str:
        _check_text(text)
        signature = self._key.sign(text.encode())
        line = f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(self.verifier.key_id + signature).decode()}\n"
        return f"{text}\n{line}"

    def __repr__(self) -> str:  # never the key
        return f"CheckpointSigner(origin={self.origin!r}, vkey={self.vkey!r})"


def load_or_create_key(data_dir: Path, pem: str | None = None) -> Ed25519PrivateKey:
    """The checkpoint signing key: from `pem` (a setting) or `<data_dir>/keys/checkpoint-ed25519.pem`."""
    return tokens.load_or_create_key(data_dir, pem, filename=Path(KEY_FILE).name)


# -- opening notes and checkpoints ----------------------------------------------------------------


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """The note's text, if `verifier` signed it; unknown signers' lines are ignored, a bad one of ours refuses."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointInvalid("the note is not UTF-8") from None
    if any(ch < " " and ch != "\n" for ch in note):
        raise CheckpointInvalid("the note holds control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointInvalid("the note has no signature block (a blank line, then signature lines)")
    text, block = note[:split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise CheckpointInvalid("the signature block does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointInvalid(f"the note carries more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointInvalid(f"malformed signature line {line!r}")
        fields = line[len(SIGNATURE_PREFIX):].split(" ")
        if len(fields) != 2:
            raise CheckpointInvalid(f"malformed signature line {line!r}")
        name, encoded = fields
        check_key_name(name)
        raw = _b64(encoded, "a signature")
        if len(raw) < 5:
            raise CheckpointInvalid("a signature is shorter than its key id")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue  # someone else's signature (a witness, say): not ours to judge
        if len(raw) != 4 + 64 or not verifier.verifies(text.encode(), raw[4:]):
            raise CheckpointInvalid(f"the signature by {name} does not verify")
        verified = True
    if not verified:
        raise CheckpointInvalid(f"the note is not signed by {verifier.name} (key id {verifier.key_id.hex()})")
    return text


def parse_body(text: str) -> Checkpoint:
    """A checkpoint body: origin, decimal size and base64 root hash lines, then any extension lines."""
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointInvalid("a checkpoint has an origin, a size and a root hash line")
    origin, size, root, *extensions = lines
    if not origin:
        raise CheckpointInvalid("the checkpoint's origin line is empty")
    if not _SIZE.fullmatch(size):
        raise CheckpointInvalid(f"the tree size {size!r} is not a decimal number")
    root_hash = _b64(root, "the root hash")
    if len(root_hash) != 32:
        raise CheckpointInvalid("the root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointInvalid("the checkpoint has an empty extension line")
    return Checkpoint(origin=origin, size=int(size), root_hash=root_hash, extensions=tuple(extensions))


def verify_checkpoint(note: str | bytes, *, origin: str, vkey: str | NoteVerifier) -> Checkpoint:
    """The checkpoint in `note`, if signed by the pinned key and naming the pinned log origin."""
    verifier = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.parse(vkey)
    checkpoint = parse_body(open_note(note, verifier))
    if checkpoint.origin != origin:
        raise CheckpointInvalid(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointInvalid("note text is non-empty lines, each ending in a newline, without control characters")


def _b64(encoded: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointInvalid(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != encoded:
        raise CheckpointInvalid(f"{what} is not canonical base64")
    return raw
