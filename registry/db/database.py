"""The service's database: which server (embedded or external), its pool, and the single writer."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager

import asyncpg
from piccolo.engine.postgres import PostgresEngine

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
    """Piccolo's engine owns the asyncpg pool; the writer runs every command on it."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        self.engine: PostgresEngine | None = None
        self.writer: Writer | None = None
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

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection for reads (never for writes: those go through the writer)."""
        return self.pool.acquire()

    async def open(self) -> None:
        import registry.features  # noqa: F401 - every projector and approvable action, before any write

        self.engine = PostgresEngine(config={"dsn": self.dsn})
        await self.engine.start_connection_pool(
            min_size=self.settings.pool_min_size, max_size=self.settings.pool_max_size,
        )
        self.writer = Writer(self.pool, max_batch=self.settings.max_batch, settings=self.settings)
        self.writer.start()

    async def close(self) -> None:
        if self._tail is not None:
            await self._tail.stop()
            self._tail = None
        if self.writer is not None:
            await self.writer.stop()
            self.writer = None
        if self.engine is not None and self.engine.pool is not None:
            await self.engine.close_connection_pool()
        self.engine = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
