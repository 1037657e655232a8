"""Reading the log: events after a position, by stream or type, and the whole log for verification."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import asyncpg
import msgspec

from registry.clock import SHANGHAI
from registry.eventlog import canonical
from registry.eventlog.model import StoredEvent
from registry.eventlog.verify import ChainVerifier, Finding, LogRow

_COLUMNS = ("position, stream_id, stream_version, event_type, schema_version, actor, recorded_at, "
            "effective_date, canonical, hash, prev_hash")


async def read_events(conn: asyncpg.Connection, *, after: int | None = None, stream: str | None = None,
                      event_type: str | None = None, actor: str | None = None,
                      since: dt.datetime | None = None, until: dt.datetime | None = None,
                      limit: int = 100) -> list[StoredEvent]:
    """Events with position > `after`, in log order, filtered by stream, type, actor and recorded time."""
    rows = await conn.fetch(
        "SELECT canonical, hash FROM event WHERE position > $1 "
        "AND ($2::text IS NULL OR stream_id = $2) AND ($3::text IS NULL OR event_type = $3) "
        "AND ($4::text IS NULL OR actor = $4) AND ($5::timestamptz IS NULL OR recorded_at >= $5) "
        "AND ($6::timestamptz IS NULL OR recorded_at < $6) ORDER BY position LIMIT $7",
        -1 if after is None else after, stream, event_type, actor, since, until, limit,
    )
    return [canonical.stored(bytes(r["canonical"]), bytes(r["hash"])) for r in rows]


async def position_at(conn: asyncpg.Connection, as_of: dt.date | None, at_position: int | None) -> int:
    """The log position a point-in-time read reflects: end of the business day, or as given."""
    if at_position is not None:
        return at_position
    if as_of is None:
        return await conn.fetchval("SELECT coalesce(max(position), -1) FROM event")
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), SHANGHAI)
    return await conn.fetchval("SELECT coalesce(max(position), -1) FROM event WHERE recorded_at < $1", end)


async def stream_version(conn: asyncpg.Connection, stream: str) -> int:
    """The stream's current version (-1: no events yet) — what a client sends back as If-Match."""
    version = await conn.fetchval("SELECT max(stream_version) FROM event WHERE stream_id = $1", stream)
    return -1 if version is None else version


async def head(conn: asyncpg.Connection) -> tuple[int, str | None]:
    """(number of events, hash of the last one)."""
    row = await conn.fetchrow("SELECT position, hash FROM event ORDER BY position DESC LIMIT 1")
    return (0, None) if row is None else (row["position"] + 1, bytes(row["hash"]).hex())


async def iter_rows(conn: asyncpg.Connection, start: int = 0, batch: int = 5000) -> AsyncIterator[LogRow]:
    position = start
    while True:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM event WHERE position >= $1 ORDER BY position LIMIT $2",
                                position, batch)
        for r in rows:
            yield msgspec.convert(dict(r), LogRow)
        if len(rows) < batch:
            return
        position = rows[-1]["position"] + 1


class VerifyReport(msgspec.Struct, kw_only=True, frozen=True):
    checked: int
    size: int
    ok: bool
    first_bad_position: int | None = None
    problem: str | None = None
    head_hash: str | None = None


async def verify_log(conn: asyncpg.Connection, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Recompute the chain over the whole stored log."""
    size = await conn.fetchval("SELECT count(*) FROM event")
    verifier = ChainVerifier()
    finding: Finding | None = None
    async for row in iter_rows(conn):
        finding = verifier.feed(row)
        if finding is not None:
            break
        if progress is not None:
            progress(1)
    if finding is None:
        last = await conn.fetchval("SELECT max(position) FROM event")
        if last is not None and last + 1 != size:
            finding = Finding(position=verifier.expected_position, problem="positions are not dense")
    return VerifyReport(
        checked=verifier.checked, size=size, ok=finding is None,
        first_bad_position=None if finding is None else finding.position,
        problem=None if finding is None else finding.problem,
        head_hash=verifier.previous_hash.hex() if verifier.checked else None,
    )
