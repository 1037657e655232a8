"""The shapes of events: what a command asks to append, and what the log stores."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

GENESIS_HASH = bytes(32)
"""prev_hash of position 0: the chain starts from 32 zero bytes."""


class NewEvent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An event a command wants to append: past-tense dotted type, JSON-builtin data."""

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    effective_date: dt.date | None = None


class EventMeta(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Who wrote an event, in which role, why, and under which request."""

    actor: str
    role: str
    command: str
    request_id: str | None = None
    idempotency_key: str | None = None
    reason: str | None = None


class CanonicalEvent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The exact document that is hashed; its JSON (sorted keys, no spaces) is stored as `canonical`."""

    position: int
    stream: str
    version: int
    type: str
    schema: int
    data: dict[str, Any]
    meta: EventMeta
    recorded_at: dt.datetime
    effective_date: dt.date | None
    prev_hash: str


class StoredEvent(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """An event as read back: the canonical document plus its hash.

    An event whose stored bytes are not a well-formed event document (only someone writing to the table
    as its owner could put one there) is still shown: its columns, empty data, `malformed` saying what is
    wrong, and `canonical_text`, its bytes as text (bytes that are not UTF-8 as `\\x..` escapes).
    """

    position: int
    stream: str
    version: int
    type: str
    schema: int
    data: dict[str, Any]
    meta: EventMeta
    recorded_at: dt.datetime
    effective_date: dt.date | None
    prev_hash: str
    hash: str
    malformed: str | None = None
    canonical_text: str | None = None
