"""Reading the log: events after a position, by stream or type, and the whole log for verification."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import msgspec

from registry.clock import SHANGHAI
from registry.eventlog import canonical
from registry.eventlog.model import StoredEvent
from registry.eventlog.verify import ChainVerifier, Finding, LogRow, LogWindow, compiled, fastchain

_COLUMNS = ("position, stream_id, stream_version, event_type, schema_version, actor, recorded_at, "
            "effective_date, canonical, hash, prev_hash")


VERIFY_WINDOW = 16384
"""Positions per window of the bulk verification."""

_WINDOW_SQL = f"SELECT {_COLUMNS} FROM event WHERE position >= $1 AND position < $2 ORDER BY position"
_COPY_SQL = ("SELECT position::int8, stream_id, stream_version::int8, event_type, schema_version::int8, actor, "
             "recorded_at, effective_date, canonical, hash, prev_hash "
             "FROM event WHERE position >= $1 AND position < $2 ORDER BY position")


async def read_events(conn: asyncpg.Connection, *, after: int | None = None, stream: str | None = None,
                      event_type: str | None = None, actor: str | None = None,
                      since: dt.datetime | None = None, until: dt.datetime | None = None,
                      limit: int = 100) -> list[StoredEvent]:
    """Events with position > `after`, in log order, filtered by stream, type, actor and recorded time."""
    rows = await conn.fetch(
        f"SELECT {canonical.STORED_COLUMNS} FROM event WHERE position > $1 "
        "AND ($2::text IS NULL OR stream_id = $2) AND ($3::text IS NULL OR event_type = $3) "
        "AND ($4::text IS NULL OR actor = $4) AND ($5::timestamptz IS NULL OR recorded_at >= $5) "
        "AND ($6::timestamptz IS NULL OR recorded_at < $6) ORDER BY position LIMIT $7",
        -1 if after is None else after, stream, event_type, actor, since, until, limit,
    )
    return [canonical.stored(r) for r in rows]


SCAN_LIMIT = 5_000
"""Events read per request at most while looking for those a filter without a column keeps."""


async def read_matching(conn: asyncpg.Connection, keep: Callable[[StoredEvent], bool], *, after: int | None,
                        limit: int, scan: int = SCAN_LIMIT, **filters: Any) -> tuple[list[StoredEvent], int | None]:
    """Up to `limit` events after `after` (and `filters`, as for `read_events`) that `keep` accepts, read
    in log order until the page is full or `scan` events were read. Returns the page and the cursor
    to continue from: the last event read, so a long stretch of events `keep` refuses gives a short
    page, never a skipped event; None when the log (so filtered) has nothing more."""
    found: list[StoredEvent] = []
    position, scanned = after, 0
    batch = max(limit, 500)
    while scanned < scan:
        events = await read_events(conn, after=position, limit=batch, **filters)
        for event in events:
            position = event.position
            if keep(event):
                found.append(event)
                if len(found) == limit:
                    return found, position
        scanned += len(events)
        if len(events) < batch:
            return found, None
    return found, position


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


async def verify_log(conn: asyncpg.Connection, progress: Callable[[int], None] | None = None, *,
                     window: int = VERIFY_WINDOW, fast: bool | None = None) -> VerifyReport:
    """Recompute the chain over the whole stored log.

    Windows of `window` positions are read and checked at once. With the compiled fast path (`fast`,
    by default whenever it was built) a window arrives as one binary COPY and is checked in C while
    it streams in (`CopyCheck`); without it, as rows checked with list-at-a-time Python
    (`ChainVerifier.feed_window`) while the next window is already being read. A window that does
    not pass whole, and whatever follows the last full window, are fed row by row, so the first bad
    position and its problem are always those of the row-by-row verifier.
    """
    fast = compiled(fast)
    size = await conn.fetchval("SELECT count(*) FROM event")
    verifier = ChainVerifier()
    finding: Finding | None = None
    start = 0
    ahead: asyncio.Future[LogWindow] | None = None if fast else asyncio.ensure_future(_window(conn, start, window))
    while True:
        if fast:
            check = await copy_check(conn, start, window, verifier.expected_position, verifier.previous_hash)
            accepted = check.complete
            if accepted:
                verifier.accept(check.position - start, check.previous_hash)
            full = accepted and check.position == start + window
        else:
            assert ahead is not None
            current = await ahead
            full = len(current.canonical) == window
            ahead = asyncio.ensure_future(_window(conn, start + window, window)) if full else None
            await asyncio.sleep(0)  # the next query is on its way before the checking starts
            accepted = verifier.feed_window(current)
        if accepted:
            if progress is not None and verifier.expected_position > start:
                progress(verifier.expected_position - start)
            start += window
            if full:
                continue
        else:
            if ahead is not None:
                await ahead  # one query at a time on the connection; the window is fetched again later
                ahead = None
            finding = await _verify_rows(conn, verifier, start, window, progress)
            if finding is None and verifier.expected_position == start + window:
                start += window
                if not fast:
                    ahead = asyncio.ensure_future(_window(conn, start, window))
                continue
        break
    if finding is None and verifier.finding is None:
        # whatever lies past the last full window (normally nothing) is fed row by row
        finding = await _verify_rows(conn, verifier, verifier.expected_position, None, progress)
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


class CopyCheck:
    """A window's binary COPY output checked by the compiled verifier as it streams in.

    `feed` is the COPY's sink. Each chunk is checked before the next is read, so PostgreSQL fills the
    socket meanwhile and the chunks arrive large (the driver's cost is per chunk); between chunks
    only an unfinished last row is kept. After the COPY, `complete` says
    whether every row up to the trailer was accepted; `position` and `previous_hash` are where the
    chain stands after the accepted rows, `leaves` their leaf hashes when asked for."""

    def __init__(self, position: int, previous_hash: bytes, *, leaves: bool = False) -> None:
        self.position = position
        self.previous_hash = previous_hash
        self.want_leaves = leaves
        self.state = "more"
        self._pending = b""
        self._header = True
        self._leaves: list[bytes] = []

    async def feed(self, chunk: bytes) -> None:
        if self.state != "more":
            return  # a row was refused (the window is checked again row by row), or the trailer was seen
        data = self._pending + chunk if self._pending else chunk
        self.state, self.position, self.previous_hash, consumed, leaves = fastchain.verify_copy(
            data, self.position, self.previous_hash, self.want_leaves, self._header)
        if consumed:
            self._header = False
        self._pending = data[consumed:]
        if leaves:
            self._leaves.append(leaves)

    @property
    def complete(self) -> bool:
        return self.state == "done" and not self._pending

    @property
    def leaves(self) -> bytes:
        return b"".join(self._leaves)


async def copy_check(conn: asyncpg.Connection, start: int, size: int, position: int, previous_hash: bytes, *,
                     leaves: bool = False) -> CopyCheck:
    """Events [start, start + size) read as one binary COPY and checked by the compiled verifier as
    they arrive, continuing the chain from (position, previous_hash)."""
    check = CopyCheck(position, previous_hash, leaves=leaves)
    await conn.copy_from_query(_COPY_SQL, start, start + size, output=check.feed, format="binary")
    return check


async def _verify_rows(conn: asyncpg.Connection, verifier: ChainVerifier, start: int, limit: int | None,
                       progress: Callable[[int], None] | None) -> Finding | None:
    """Feed rows from `start` one by one: at most `limit` of them, or all that remain."""
    fed = 0
    async for row in iter_rows(conn, start, batch=limit or 5000):
        if verifier.feed(row) is not None:
            return verifier.finding
        if progress is not None:
            progress(1)
        fed += 1
        if limit is not None and fed == limit:
            break
    return None


async def _window(conn: asyncpg.Connection, start: int, size: int) -> LogWindow:
    return LogWindow.of(await conn.fetch(_WINDOW_SQL, start, start + size))

