"""Recompute the hash chain: every event's bytes, hash, link to its predecessor and position.

`ChainVerifier.feed` checks one row and names the first problem exactly; `feed_window` checks a
window of thousands with list-at-a-time operations, and a window it cannot accept is fed again row
by row, so the first bad position and its message are always the row-by-row verifier's.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

import msgspec

from registry.eventlog import canonical
from registry.eventlog.model import GENESIS_HASH, CanonicalEvent

try:
    from registry.eventlog import _fastchain as fastchain
except ImportError:  # installed without a C compiler: the Python verifier does all the work, more slowly
    fastchain = None  # type: ignore[assignment]


def compiled(fast: bool | None) -> bool:
    """Whether a verification uses the compiled fast path: by default when it was built; asking for
    it when it was not built is an error, not a silent fallback."""
    if fast and fastchain is None:
        raise RuntimeError("the compiled verifier (registry.eventlog._fastchain) was not built")
    return fastchain is not None if fast is None else fast


class LogRow(msgspec.Struct, kw_only=True, frozen=True):
    """One stored event as the verifier sees it: the indexed columns beside the canonical bytes."""

    position: int
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    actor: str
    recorded_at: dt.datetime
    effective_date: dt.date | None
    canonical: bytes
    hash: bytes
    prev_hash: bytes


class Finding(msgspec.Struct, kw_only=True, frozen=True):
    position: int
    problem: str


class ChainVerifier:
    """Feed rows in position order; the first problem found is kept, with its position."""

    def __init__(self, start_position: int = 0, previous_hash: bytes = GENESIS_HASH) -> None:
        self.expected_position = start_position
        self.previous_hash = previous_hash
        self.checked = 0
        self.finding: Finding | None = None

    def feed(self, row: LogRow) -> Finding | None:
        if self.finding is not None:
            return self.finding
        self.finding = self._check(row)
        if self.finding is None:
            self.checked += 1
            self.expected_position += 1
            self.previous_hash = row.hash
        return self.finding

    def feed_all(self, rows: Iterable[LogRow]) -> Finding | None:
        for row in rows:
            if self.feed(row) is not None:
                break
        return self.finding

    def feed_window(self, window: LogWindow) -> bool:
        """Accept a whole window at once when every event in it verifies (the state then advances as
        if each row had been fed). False: feed the window's rows one by one to name the first bad
        position and its problem."""
        if self.finding is not None or not window_intact(window, self.expected_position, self.previous_hash):
            return False
        if window.canonical:
            self.checked += len(window.canonical)
            self.expected_position += len(window.canonical)
            self.previous_hash = window.hash[-1]
        return True

    def accept(self, count: int, last_hash: bytes) -> None:
        """`count` more rows were verified elsewhere (the compiled fast path), the last with `last_hash`."""
        if count:
            self.checked += count
            self.expected_position += count
            self.previous_hash = last_hash

    def _check(self, row: LogRow) -> Finding | None:
        expected = self.expected_position

        def bad(problem: str) -> Finding:
            return Finding(position=expected, problem=problem)

        if row.position != expected:
            return bad(f"position {expected} is missing; the next stored event is at {row.position}")
        if canonical.digest(row.canonical) != row.hash:
            return bad("stored hash is not the SHA-256 of the stored bytes")
        if row.prev_hash != self.previous_hash:
            return bad("prev_hash does not match the previous event's hash")
        try:
            doc = canonical.decode(row.canonical)
        except canonical.UNDECODABLE as exc:
            return bad(f"stored bytes are not a canonical event: {canonical.malformed_reason(exc)}")
        if canonical.encode(doc) != row.canonical:
            return bad("stored bytes are not in canonical form")
        mismatches = [
            name for name, ours, theirs in (
                ("position", doc.position, row.position),
                ("stream", doc.stream, row.stream_id),
                ("version", doc.version, row.stream_version),
                ("type", doc.type, row.event_type),
                ("schema", doc.schema, row.schema_version),
                ("actor", doc.meta.actor, row.actor),
                ("recorded_at", doc.recorded_at, row.recorded_at),
                ("effective_date", doc.effective_date, row.effective_date),
                ("prev_hash", doc.prev_hash, row.prev_hash.hex()),
            ) if ours != theirs
        ]
        if mismatches:
            return bad(f"columns disagree with the hashed bytes: {', '.join(mismatches)}")
        return None


class LogWindow(msgspec.Struct, kw_only=True, frozen=True):
    """A run of stored events in position order, column by column: what `LogRow` holds, transposed."""

    position: Sequence[int]
    stream_id: Sequence[str]
    stream_version: Sequence[int]
    event_type: Sequence[str]
    schema_version: Sequence[int]
    actor: Sequence[str]
    recorded_at: Sequence[dt.datetime]
    effective_date: Sequence[dt.date | None]
    canonical: Sequence[bytes]
    hash: Sequence[bytes]
    prev_hash: Sequence[bytes]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> LogWindow:
        """From rows of the eleven `LogRow` fields in declaration order (database records, tuples)."""
        columns: list[Sequence[Any]] = list(zip(*rows)) if rows else [()] * len(cls.__struct_fields__)
        return cls(**dict(zip(cls.__struct_fields__, columns)))


class _Decoded(CanonicalEvent, gc=False):
    """The hashed document decoded exactly as `canonical.decode` does, but not tracked by the cycle
    collector: a window decodes thousands at once, and collections triggered by them cost more
    than the decoding."""


_decode_one = msgspec.json.Decoder(_Decoded).decode
_sorted_encoder = msgspec.json.Encoder(order="sorted")
_sha256 = hashlib.sha256
_position = attrgetter("position")
_prev_hex = attrgetter("prev_hash")
_actor = attrgetter("meta.actor")
_indexed = attrgetter("stream", "version", "type", "schema", "recorded_at", "effective_date")


def window_intact(window: LogWindow, expected_position: int, previous_hash: bytes) -> bool:
    """True only if `ChainVerifier` fed the window's rows one by one would accept every one.

    The same checks, each over the whole window with C-level list operations instead of row by
    row; False says only that something in the window is wrong (or unusual), not what or where.
    """
    n = len(window.canonical)
    if not n:
        return not window.position
    if list(window.position) != list(range(expected_position, expected_position + n)):
        return False
    hashes = list(window.hash)
    if [_sha256(c).digest() for c in window.canonical] != hashes:
        return False
    prev = list(window.prev_hash)
    if prev[0] != previous_hash or prev[1:] != hashes[:-1]:
        return False
    collecting = gc.isenabled()
    gc.disable()  # thousands of fresh objects would trigger collections that find nothing to free
    try:
        docs = list(map(_decode_one, window.canonical))
    except canonical.UNDECODABLE:
        return False
    finally:
        if collecting:
            gc.enable()
    # Each blob decoded alone (no trailing bytes), so the documents' encodings joined by commas can
    # equal the blobs joined by commas only if each encoding equals its own blob.
    if _sorted_encoder.encode(docs) != b"[" + b",".join(window.canonical) + b"]":
        return False
    return (list(map(_position, docs)) == list(window.position)
            and list(map(_indexed, docs)) == list(zip(window.stream_id, window.stream_version, window.event_type,
                                                      window.schema_version, window.recorded_at,
                                                      window.effective_date))
            and list(map(_actor, docs)) == list(window.actor)
            and list(map(_prev_hex, docs)) == list(map(bytes.hex, prev)))
