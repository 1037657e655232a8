"""Reads served by PostgreSQL streaming replicas (`DATABASE_READ_URL`), with read-your-writes through
`Min-Position`: a client that sends its write's `log.last_position` always sees its write; a replica
that is behind or away only moves the read to the primary."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from registry.db.database import APP_ROLE
from registry.db.drill import PRIMARY_SETTINGS, build_standby
from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres
from registry.db.migrate import apply_migrations
from registry.settings import Settings
import support
from support import DIGEST, auth, free_port

OPERATOR = auth("operator", "op-replica")
WAIT = 0.3
"""The tests' REGISTRY_READ_REPLICA_WAIT_SECONDS."""


def investor(name: str) -> dict:
    return {"kind": "natural_person", "name": name, "identity_document_digest": DIGEST}


def serving(settings: Settings, primary: str, replica: str):
    """The service on `primary`, reading from `replica`."""
    return support.serving(
        msgspec.structs.replace(settings, database_read_url=replica, read_replica_wait_seconds=WAIT), primary)


async def register(client: httpx.AsyncClient, key: str) -> tuple[str, int]:
    """Register an investor: its id and the log position the write ended at."""
    r = await client.post("/investors", headers={**OPERATOR, "Idempotency-Key": key}, json=investor(key))
    assert r.status_code == 201, r.text
    return r.json()["investor_id"], r.json()["log"]["last_position"]


async def read(client: httpx.AsyncClient, path: str, min_position: int | None = None) -> httpx.Response:
    headers = dict(OPERATOR) if min_position is None else {**OPERATOR, "Min-Position": str(min_position)}
    return await client.get(path, headers=headers)


# -- on the shared server: the header, and a replica that is the primary itself or is nowhere ------------


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "+3", "9223372036854775808", "1 2", ""])
async def test_a_malformed_min_position_is_a_bad_request_naming_the_header(client, value: str) -> None:
    r = await client.get("/investors", headers={**OPERATOR, "Min-Position": value})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "request.invalid" and r.json()["header"] == "Min-Position"
    assert "Min-Position" in r.json()["detail"]


async def test_without_a_read_url_every_read_is_the_primarys_and_min_position_is_honoured(client) -> None:
    investor_id, position = await register(client, "no-replica")
    for min_position in (None, 0, position, 9223372036854775807, "0000000000000000000000042"):
        r = await read(client, f"/investors/{investor_id}", min_position)
        assert r.status_code == 200, r.text
        assert "X-Read-Source" not in r.headers  # nothing to tell apart without replicas


async def test_a_write_sends_no_min_position_through_and_reads_say_where_they_were_answered(dsns, settings) -> None:
    # The primary standing in as its own replica: every read is the replica's, a write is untouched by the header.
    async with serving(settings, dsns.app, dsns.app) as client:
        r = await client.post("/investors", headers={**OPERATOR, "Idempotency-Key": "w", "Min-Position": "junk"},
                              json=investor("w"))
        assert r.status_code == 201, r.text
        assert "X-Read-Source" not in r.headers
        position = r.json()["log"]["last_position"]
        seen = await read(client, f"/investors/{r.json()['investor_id']}", position)
        assert seen.status_code == 200 and seen.headers["X-Read-Source"] == "replica"
        # the regulator's proofs extend the Merkle tree, a write: always the primary
        proof = await client.get("/audit/tree-head", headers=auth("regulator", "examiner-replica"))
        assert proof.status_code == 200 and proof.headers["X-Read-Source"] == "primary"
        assert "registry_read_replica_up 1.0" in (await client.get("/metrics")).text


async def test_reads_fall_back_to_the_primary_while_the_replica_cannot_be_reached(dsns, settings) -> None:
    nowhere = f"postgresql://{APP_ROLE}@127.0.0.1:{free_port()}/{DATABASE}"
    async with serving(settings, dsns.app, nowhere) as client:
        investor_id, position = await register(client, "fallback")
        for min_position in (None, position):
            r = await read(client, f"/investors/{investor_id}", min_position)
            assert r.status_code == 200, r.text
            assert r.headers["X-Read-Source"] == "primary"
        metrics = (await client.get("/metrics")).text
        assert "registry_read_replica_up 0.0" in metrics
        fallbacks = re.search(r"^registry_read_replica_fallbacks_total (\S+)$", metrics, re.M)
        assert fallbacks is not None and float(fallbacks.group(1)) >= 2


