"""PostgreSQL goes away and comes back (a restart, a terminated backend, a commit cut short): the service
keeps running, answers 503 with Retry-After meanwhile, writes again by itself, and loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from registry.db.database import APP_ROLE, Database
from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres
from registry.db.migrate import apply_migrations
from registry.eventlog.store import verify_log
from registry.eventlog.tail import APPLICATION_NAME as TAIL_CONNECTION
from registry.eventlog.writer import APPLICATION_NAME as WRITER_CONNECTION
from registry.settings import Settings
from support import DIGEST, auth, serving, sse_ids

OPERATOR = auth("operator", "op-outage")
REGULATOR = auth("regulator", "examiner-outage")
UNAVAILABLE_CODES = {"database.unavailable", "eventlog.outcome_unknown"}


def investor(n: int | str) -> dict:
    return {"kind": "natural_person", "name": f"投资者{n}", "identity_document_digest": DIGEST}


async def register(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/investors", headers={**OPERATOR, "Idempotency-Key": key}, json=investor(key))


def assert_unavailable(r: httpx.Response) -> None:
    """A refusal while the database is away: 503, a Retry-After in whole seconds, and a problem naming why."""
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] in UNAVAILABLE_CODES, r.text


async def terminate(owner: asyncpg.Connection, application_name: str) -> int:
    """End the service's backend of that name on this database, as an operator with pg_terminate_backend would."""
    return await owner.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()", application_name)


# -- on the shared server: one backend ends, the server stays --------------------------------------


async def test_writes_succeed_right_after_the_writers_backend_is_terminated(client, owner, db) -> None:
    assert (await register(client, "before")).status_code == 201
    assert await terminate(owner, WRITER_CONNECTION) == 1
    after = await register(client, "after")
    assert after.status_code == 201, after.text
    assert db.writer.reconnects == 1
    ready = await client.get("/health/ready", headers=REGULATOR)
    assert ready.status_code == 200, ready.text
    # the writer forgot what it knew: the stream versions and the head it re-read are right
    assert (await register(client, "after-2")).json()["log"]["first_position"] == \
        after.json()["log"]["first_position"] + 1


async def test_a_commit_cut_short_is_an_unknown_outcome_and_the_same_key_settles_it(client, owner, db) -> None:
    # A deferred check that takes its time runs inside COMMIT: the connection is cut while the server commits.
    await owner.execute("""
        CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON event DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION slow_commit();""")
    write = asyncio.create_task(register(client, "cut-short"))
    deadline = time.monotonic() + 10
    while not await owner.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() "
            "AND wait_event = 'PgSleep'", WRITER_CONNECTION):
        assert time.monotonic() < deadline, "the command never reached COMMIT"
        await asyncio.sleep(0.02)
    assert await terminate(owner, WRITER_CONNECTION) == 1
    unknown = await write
    assert_unavailable(unknown)
    assert unknown.json()["code"] == "eventlog.outcome_unknown"
    assert "Idempotency-Key" in unknown.json()["detail"]
    await owner.execute("DROP TRIGGER slow_commit ON event; DROP FUNCTION slow_commit()")
    retried = await register(client, "cut-short")
    assert retried.status_code == 201, retried.text
    assert retried.json()["log"]["replayed"] is False  # it had not been written: it runs now, once
    assert (await register(client, "cut-short")).json()["log"]["replayed"] is True
    assert await owner.fetchval("SELECT count(*) FROM event WHERE event_type = 'investor.registered'") == 1


# -- on a server of its own: the whole server restarts under traffic ---------------------------------


