"""The window-at-a-time verification names the same first bad position, with the same problem, as
feeding every row to the row-by-row verifier — for each kind of tampering, at window edges too, both
with the compiled fast path (binary COPY checked in C) and with the Python window check."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from registry.db.database import Database
from registry.eventlog.model import GENESIS_HASH, EventMeta, NewEvent
from registry.eventlog.store import _COPY_SQL, CopyCheck, iter_rows, verify_log
from registry.eventlog.verify import ChainVerifier, fastchain
from registry.eventlog.writer import NO_STREAM

META = EventMeta(actor="op-1", role="operator", command="test")
WINDOW = 4
EVENTS = 14  # windows [0,4) [4,8) [8,12) and a partial [12,14)

Tamper = Callable[[asyncpg.Connection], Awaitable[None]]


@pytest.fixture(params=[True, False], ids=["compiled", "python"])
def fast(request: pytest.FixtureRequest) -> bool:
    return request.param


async def row_by_row(conn: asyncpg.Connection) -> tuple[int | None, str | None, int]:
    """The reference: every row fed to `ChainVerifier.feed`, as verification always worked."""
    verifier = ChainVerifier()
    async for row in iter_rows(conn):
        if verifier.feed(row) is not None:
            break
    finding = verifier.finding
    return (None if finding is None else finding.position, None if finding is None else finding.problem,
            verifier.checked)


async def fill(db: Database) -> None:
    for i in range(EVENTS):
        await db.writer.append(f"s-{i % 3}-{i}", NO_STREAM, [NewEvent(type="test.happened", data={"i": i})], META)


async def rewrite(owner: asyncpg.Connection, position: int, canonical: bytes) -> None:
    """New bytes for one event with a matching hash (the forger recomputes it)."""
    await owner.execute("UPDATE event SET canonical = $2, hash = $3 WHERE position = $1",
                        position, canonical, hashlib.sha256(canonical).digest())


async def canonical_of(owner: asyncpg.Connection, position: int) -> bytes:
    return bytes(await owner.fetchval("SELECT canonical FROM event WHERE position = $1", position))


def altered_bytes(position: int) -> Tamper:
    async def tamper(owner: asyncpg.Connection) -> None:
        await owner.execute("UPDATE event SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), "
                            "'\"i\":', '\"i\": '), 'UTF8') WHERE position = $1", position)
    return tamper


def deleted(position: int) -> Tamper:
    async def tamper(owner: asyncpg.Connection) -> None:
        await owner.execute("DELETE FROM event WHERE position = $1", position)
    return tamper


def swapped(position: int) -> Tamper:
    """The events at `position` and `position + 1` trade places."""
    async def tamper(owner: asyncpg.Connection) -> None:
        await owner.execute("UPDATE event SET position = 1000000 WHERE position = $1", position)
        await owner.execute("UPDATE event SET position = $1 WHERE position = $2", position, position + 1)
        await owner.execute("UPDATE event SET position = $1 WHERE position = 1000000", position + 1)
    return tamper


def column(position: int, assignment: str) -> Tamper:
    async def tamper(owner: asyncpg.Connection) -> None:
        await owner.execute(f"UPDATE event SET {assignment} WHERE position = $1", position)
    return tamper


def not_canonical(position: int) -> Tamper:
    """Same document, one insignificant space, and a hash recomputed over the new bytes."""
    async def tamper(owner: asyncpg.Connection) -> None:
        await rewrite(owner, position, (await canonical_of(owner, position)).replace(b'"data":', b'"data": ', 1))
    return tamper


def unsorted_keys(position: int) -> Tamper:
    async def tamper(owner: asyncpg.Connection) -> None:
        raw = await canonical_of(owner, position)
        await rewrite(owner, position, raw.replace(b'{"data":', b'{"effective_date":null,"data":', 1)
                      .replace(b',"effective_date":null', b'', 1))
    return tamper


def rehashed_chain(position: int) -> Tamper:
    """Altered bytes with the hash and every later link recomputed: only the link at `position`
    itself is left, since its prev_hash is in the hashed bytes of the next event."""
    async def tamper(owner: asyncpg.Connection) -> None:
        raw = await canonical_of(owner, position)
        await rewrite(owner, position, raw.replace(b'"i":', b'"i":1', 1))
        await owner.execute("UPDATE event SET prev_hash = (SELECT hash FROM event WHERE position = $1) "
                            "WHERE position = $1 + 1", position)
    return tamper


def garbage(position: int) -> Tamper:
    async def tamper(owner: asyncpg.Connection) -> None:
        await rewrite(owner, position, b"\xff not json")
    return tamper


CASES: dict[str, tuple[Tamper, int]] = {
    "altered bytes, first row of a window": (altered_bytes(4), 4),
    "altered bytes, last row of a window": (altered_bytes(7), 7),
    "altered bytes, first event": (altered_bytes(0), 0),
    "altered bytes, last event": (altered_bytes(EVENTS - 1), EVENTS - 1),
    "gap at the first row of a window": (deleted(8), 8),
    "gap at the last row of a window": (deleted(11), 11),
    "gap in the partial last window": (deleted(12), 12),
    "last event deleted (only a signed checkpoint can tell)": (deleted(EVENTS - 1), None),
    "reordered pair inside a window": (swapped(5), 5),
    "reordered pair across windows": (swapped(7), 7),
    "stream column disagrees": (column(4, "stream_id = 'other'"), 4),
    "version column disagrees": (column(7, "stream_version = stream_version + 1"), 7),
    "type column disagrees": (column(9, "event_type = 'test.other'"), 9),
    "schema column disagrees": (column(3, "schema_version = 2"), 3),
    "actor column disagrees": (column(8, "actor = 'op-2'"), 8),
    "recorded_at column disagrees": (column(11, "recorded_at = recorded_at + interval '1 microsecond'"), 11),
    "effective_date column disagrees": (column(6, "effective_date = date '2026-01-01'"), 6),
    "prev_hash column disagrees with the bytes and the chain": (column(4, "prev_hash = sha256(prev_hash)"), 4),
    "non-canonical bytes with a correct hash, first row of a window": (not_canonical(4), 4),
    "non-canonical bytes with a correct hash, last row of a window": (not_canonical(11), 11),
    "unsorted keys with a correct hash": (unsorted_keys(2), 2),
    "bytes that are not an event, with a correct hash": (garbage(8), 8),
    "altered event with the chain recomputed after it": (rehashed_chain(7), 8),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_windows_name_the_same_first_bad_position_as_row_by_row(db: Database, owner: asyncpg.Connection,
                                                                      case: str, fast: bool) -> None:
    tamper, expected = CASES[case]
    await fill(db)
    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await tamper(owner)
    async with db.connection() as conn:
        reference = await row_by_row(conn)
        for window in (WINDOW, 5, 4096):
            report = await verify_log(conn, window=window, fast=fast)
            assert (report.first_bad_position, report.problem, report.checked) == reference, window
            assert report.ok is (expected is None)
    assert reference[0] == expected


async def test_an_untampered_log_verifies_whole_at_every_window_size(db: Database, fast: bool) -> None:
    await fill(db)
    seen: list[int] = []
    async with db.connection() as conn:
        head = bytes(await conn.fetchval("SELECT hash FROM event WHERE position = $1", EVENTS - 1)).hex()
        for window in (1, WINDOW, 5, EVENTS, 4096):
            report = await verify_log(conn, seen.append, window=window, fast=fast)
            assert (report.ok, report.checked, report.size, report.head_hash) == (True, EVENTS, EVENTS, head)
            assert sum(seen) == EVENTS
            seen.clear()


async def test_an_empty_log_verifies(db: Database, fast: bool) -> None:
    async with db.connection() as conn:
        report = await verify_log(conn, window=WINDOW, fast=fast)
    assert (report.ok, report.checked, report.head_hash) == (True, 0, None)


async def test_an_untampered_log_is_never_fed_row_by_row(db: Database, monkeypatch: pytest.MonkeyPatch,
                                                          fast: bool) -> None:
    await fill(db)
    fed: list[int] = []
    original = ChainVerifier.feed
    monkeypatch.setattr(ChainVerifier, "feed", lambda self, row: fed.append(row.position) or original(self, row))
    async with db.connection() as conn:
        assert (await verify_log(conn, window=7, fast=fast)).ok
    assert fed == []


async def test_a_copy_stream_cut_anywhere_is_checked_as_if_whole(db: Database) -> None:
    """The driver hands COPY output over in pieces of any size: rows and the header may be split."""
    if fastchain is None:
        pytest.skip("the compiled verifier was not built")
    await fill(db)
    async with db.connection() as conn:
        parts: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            parts.append(chunk)

        await conn.copy_from_query(_COPY_SQL, 0, EVENTS, output=keep, format="binary")
        data = b"".join(parts)
        head = bytes(await conn.fetchval("SELECT hash FROM event WHERE position = $1", EVENTS - 1))
    cuts = [[k] for k in range(1, len(data))] + [list(range(7, len(data), 97)), list(range(1, len(data), 13))]
    for cut in cuts:
        check = CopyCheck(0, GENESIS_HASH, leaves=True)
        for a, b in zip([0, *cut], [*cut, len(data)]):
            await check.feed(data[a:b])
        assert (check.complete, check.position, check.previous_hash) == (True, EVENTS, head), cut
        assert len(check.leaves) == 32 * EVENTS
    truncated = CopyCheck(0, GENESIS_HASH)
    await truncated.feed(data[:-2])  # no trailer: never complete
    assert not truncated.complete and truncated.position == EVENTS
