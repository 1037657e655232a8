"""Rebuildable projections: empty every projection table and replay the whole log through the same
projectors, then compare with what was there (`registry rebuild`; architecture §3, guarantee 7)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec

import registry.features  # noqa: F401 - every projector registered before replaying
from registry.eventlog import canonical, projection
from registry.eventlog.projection import PROJECTION_TABLES, EventRecord

BATCH = 5_000


class TableDifference(msgspec.Struct, kw_only=True, frozen=True):
    table: str
    only_before: int
    """Rows the projection held that the replay does not produce."""
    only_rebuilt: int
    """Rows the replay produces that the projection did not hold."""


class RebuildReport(msgspec.Struct, kw_only=True, frozen=True):
    events: int
    tables: int
    differences: list[TableDifference]
    applied: bool

    @property
    def identical(self) -> bool:
        return not self.differences


class _Rollback(Exception):
    pass


class EventNotReplayable(Exception):
    """An event in the log cannot be replayed: its bytes are not an event document, or its data is not the
    shape its type's projector reads. Only someone writing to the table as its owner could have put it
    there; the rebuild stops at it and changes nothing."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event {position} cannot be replayed: {reason}")
        self.position = position
        self.reason = reason


_UNPROJECTABLE = (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError,
                  asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
"""What a projector raises on data of the wrong shape (a missing key, a string for a number, ...)."""


async def _replay(conn: asyncpg.Connection, position: int, raw: bytes) -> None:
    try:
        e = canonical.decode(raw)
    except canonical.UNDECODABLE as exc:
        raise EventNotReplayable(position, "its stored bytes are not an event document: "
                                           f"{canonical.malformed_reason(exc)}") from None
    try:
        await projection.apply(conn, EventRecord.of(e))
    except _UNPROJECTABLE as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0][:300]
        raise EventNotReplayable(position, f"its {e.type} data cannot be projected ({type(exc).__name__}: "
                                           f"{detail})") from None


async def _parents_first(conn: asyncpg.Connection, tables: list[str]) -> list[str]:
    """The projection tables ordered so that a table comes after every table it references."""
    rows = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent "
        "FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY($1::text[]) "
        "AND c.confrelid::regclass::text = ANY($1::text[]) AND c.conrelid <> c.confrelid", tables)
    parents = {t: {r["parent"] for r in rows if r["child"] == t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and parents[t] <= set(ordered)]
        if not ready:
            raise RuntimeError(f"projection tables reference each other in a cycle: {parents}")
        ordered.extend(ready)
    return ordered


async def rebuild(conn: asyncpg.Connection, *, apply: bool = False,
                  progress: Callable[[int], None] | None = None) -> RebuildReport:
    """Replay the log into empty projections in one transaction; keep the result only if `apply`.

    Run it while no command is being written (the writer's lock is taken, so writers wait). An event that
    cannot be replayed raises EventNotReplayable naming its position, and nothing changes.
    """
    tables = list(PROJECTION_TABLES)
    report: RebuildReport | None = None
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7301002)")  # the writer's lock: no writes meanwhile
            for table in tables:
                await conn.execute(f'CREATE TEMP TABLE "before_{table}" ON COMMIT DROP AS SELECT * FROM "{table}"')
            for table in reversed(await _parents_first(conn, tables)):
                await conn.execute(f'DELETE FROM "{table}"')
            events = 0
            position = -1
            while True:
                rows = await conn.fetch("SELECT position, canonical FROM event WHERE position > $1 "
                                        "ORDER BY position LIMIT $2", position, BATCH)
                for row in rows:
                    await _replay(conn, row["position"], bytes(row["canonical"]))
                events += len(rows)
                if progress is not None:
                    progress(len(rows))
                if len(rows) < BATCH:
                    break
                position = rows[-1]["position"]
            differences = []
            for table in tables:
                before = await conn.fetchval(
                    f'SELECT count(*) FROM (SELECT * FROM "before_{table}" EXCEPT ALL SELECT * FROM "{table}") d')
                after = await conn.fetchval(
                    f'SELECT count(*) FROM (SELECT * FROM "{table}" EXCEPT ALL SELECT * FROM "before_{table}") d')
                if before or after:
                    differences.append(TableDifference(table=table, only_before=before, only_rebuilt=after))
            report = RebuildReport(events=events, tables=len(tables), differences=differences, applied=apply)
            if not apply:
                raise _Rollback
    except _Rollback:
        pass
    assert report is not None
    return report
