"""The service's database: which server (embedded or external), its pool, and the single writer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from piccolo.engine.postgres import PostgresEngine

from registry.db import outage, replica
from registry.db.embedded import SUPERUSER, EmbeddedPostgres
from registry.eventlog.tail import LogTail
from registry.eventlog.writer import Writer
from registry.settings import Settings

log = logging.getLogger(__name__)

APP_ROLE = "registry_app"
"""The role the service connects as; its privileges are granted by the migrations."""


class Dsns:
    """Where to connect: as the owner (migrations) and as the application role (everything else)."""

    def __init__(self, owner: str, app: str, embedded: EmbeddedPostgres | None, started: bool = False) -> None:
        self.owner = owner
        self.app = app
        self.embedded = embedded
        self.started = started
        """True when this process started the embedded server (and so should stop it)."""


def resolve(settings: Settings, *, start_embedded: bool = True) -> Dsns:
    """External server when DATABASE_URL is set; otherwise the embedded one under the data folder."""
    if settings.database_url:
        return Dsns(settings.owner_url or settings.database_url, settings.database_url, None)
    server = EmbeddedPostgres(settings.data_dir)
    started = server.start() if start_embedded else False
    return Dsns(server.dsn(SUPERUSER), server.dsn(APP_ROLE), server, started)


class Database:
    """Piccolo's engine owns the asyncpg pool for reads; the writer keeps a connection of its own.

    Both come back by themselves after the server does: the pool replaces a dead connection when
    it is next acquired, the writer and the live tail reconnect with backoff. With
    `DATABASE_READ_URL`, a second pool on the streaming replicas serves `connection()` (see
    `registry.db.replica`); `primary()` is for reads a write will rest on.
    """

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        self.engine: PostgresEngine | None = None
        self.writer: Writer | None = None
        self.replica = replica.Replica(settings.database_read_url, settings) if settings.database_read_url else None
        self._tail: LogTail | None = None
        self._tail_lock = asyncio.Lock()

    async def tail(self) -> LogTail:
        """The process's live-tail listener, started on first use (once, however many followers arrive at once)."""
        async with self._tail_lock:
            if self._tail is None:
                tail = LogTail(self.dsn)
                await tail.start()
                self._tail = tail
        return self._tail

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.engine is not None and self.engine.pool is not None, "database is not open"
        return self.engine.pool

    @asynccontextmanager
    async def connection(self, min_position: int | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for reads (never for writes, nor for reads a write rests on: see `primary`).

        With a replica, a read request (GET) gets the replica's, when the replica has replayed `min_position`
        and the request's `Min-Position` (waiting briefly for it); anything else gets the primary's. A
        database that is away (or goes away during the read) is DatabaseUnavailable: a 503, not a 500.
        """
        read = replica.current()
        conn = None
        if self.replica is not None and read is not None:
            conn = await self.replica.take(max(
                (p for p in (min_position, read.min_position) if p is not None), default=None))
        if conn is None:
            async with self.primary() as conn:
                yield conn
            return
        read.served_by(replica.REPLICA)  # type: ignore[union-attr]
        async with _unavailable_when_lost(lambda: self.replica.give_back(conn)):  # type: ignore[union-attr]
            yield conn

    @asynccontextmanager
    async def primary(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection to the primary: for reads that decide a write (read-modify-write), and for
        what maintains derived tables outside the writer (the Merkle tree). Never a replica."""
        read = replica.current()
        if self.replica is not None and read is not None:
            read.served_by(replica.PRIMARY)
        async with _unavailable_when_lost():
            async with self.pool.acquire() as conn:
                yield conn

    async def open(self) -> None:
        import registry.features  # noqa: F401 - every projector and approvable action, before any write

        self.engine = PostgresEngine(config={"dsn": self.dsn})
        await self.engine.start_connection_pool(
            min_size=self.settings.pool_min_size, max_size=self.settings.pool_max_size,
        )
        self.writer = Writer(self.dsn, max_batch=self.settings.max_batch, settings=self.settings)
        await self.writer.start()
        if self.replica is not None:
            await self.replica.open()

    async def close(self) -> None:
        if self._tail is not None:
            await self._tail.stop()
            self._tail = None
        if self.writer is not None:
            await self.writer.stop()
            self.writer = None
        if self.replica is not None:
            await self.replica.close()
        if self.engine is not None and self.engine.pool is not None:
            await outage.close_pool(self.engine.pool, "database")
            self.engine.pool = None
        self.engine = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@asynccontextmanager
async def _unavailable_when_lost(release: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
    """Turns a database lost during the block into DatabaseUnavailable; `release` runs after it either way."""
    try:
        yield
    except outage.LOST as exc:
        raise outage.DatabaseUnavailable.now(exc) from exc
    finally:
        if release is not None:
            await release()
