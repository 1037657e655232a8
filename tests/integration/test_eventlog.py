"""The event log's guarantees, against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from registry.db.database import Database
from registry.errors import RuleViolation
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.store import read_events, verify_log
from registry.eventlog.writer import NO_STREAM, Idempotency, IdempotencyKeyReused, StreamVersionConflict

META = EventMeta(actor="op-1", role="operator", command="test")


def happened(i: int) -> list[NewEvent]:
    return [NewEvent(type="test.happened", data={"i": i})]


async def positions(db: Database) -> list[int]:
    async with db.connection() as conn:
        return [r["position"] for r in await conn.fetch("SELECT position FROM event ORDER BY position")]


async def test_500_concurrent_appends_to_distinct_streams_get_positions_0_to_499(db: Database) -> None:
    results = await asyncio.gather(*(db.writer.append(f"s-{i}", NO_STREAM, happened(i), META) for i in range(500)))
    assert sorted(r.first_position for r in results) == list(range(500))
    assert await positions(db) == list(range(500))
    async with db.connection() as conn:
        assert (await verify_log(conn)).ok


async def test_only_one_of_50_concurrent_appends_at_the_same_expected_version_succeeds(db: Database) -> None:
    await db.writer.append("series-1", NO_STREAM, happened(0), META)
    outcomes = await asyncio.gather(*(db.writer.append("series-1", 0, happened(i), META) for i in range(50)),
                                    return_exceptions=True)
    succeeded = [o for o in outcomes if not isinstance(o, BaseException)]
    conflicts = [o for o in outcomes if isinstance(o, StreamVersionConflict)]
    assert len(succeeded) == 1 and len(conflicts) == 49
    assert conflicts[0].figures == {"stream": "series-1", "expected_version": 0, "actual_version": 1}
    assert await positions(db) == [0, 1]


async def test_a_refused_command_in_the_middle_of_a_batch_leaves_no_gap_and_no_projection_row(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (n int)")  # not visible to the writer

    async def command(i: int):
        async def handler(ctx):
            await ctx.append(f"s-{i}", NO_STREAM, happened(i))
            await ctx.conn.execute("SELECT set_config('registry.test', $1, true)", str(i))
            if i % 3 == 1:
                raise RuleViolation("refused on purpose", i=i)
            return {"i": i}
        return await db.writer.execute(handler, META)

    outcomes = await asyncio.gather(*(command(i) for i in range(30)), return_exceptions=True)
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, RuleViolation)]
    assert refused == [i for i in range(30) if i % 3 == 1]
    assert await positions(db) == list(range(20))
    async with db.connection() as conn:
        streams = {r["stream_id"] for r in await conn.fetch("SELECT stream_id FROM event")}
        assert streams == {f"s-{i}" for i in range(30) if i % 3 != 1}
        assert (await verify_log(conn)).ok


async def test_a_command_failing_in_the_database_does_not_sink_the_others(db: Database) -> None:
    async def command(i: int):
        async def handler(ctx):
            await ctx.append(f"s-{i}", NO_STREAM, happened(i))
            if i == 5:
                await ctx.conn.execute("SELECT 1 / 0")
            return {"i": i}
        return await db.writer.execute(handler, META)

    outcomes = await asyncio.gather(*(command(i) for i in range(10)), return_exceptions=True)
    assert [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)] == [5]
    assert await positions(db) == list(range(9))


@pytest.mark.parametrize("savepoint", [True, False])
async def test_a_value_the_database_refuses_reaches_the_caller_as_that_refusal_and_writes_nothing(
        db: Database, savepoint: bool) -> None:
    """The HTTP layer answers such a refusal with 400, as on a read; it is not the service failing (500)."""
    async def handler(ctx):
        await ctx.conn.execute("SELECT '99999999999'::int")  # e.g. a figure too large for its column
        await ctx.append("s-too-big", NO_STREAM, happened(1))
        return {}

    async def fine(ctx):
        await ctx.append("s-fine", NO_STREAM, happened(2))
        return {}

    outcomes = await asyncio.gather(db.writer.execute(handler, META, savepoint=savepoint),
                                    db.writer.execute(fine, META, savepoint=savepoint), return_exceptions=True)
    assert isinstance(outcomes[0], asyncpg.NumericValueOutOfRangeError)
    assert not isinstance(outcomes[1], BaseException)
    assert await positions(db) == [0]


async def test_same_idempotency_key_and_body_returns_the_original_result_and_appends_nothing(db: Database) -> None:
    key = Idempotency.of("op-1", "k-1", "test", {"amount_fen": 100})
    first = await db.writer.append("acct-1", NO_STREAM, happened(1), META, idempotency=key)
    again = await db.writer.append("acct-1", NO_STREAM, happened(1), META, idempotency=key)
    assert again.replayed and not first.replayed
    assert (again.response, again.first_position) == (first.response, first.first_position)
    assert await positions(db) == [0]


async def test_concurrent_retries_with_one_key_append_once(db: Database) -> None:
    key = Idempotency.of("op-1", "k-2", "test", {"n": 1})
    results = await asyncio.gather(*(db.writer.append("acct-2", NO_STREAM, happened(1), META, idempotency=key)
                                     for _ in range(20)))
    assert {r.first_position for r in results} == {0}
    assert sum(not r.replayed for r in results) == 1
    assert await positions(db) == [0]


async def test_same_idempotency_key_with_a_different_body_is_refused(db: Database) -> None:
    await db.writer.append("acct-1", NO_STREAM, happened(1), META,
                           idempotency=Idempotency.of("op-1", "k-1", "test", {"amount_fen": 100}))
    with pytest.raises(IdempotencyKeyReused):
        await db.writer.append("acct-1", None, happened(2), META,
                               idempotency=Idempotency.of("op-1", "k-1", "test", {"amount_fen": 999}))
    assert await positions(db) == [0]


async def test_idempotency_keys_survive_a_restart(dsns, settings) -> None:
    key = Idempotency.of("op-1", "k-9", "test", {"n": 1})
    async with Database(dsns.app, settings) as first_run:
        original = await first_run.writer.append("acct-9", NO_STREAM, happened(9), META, idempotency=key)
    async with Database(dsns.app, settings) as second_run:
        replay = await second_run.writer.append("acct-9", NO_STREAM, happened(9), META, idempotency=key)
        assert replay.replayed and replay.response == original.response
        assert await positions(second_run) == [0]


async def test_two_writers_on_one_database_still_make_one_dense_chain(dsns, settings) -> None:
    async with Database(dsns.app, settings) as a, Database(dsns.app, settings) as b:
        await asyncio.gather(*(w.writer.append(f"s-{i}", NO_STREAM, happened(i), META)
                               for i, w in enumerate([a, b] * 100)))
        # b's cached stream versions are stale after a's writes: a stale append must still conflict
        await a.writer.append("s-0", 0, happened(0), META)
        with pytest.raises(StreamVersionConflict):
            await b.writer.append("s-0", 0, happened(0), META)
        assert await positions(a) == list(range(201))
        async with a.connection() as conn:
            assert (await verify_log(conn)).ok


async def test_the_service_role_cannot_change_or_remove_history(db: Database, dsns) -> None:
    await db.writer.append("acct-1", NO_STREAM, happened(1), META)
    conn = await asyncpg.connect(dsns.app)  # exactly what the service connects as
    try:
        for sql in ("UPDATE event SET actor = 'someone else'", "DELETE FROM event", "TRUNCATE event",
                    "UPDATE idempotency_key SET key = 'x'", "ALTER TABLE event DISABLE TRIGGER USER"):
            with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.RaiseError)):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert await positions(db) == [0]


async def test_even_the_owner_is_refused_by_the_trigger(db: Database, owner: asyncpg.Connection) -> None:
    await db.writer.append("acct-1", NO_STREAM, happened(1), META)
    for sql in ("UPDATE event SET actor = 'x'", "DELETE FROM event", "TRUNCATE event"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(sql)


async def test_the_database_refuses_an_event_that_skips_a_position_or_breaks_the_chain(db: Database, dsns) -> None:
    await db.writer.append("acct-1", NO_STREAM, happened(1), META)
    conn = await asyncpg.connect(dsns.app)
    try:
        row = await conn.fetchrow("SELECT * FROM event WHERE position = 0")
        import hashlib
        for position, prev in ((2, bytes(row["hash"])), (1, bytes(32))):
            canonical = b'{"x":1}'
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO event (position, stream_id, stream_version, event_type, schema_version, actor, "
                    "recorded_at, canonical, hash, prev_hash) VALUES ($1,'acct-2',0,'test.forged',1,'x',now(),$2,$3,$4)",
                    position, canonical, hashlib.sha256(canonical).digest(), prev)
    finally:
        await conn.close()


async def test_verify_names_the_first_altered_position(db: Database, owner: asyncpg.Connection) -> None:
    for i in range(10):
        await db.writer.append(f"s-{i}", NO_STREAM, happened(i), META)
    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await owner.execute("UPDATE event SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), "
                        "'\"i\":4', '\"i\":5'), 'UTF8') "
                        "WHERE position = 4")
    async with db.connection() as conn:
        report = await verify_log(conn)
    assert (report.ok, report.first_bad_position, report.checked) == (False, 4, 4)
    assert "SHA-256" in report.problem


async def test_verify_names_a_deleted_event(db: Database, owner: asyncpg.Connection) -> None:
    for i in range(6):
        await db.writer.append(f"s-{i}", NO_STREAM, happened(i), META)
    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await owner.execute("DELETE FROM event WHERE position = 2")
    async with db.connection() as conn:
        report = await verify_log(conn)
    assert (report.ok, report.first_bad_position) == (False, 2)
    assert "missing" in report.problem


async def test_events_read_back_in_order_by_stream(db: Database) -> None:
    for i in range(5):
        await db.writer.append("acct-1" if i % 2 else "acct-2", None, happened(i), META)
    async with db.connection() as conn:
        events = await read_events(conn, stream="acct-1")
        page2 = await read_events(conn, after=2, limit=2)
    assert [(e.position, e.version, e.data["i"]) for e in events] == [(1, 0, 1), (3, 1, 3)]
    assert [e.position for e in page2] == [3, 4]
    assert events[1].meta == META