# -- on a primary and a streaming standby of the test's own -----------------------------------------------


@pytest.fixture
async def replicated(settings: Settings) -> AsyncIterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    """A migrated primary and a streaming (asynchronous) standby of it, both the test's own."""
    base = Path(tempfile.mkdtemp(prefix="registry-replica-"))
    primary = EmbeddedPostgres(base / "primary", settings={**PRIMARY_SETTINGS, "fsync": "off"})
    standby = None
    try:
        await asyncio.to_thread(primary.start)
        await apply_migrations(primary.dsn(SUPERUSER, DATABASE), settings.resolved_migrations_path())
        standby = await asyncio.to_thread(build_standby, primary, base / "standby")
        yield primary, standby
    finally:
        for node in (standby, primary):
            if node is not None:
                await asyncio.to_thread(node.destroy)
        shutil.rmtree(base, ignore_errors=True)


async def replayed(standby: EmbeddedPostgres) -> int:
    conn = await asyncpg.connect(standby.dsn(SUPERUSER))
    try:
        return await conn.fetchval("SELECT coalesce(max(position), -1) FROM event")
    finally:
        await conn.close()


async def until_replayed(standby: EmbeddedPostgres, position: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while await replayed(standby) < position:
        assert time.monotonic() < deadline, f"the standby never replayed position {position}"
        await asyncio.sleep(0.05)


async def replay(standby: EmbeddedPostgres, action: str) -> None:
    """Pause or resume WAL replay on the standby, and wait until it has."""
    conn = await asyncpg.connect(standby.dsn(SUPERUSER))
    try:
        await conn.execute(f"SELECT pg_wal_replay_{action}()")
        want = "paused" if action == "pause" else "not paused"
        deadline = time.monotonic() + 10
        while await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") != want:
            assert time.monotonic() < deadline, f"replay never became {want}"
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_client_sees_its_own_write_through_a_lagging_replica_and_reads_outlive_the_replica(
        replicated: tuple[EmbeddedPostgres, EmbeddedPostgres], settings: Settings) -> None:
    primary, standby = replicated
    async with serving(settings, primary.dsn(APP_ROLE), standby.dsn(APP_ROLE)) as client:
        head = (await client.get("/events?limit=1", headers=OPERATOR)).json()["items"][0]["position"]
        await until_replayed(standby, head)
        await replay(standby, "pause")

        investor_id, position = await register(client, "lagging")
        path = f"/investors/{investor_id}"

        stale = await read(client, path)  # a replica is as old as its replay: the write is not there yet
        assert stale.status_code == 404, stale.text
        assert stale.headers["X-Read-Source"] == "replica"

        started = time.monotonic()
        own = await read(client, path, position)  # the replica waited for, in vain: the primary answers
        assert own.status_code == 200, own.text
        assert own.headers["X-Read-Source"] == "primary"
        assert own.json()["name"] == "lagging"
        assert WAIT <= time.monotonic() - started < WAIT + 5

        await replay(standby, "resume")
        await until_replayed(standby, position)
        caught_up = await read(client, path, position)
        assert caught_up.status_code == 200, caught_up.text
        assert caught_up.headers["X-Read-Source"] == "replica"
        assert caught_up.json() == own.json()

        await asyncio.to_thread(standby.stop)  # the replica is gone: reads go on, from the primary
        for _ in range(3):
            for min_position in (None, position):
                gone = await read(client, path, min_position)
                assert gone.status_code == 200, gone.text
                assert gone.headers["X-Read-Source"] == "primary"
        assert client.database.replica.unavailable is not None  # type: ignore[attr-defined]

        await asyncio.to_thread(standby.start)  # and when it is back, reads go to it again by themselves
        deadline = time.monotonic() + 15
        while (back := await read(client, path)).headers["X-Read-Source"] != "replica":
            assert back.status_code == 200, back.text
            assert time.monotonic() < deadline, "reads never went back to the replica"
            await asyncio.sleep(0.1)
        assert back.status_code == 200 and client.database.replica.unavailable is None  # type: ignore[attr-defined]