@pytest.fixture
async def restartable(settings: Settings) -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, to stop and start (fsync off for speed; commits stay synchronous)."""
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="registry-outage-")), settings={"fsync": "off"})
    await asyncio.to_thread(server.start)
    await apply_migrations(server.dsn(SUPERUSER, DATABASE), settings.resolved_migrations_path())
    yield server
    await asyncio.to_thread(server.destroy)


@pytest.fixture
async def service(restartable: EmbeddedPostgres, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings, restartable.dsn(APP_ROLE, DATABASE)) as client:
        yield client


@pytest.mark.slow
async def test_postgresql_restarted_mid_traffic_costs_only_503s_and_loses_no_acknowledged_write(
        service: httpx.AsyncClient, restartable: EmbeddedPostgres) -> None:
    client = service
    writer = client.database.writer  # type: ignore[attr-defined]
    acknowledged: dict[str, int] = {}  # key -> first log position
    ack_times: list[float] = []
    unknown: set[str] = set()
    statuses: Counter[int] = Counter()
    readiness: list[tuple[float, int]] = []
    reads: Counter[int] = Counter()
    stop = asyncio.Event()

    async def keep_writing(n: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{n}-{i}"
            i += 1
            r = await register(client, key)
            statuses[r.status_code] += 1
            if r.status_code == 201:
                acknowledged[key] = r.json()["log"]["first_position"]
                ack_times.append(time.monotonic())
            else:
                assert_unavailable(r)
                assert str(restartable.socket_dir) not in r.text  # a caller learns when to retry, not where we run
                if r.json()["code"] == "eventlog.outcome_unknown":
                    unknown.add(key)
                await asyncio.sleep(0.02)

    async def keep_reading() -> None:
        while not stop.is_set():
            r = await client.get("/health/ready", headers=REGULATOR)
            readiness.append((time.monotonic(), r.status_code))
            if r.status_code == 503:
                assert r.json()["failed"] and int(r.headers["Retry-After"]) >= 1  # an insider is told what failed
                anonymous = await client.get("/health/ready")  # PostgreSQL may be back already: ready, then
                assert "failed" not in anonymous.json() and "log_size" not in anonymous.json(), anonymous.text
                if anonymous.status_code == 503:
                    assert anonymous.json()["detail"] == "not ready"  # and anyone else only that
            read = await client.get("/investors?limit=1", headers=OPERATOR)
            reads[read.status_code] += 1
            if read.status_code != 200:
                assert_unavailable(read)
            await asyncio.sleep(0.05)

    start = (await client.get("/health/ready", headers=REGULATOR)).json()["log_size"] - 1
    follow_count = 120
    follower = asyncio.create_task(client.get(
        f"/events/live?after={start}&type=investor.registered&limit={follow_count}", headers=REGULATOR))
    tasks = [asyncio.create_task(keep_writing(n)) for n in range(4)] + [asyncio.create_task(keep_reading())]
    try:
        while len(acknowledged) < 30:
            await asyncio.sleep(0.01)
        assert not follower.done()
        stopped_at = time.monotonic()
        await asyncio.to_thread(restartable.stop)  # a fast shutdown: every connection is cut
        await asyncio.sleep(1.0)
        await asyncio.to_thread(restartable.start)
        back_at = time.monotonic()  # it accepts connections from here on
        while not any(t > back_at for t in ack_times):
            assert time.monotonic() - back_at < 5, f"no write succeeded within 5 s of PostgreSQL accepting connections ({statuses})"
            await asyncio.sleep(0.01)
        first_write_after = min(t for t in ack_times if t > back_at) - back_at
        while len(acknowledged) < follow_count + 20:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert first_write_after <= 5.0
    assert statuses[503] > 0 and set(statuses) <= {201, 503}, statuses
    assert reads[503] > 0 and set(reads) <= {200, 503}, reads  # reads too: 503 while away, never 500
    assert writer.reconnects >= 1
    # readiness told the truth: not ready while PostgreSQL was down, ready again after
    assert any(status == 503 for t, status in readiness if stopped_at < t < back_at)
    assert (await client.get("/health/ready", headers=REGULATOR)).status_code == 200
    # a command whose outcome was unknown is settled by sending it again with its key
    for key in unknown:
        settled = await register(client, key)
        assert settled.status_code == 201, settled.text
        acknowledged[key] = settled.json()["log"]["first_position"]
    # every acknowledged write is in the log, at the position it was acknowledged with, and the chain is whole
    conn = await asyncpg.connect(restartable.dsn(SUPERUSER, DATABASE))
    try:
        rows = await conn.fetch("SELECT position, canonical FROM event WHERE position = ANY($1::bigint[])",
                                list(acknowledged.values()))
        assert len(rows) == len(set(acknowledged.values())) == len(acknowledged)
        by_position = {r["position"]: bytes(r["canonical"]).decode() for r in rows}
        for key, position in acknowledged.items():
            assert f'"idempotency_key":"{key}"' in by_position[position], key
        assert (await verify_log(conn)).ok
        registered = [r["position"] for r in await conn.fetch(
            "SELECT position FROM event WHERE event_type = 'investor.registered' AND position > $1 "
            "ORDER BY position LIMIT $2", start, follow_count)]
    finally:
        await conn.close()
    # the live follower went through the outage and saw every event once, in order
    followed = await asyncio.wait_for(follower, 30)
    assert followed.status_code == 200
    assert sse_ids(followed.text) == registered


@pytest.mark.slow
async def test_the_live_tail_reconnects_its_listener_and_wakes_followers(
        service: httpx.AsyncClient, restartable: EmbeddedPostgres) -> None:
    client = service
    database: Database = client.database  # type: ignore[attr-defined]
    tail = await database.tail()
    owner = await asyncpg.connect(restartable.dsn(SUPERUSER, DATABASE))
    try:
        assert await terminate(owner, TAIL_CONNECTION) == 1
    finally:
        await owner.close()
    deadline = time.monotonic() + 5
    while tail.reconnects == 0 or tail._conn is None:
        assert time.monotonic() < deadline, "the live tail did not reconnect"
        await asyncio.sleep(0.02)
    head = tail.head
    r = await register(client, "after-listener-lost")
    assert r.status_code == 201
    await asyncio.wait_for(tail.wait_beyond(head, 5), 6)
    assert tail.head == r.json()["log"]["first_position"]  # woken by the new listener's notification


# -- who may connect to the embedded server ------------------------------------------------------------


def test_the_embedded_server_takes_only_the_services_user_over_a_private_socket(pg_server: EmbeddedPostgres) -> None:
    hba = [line.split() for line in (pg_server.pgdata / "pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert hba and all(line[0] == "local" and line[3] == "peer" for line in hba)  # no trust, no TCP
    mode = stat.S_IMODE(pg_server.socket_dir.stat().st_mode)
    assert mode == 0o700, oct(mode)


def test_a_long_data_folder_gets_a_private_socket_folder_and_a_stranger_cannot_connect() -> None:
    base = Path(tempfile.mkdtemp(prefix="registry-sock-")) / ("long-data-folder-name-" * 4)
    server = EmbeddedPostgres(base)
    try:
        assert server.socket_dir.parent == Path(tempfile.gettempdir())  # the path is too long for a socket
        server.start()
        assert stat.S_IMODE(server.socket_dir.stat().st_mode) == 0o700
        assert server.psql("SELECT 1").strip() == "1"  # zero configuration for the service itself
        if os.geteuid() == 0:  # a stranger: another operating-system user on the same machine
            stranger = subprocess.run(
                [server.binary("psql"), "-X", "-h", str(server.socket_dir), "-U", SUPERUSER, "-c", "SELECT 1"],
                user="nobody", capture_output=True, text=True, timeout=30)
            assert stranger.returncode != 0, stranger.stdout
    finally:
        server.destroy()
        shutil.rmtree(server.socket_dir, ignore_errors=True)
        shutil.rmtree(base.parent, ignore_errors=True)


def test_a_socket_folder_someone_else_made_is_refused() -> None:
    base = Path(tempfile.mkdtemp(prefix="registry-sock-")) / ("long-data-folder-name-" * 4)
    server = EmbeddedPostgres(base)
    try:
        server.socket_dir.symlink_to(base.parent)  # planted beforehand under the name the server would use
        with pytest.raises(Exception, match="not a folder of this service's user"):
            server.start()
    finally:
        server.socket_dir.unlink(missing_ok=True)
        shutil.rmtree(base.parent, ignore_errors=True)


# -- a failover: the standby is promoted, and the writer finds it through the multi-host DSN ----------


def standby_of(primary: EmbeddedPostgres) -> EmbeddedPostgres:
    """A streaming replica of `primary` (pg_basebackup -R) in a folder of its own, started as a hot standby."""
    standby = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="registry-standby-")))
    standby.start()  # a cluster with its folders and permissions in place ...
    standby.stop()
    for entry in standby.pgdata.iterdir():  # ... whose contents are replaced by the primary's
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    primary._run([primary.binary("pg_basebackup"), "-D", str(standby.pgdata), "-h", str(primary.socket_dir),
                  "-p", str(primary.port), "-U", SUPERUSER, "-R", "-X", "stream", "-c", "fast"])
    for lock in standby.pgdata.glob(".s.PGSQL.*.lock"):  # the primary's socket lock, copied with its folder
        lock.unlink()
    with open(standby.pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as f:
        f.write(f"unix_socket_directories = '{standby.socket_dir}'\n")
    standby.start()
    return standby


@pytest.mark.slow
async def test_after_a_failover_the_writer_finds_the_promoted_standby_by_itself(
        restartable: EmbeddedPostgres, settings: Settings) -> None:
    primary = restartable
    standby = await asyncio.to_thread(standby_of, primary)
    try:
        # the standby is listed first: target_session_attrs=read-write is what sends the service to the primary
        dsn = (f"postgresql://{APP_ROLE}@/{DATABASE}?host={standby.socket_dir},{primary.socket_dir}"
               f"&port={standby.port},{primary.port}&target_session_attrs=read-write")
        async with serving(settings, dsn) as client:
            database: Database = client.database  # type: ignore[attr-defined]
            before = [(await register(client, f"before-{i}")).json()["log"]["first_position"] for i in range(5)]
            await asyncio.to_thread(primary.stop)  # a planned switchover: the standby has every commit
            refused = await register(client, "during")
            assert_unavailable(refused)
            await asyncio.to_thread(standby._run, [standby.binary("pg_ctl"), "-D", str(standby.pgdata),
                                                   "-w", "promote"])
            promoted_at = time.monotonic()
            while (after := await register(client, "after")).status_code != 201:
                assert_unavailable(after)
                assert time.monotonic() - promoted_at < 5, "the writer did not find the promoted standby"
                await asyncio.sleep(0.05)
            assert after.json()["log"]["first_position"] == before[-1] + 1
            assert database.writer.reconnects >= 1
        conn = await asyncpg.connect(standby.dsn(SUPERUSER, DATABASE))
        try:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
            assert await conn.fetchval("SELECT count(*) FROM event WHERE position = ANY($1::bigint[])", before) == 5
            assert (await verify_log(conn)).ok
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(standby.destroy)
