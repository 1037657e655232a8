"""Recompute the hash chain: every event's bytes, hash, link to its predecessor and position."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import msgspec

from registry.eventlog import canonical
from registry.eventlog.model import GENESIS_HASH


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

    def _check(self, row: LogRow) -> Finding | None:
        expected = self.expected_position

        def bad(problem: str) -> Finding:
            return Finding(position=expected, problem=problem)

        if row.position != expected:
            return bad(f"position {expected} is missing; the next stored event is at {row.position}")
        if hashlib.sha256(row.canonical).digest() != row.hash:
            return bad("stored hash is not the SHA-256 of the stored bytes")
        if row.prev_hash != self.previous_hash:
            return bad("prev_hash does not match the previous event's hash")
        try:
            doc = canonical.decode(row.canonical)
        except msgspec.DecodeError as exc:
            return bad(f"stored bytes are not a canonical event: {exc}")
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
