"""Canonical bytes and hashes: the same event always encodes to the same bytes."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from registry.eventlog.model import CanonicalEvent, EventMeta, StoredEvent

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(CanonicalEvent)


class NotCanonical(ValueError):
    pass


def encode(event: CanonicalEvent) -> bytes:
    """UTF-8 JSON with keys sorted at every level and no insignificant whitespace."""
    return _encoder.encode(event)


def digest(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()


def decode(canonical: bytes) -> CanonicalEvent:
    return _decoder.decode(canonical)


UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError)
"""What `decode` raises on stored bytes that are not an event document (bytes that are not UTF-8 among them)."""


_PLAIN = (str, int, bool, type(None))


def check_data(value: Any, path: str = "data") -> None:
    """Event data holds only strings, integers, booleans, null, lists and objects.

    Floats are refused: money is integer fen and ratios are decimal strings, so a float in an
    event is a bug that would make the hash depend on a binary rounding.
    """
    # Fast path on exact types (every event is checked on the write path); anything unusual is judged,
    # and named by its path, by the careful walk below.
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is dict:
            if not all(type(key) is str for key in item):
                break
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        else:
            break
    else:
        return
    _check_carefully(value, path)


def _check_carefully(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical(f"{path}: keys must be strings")
            _check_carefully(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_carefully(item, f"{path}[{i}]")
    elif value is None or isinstance(value, (str, bool, int)):
        return
    else:
        raise NotCanonical(f"{path}: {type(value).__name__} is not allowed in event data")


STORED_COLUMNS = ("position, stream_id, stream_version, event_type, schema_version, actor, recorded_at, "
                  "effective_date, prev_hash, canonical, hash")
"""What `stored` reads from an event row."""


def stored(row: Any) -> StoredEvent:
    """An event row (STORED_COLUMNS) as read back; a row whose bytes do not decode is flagged, never an error."""
    raw, hash_ = bytes(row["canonical"]), bytes(row["hash"]).hex()
    try:
        e = decode(raw)
    except UNDECODABLE as exc:
        return StoredEvent(
            position=row["position"], stream=row["stream_id"], version=row["stream_version"], type=row["event_type"],
            schema=row["schema_version"], data={}, meta=EventMeta(actor=row["actor"], role="", command=""),
            recorded_at=row["recorded_at"], effective_date=row["effective_date"], prev_hash=bytes(row["prev_hash"]).hex(),
            hash=hash_, malformed=f"the stored bytes are not an event document: {malformed_reason(exc)}",
            canonical_text=raw.decode("utf-8", "backslashreplace"))
    return StoredEvent(
        position=e.position, stream=e.stream, version=e.version, type=e.type, schema=e.schema,
        data=e.data, meta=e.meta, recorded_at=e.recorded_at, effective_date=e.effective_date,
        prev_hash=e.prev_hash, hash=hash_,
    )


def malformed_reason(exc: BaseException) -> str:
    """One line saying why bytes did not decode as an event document."""
    if isinstance(exc, RecursionError):
        return "it nests too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8"
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
