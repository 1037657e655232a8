"""Projections: query tables kept by applying each event, in the transaction that appends it.

Each feature registers a projector per event type. The writer applies them as events are
staged, and a rebuild replays the whole log through the very same functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec


class EventRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What a projector sees of an event."""

    position: int
    stream: str
    type: str
    data: dict[str, Any]
    actor: str
    recorded_at: dt.datetime
    effective_date: dt.date | None

    @classmethod
    def of(cls, e: Any) -> EventRecord:
        """What a projector sees of a stored event (a CanonicalEvent read back from the log)."""
        return cls(position=e.position, stream=e.stream, type=e.type, data=e.data, actor=e.meta.actor,
                   recorded_at=e.recorded_at, effective_date=e.effective_date)


Projector = Callable[[asyncpg.Connection, EventRecord], Awaitable[None]]
BatchProjector = Callable[[asyncpg.Connection, list[EventRecord]], Awaitable[None]]
_PROJECTORS: dict[str, Projector] = {}
_BATCH_PROJECTORS: dict[str, BatchProjector] = {}
PROJECTION_TABLES: list[str] = []
"""Tables that are pure projections (emptied and refilled by a rebuild), in dependency order."""


def projects(*event_types: str) -> Callable[[Projector], Projector]:
    def register(fn: Projector) -> Projector:
        for event_type in event_types:
            if event_type in _PROJECTORS:
                raise RuntimeError(f"two projectors for {event_type}")
            _PROJECTORS[event_type] = fn
        return fn
    return register


def projects_in_batches(*event_types: str) -> Callable[[BatchProjector], BatchProjector]:
    """A second way to apply events that already have a projector: many at once, in log order.

    The writer may hold back such events of commands that read nothing from the projections and
    apply them together before anything reads (and before the batch commits); a rebuild applies the
    same events one at a time, and the tables must come out the same.
    """
    def register(fn: BatchProjector) -> BatchProjector:
        for event_type in event_types:
            if event_type not in _PROJECTORS:
                raise RuntimeError(f"{event_type} needs its one-by-one projector first")
            _BATCH_PROJECTORS[event_type] = fn
        return fn
    return register


def batch_projector(event_type: str) -> BatchProjector | None:
    return _BATCH_PROJECTORS.get(event_type)


def projection_tables(*tables: str) -> None:
    for table in tables:
        if table not in PROJECTION_TABLES:
            PROJECTION_TABLES.append(table)


async def apply(conn: asyncpg.Connection, record: EventRecord) -> None:
    projector = _PROJECTORS.get(record.type)
    if projector is not None:
        await projector(conn, record)
