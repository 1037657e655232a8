"""A regulator's offline check: an export file, checkpoint files and the verifier key — no database, no service."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.audit import offline, store
from registry.audit.checkpoint import CheckpointSigner
from registry.audit.export import export_jsonl
from registry.db.database import Database
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.writer import NO_STREAM

ORIGIN = "registry.tjotc.example/log"
SIGNER = CheckpointSigner(Ed25519PrivateKey.generate(), origin=ORIGIN)
META = EventMeta(actor="op-1", role="operator", command="test")


class Files:
    def __init__(self, folder: Path) -> None:
        self.export = folder / "log.jsonl"
        self.old_checkpoint = folder / "checkpoint-6.txt"
        self.checkpoint = folder / "checkpoint-12.txt"
        self.key = folder / "checkpoint.vkey"
        self.proof = folder / "consistency-6-12.json"

    def verify(self, *extra: str) -> list[str]:
        return ["--export", str(self.export), "--checkpoint", str(self.checkpoint), "--origin", ORIGIN,
                "--key", str(self.key), "-q", *extra]


async def append(db: Database, start: int, n: int) -> None:
    for i in range(start, start + n):
        await db.writer.append(f"s-{i}", NO_STREAM,
                               [NewEvent(type="test.happened", data={"i": i, "memo": "认股权 aaaa"})], META)


@pytest.fixture
async def files(db: Database, tmp_path: Path) -> Files:
    """What a regulator keeps: two checkpoints signed as the log grew, the proof between them, an export, the key."""
    f = Files(tmp_path)
    await append(db, 0, 6)
    f.old_checkpoint.write_text((await store.sign_checkpoint_if_grown(db, SIGNER)).note)
    await append(db, 6, 6)
    f.checkpoint.write_text((await store.sign_checkpoint_if_grown(db, SIGNER)).note)
    async with db.connection() as conn:
        proof = await store.consistency_proof(conn, 6, 12)
        with f.export.open("wb") as out:
            await export_jsonl(conn, out)
    f.proof.write_bytes(msgspec.json.encode({"old_size": 6, "new_size": 12, "proof": [h.hex() for h in proof.proof]}))
    f.key.write_text(SIGNER.vkey + "\n")
    return f


def flip_in_line(path: Path, line: int, old: bytes, new: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new, 1)
    path.write_bytes(b"".join(lines))


def test_an_intact_export_verifies_against_its_checkpoint(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(files.verify()) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 12 events, chain intact") and "first 12" in out


def test_a_flipped_byte_in_an_event_fails_naming_its_position(files: Files,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    flip_in_line(files.export, 7, b"aaaa", b"aaa`")  # 'a' is 0x61, '`' is 0x60: one bit
    assert offline.main(files.verify()) == 1
    err = capsys.readouterr().err
    assert "FAILED at position 7" in err and "SHA-256" in err


def test_a_truncated_export_fails_at_the_first_missing_position(files: Files,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    files.export.write_bytes(b"".join(files.export.read_bytes().splitlines(keepends=True)[:9]))
    assert offline.main(files.verify()) == 1
    assert "FAILED at position 9" in capsys.readouterr().err


def test_a_checkpoint_from_another_key_or_another_log_fails(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = CheckpointSigner(Ed25519PrivateKey.generate(), origin=ORIGIN)
    args = files.verify()
    args[args.index("--key") + 1] = stranger.vkey
    assert offline.main(args) == 1
    assert "not signed by" in capsys.readouterr().err
    args = files.verify()
    args[args.index("--origin") + 1] = "other.example/log"
    assert offline.main(args) == 1
    assert "not 'other.example/log'" in capsys.readouterr().err


def test_the_newer_checkpoint_is_proven_to_extend_the_older(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    both = files.verify("--old-checkpoint", str(files.old_checkpoint), "--consistency-proof", str(files.proof))
    assert offline.main(both) == 0
    assert "extends the tree of 6" in capsys.readouterr().out
    doc = msgspec.json.decode(files.proof.read_bytes())
    doc["proof"][0] = doc["proof"][0][:-1] + ("0" if doc["proof"][0][-1] != "0" else "1")
    files.proof.write_bytes(msgspec.json.encode(doc))
    assert offline.main(both) == 1
    assert "does not verify" in capsys.readouterr().err


def test_unusable_input_exits_2(files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(["--export", str(files.export), "--checkpoint", str(tmp_path / "missing"),
                         "--key", str(files.key)]) == 2
    assert offline.main(["--export", str(files.export), "--checkpoint", str(files.checkpoint),
                         "--key", "not-a-key"]) == 2
    assert offline.main(["--export", str(tmp_path / "missing.jsonl"), "--checkpoint", str(files.checkpoint),
                         "--key", str(files.key)]) == 2
    assert "cannot verify" in capsys.readouterr().err


def test_any_single_flipped_bit_in_the_export_or_the_checkpoint_is_caught(files: Files) -> None:
    export, note, vkey = files.export.read_bytes(), files.checkpoint.read_bytes(), SIGNER.vkey
    assert offline.verify_export([*export.splitlines(keepends=True)], note.decode(), origin=ORIGIN, vkey=vkey).ok

    def flipped(data: bytes, at: int, bit: int) -> bytes:
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(at=st.integers(0, 1 << 20), bit=st.integers(0, 7), in_export=st.booleans())
    def one_flip(at: int, bit: int, in_export: bool) -> None:
        lines = (flipped(export, at, bit) if in_export else export).splitlines(keepends=True)
        checkpoint = flipped(note, at, bit) if not in_export else note
        report = offline.verify_export(lines, checkpoint, origin=ORIGIN, vkey=vkey)
        assert not report.ok, (at % len(export if in_export else note), bit, report)

    one_flip()


@pytest.mark.skipif(offline.fastchain is None, reason="the compiled verifier was not built")
def test_the_compiled_path_reports_exactly_what_the_python_path_reports(files: Files, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same report for the intact export and for any flipped bit or lost line, read in chunks that
    split lines anywhere; both checkpoints' roots are recomputed on the way."""
    export, vkey = files.export.read_bytes(), SIGNER.vkey
    notes = [files.old_checkpoint.read_text(), files.checkpoint.read_text()]
    target = tmp_path / "variant.jsonl"

    def both(data: bytes, chunk: int) -> offline.Report:
        target.write_bytes(data)
        monkeypatch.setattr(offline, "CHUNK", chunk)
        fast = offline.verify_export(target, notes, origin=ORIGIN, vkey=vkey, fast=True, threads=3)
        one_thread = offline.verify_export(target, notes, origin=ORIGIN, vkey=vkey, fast=True, threads=1)
        slow = offline.verify_export(target, notes, origin=ORIGIN, vkey=vkey, fast=False)
        assert fast == one_thread == slow
        return fast

    for chunk in (1 << 20, 97, len(export) // 2):
        assert both(export, chunk).ok
    walked_in_python: list[bytes] = []
    original = offline._Walk.line
    monkeypatch.setattr(offline._Walk, "line", lambda self, raw, progress: walked_in_python.append(raw)
                        or original(self, raw, progress))
    assert offline.verify_export(files.export, notes, origin=ORIGIN, vkey=vkey, fast=True).ok
    assert walked_in_python == []  # the intact export never left the compiled path
    monkeypatch.setattr(offline._Walk, "line", original)
    lines = export.splitlines(keepends=True)
    assert not both(b"".join(lines[:5] + lines[6:]), 4096).ok
    assert both(b"".join(lines) + b"\n\n", 64).ok  # blank lines at the end are not events

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
    @given(at=st.integers(0, len(export) - 1), bit=st.integers(0, 7), chunk=st.sampled_from([61, 500, 1 << 20]))
    def one_flip(at: int, bit: int, chunk: int) -> None:
        data = export[:at] + bytes([export[at] ^ (1 << bit)]) + export[at + 1:]
        assert not both(data, chunk).ok

    one_flip()
