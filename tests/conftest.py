"""Shared fixtures: one embedded PostgreSQL per test worker, a migrated template, a fresh database per test."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from registry.app import create_app
from registry.calendar.service import ensure_seeded
from registry.db.database import APP_ROLE, Database
from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres
from registry.db.migrate import apply_migrations
from registry.settings import Settings
from support import TEST_KEY_PEM, TEST_MOMENT, pin_clock

REPO = Path(__file__).resolve().parent.parent


class Dsns:
    def __init__(self, server: EmbeddedPostgres, database: str) -> None:
        self.database = database
        self.owner = server.dsn(SUPERUSER, database)
        self.app = server.dsn(APP_ROLE, database)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The tests' market: its clock starts at TEST_MOMENT whatever the wall clock says."""
    return Settings(migrations_path=REPO / "migrations", data_dir=Path("/nonexistent"), token_key=TEST_KEY_PEM,
                    checkpoint_key=TEST_KEY_PEM, clock=TEST_MOMENT)


@pytest.fixture(scope="session")
async def pg_server(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> AsyncIterator[EmbeddedPostgres]:
    """A real PostgreSQL per test worker; durability settings off because tests never crash it.

    Its folder is outside pytest's temp root, which pytest keeps private to root (mode 0700) while
    the server runs as another user when the tests run as root.
    """
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="registry-test-pg-")), settings={
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    })
    server.start()
    await apply_migrations(server.dsn(SUPERUSER, DATABASE), settings.resolved_migrations_path())
    yield server
    server.destroy()


@pytest.fixture
async def dsns(pg_server: EmbeddedPostgres) -> AsyncIterator[Dsns]:
    """A fresh, migrated database of its own for one test (copied from the migrated template)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn(SUPERUSER, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{DATABASE}" STRATEGY FILE_COPY')
        yield Dsns(pg_server, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db(dsns: Dsns, settings: Settings) -> AsyncIterator[Database]:
    async with Database(dsns.app, settings) as database:
        pin_clock(database)
        yield database


@pytest.fixture
async def owner(dsns: Dsns) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner (a superuser here), for tampering like an insider would."""
    conn = await asyncpg.connect(dsns.owner)
    yield conn
    await conn.close()


@pytest.fixture
async def client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a fresh database whose calendar is seeded (position 0), as `registry serve` does."""
    await ensure_seeded(db.writer)
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test") as c:
        yield c

