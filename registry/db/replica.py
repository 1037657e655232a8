"""Reads from PostgreSQL streaming replicas (`DATABASE_READ_URL`), with read-your-writes.

A replica is behind the primary by its replication lag. A client that has just written and must
see its write sends the write's `log.last_position` as `Min-Position`; its reads are then served by
a replica only once the replica has replayed that position (waiting at most
`REGISTRY_READ_REPLICA_WAIT_SECONDS`), otherwise by the primary. Reads without it take the replica
as it is.

A replica that cannot be reached costs nothing but the attempt: the read goes to the primary, and
the replica is tried again after a growing delay (the same backoff the writer reconnects with), so
a replica that comes back is used again within a couple of seconds.

Nothing that writes, or decides a write, reads here: the writer has its own connection to the
primary, and `Database.primary()` serves the reads a write rests on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import asyncpg

from registry.db import outage
from registry.settings import Settings

log = logging.getLogger(__name__)

PRIMARY, REPLICA = "primary", "replica"
POLL_SECONDS = 0.02
"""How often a read waiting for a replica to catch up looks again."""
HEAD = "SELECT coalesce(max(position), -1) FROM event"
"""The last position the replica has replayed (-1: none): an index lookup, and the proof the connection is alive."""


class Read:
    """One request's reads: the log position they must reflect, and where they were served from."""

    __slots__ = ("min_position", "source")

    def __init__(self, min_position: int | None) -> None:
        self.min_position = min_position
        self.source: str | None = None

    def served_by(self, source: str) -> None:
        """Record a read's source; a request any of whose reads went to the primary was served by the primary."""
        if self.source != PRIMARY:
            self.source = source


_read: ContextVar[Read | None] = ContextVar("registry_read", default=None)


@contextmanager
def reading(min_position: int | None) -> Iterator[Read]:
    """The reads of one request, each reflecting at least `min_position` when it is given."""
    read = Read(min_position)
    token = _read.set(read)
    try:
        yield read
    finally:
        _read.reset(token)


def current() -> Read | None:
    return _read.get()


class Replica:
    """The replicas' pool, used while it answers; skipped (reads go to the primary) while it does not."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.wait = settings.read_replica_wait_seconds
        self.max_size = settings.pool_max_size
        self.pool: asyncpg.Pool | None = None
        self.unavailable: str | None = None
        """Why the replica was last skipped, while it is; None while it answers."""
        self.fallbacks = 0
        """Reads the primary answered because the replica could not be reached or had not caught up."""
        self._backoff = outage.Backoff()
        self._retry_at = 0.0

    async def open(self) -> None:
        # No connection is made up front: a replica that is away when the service starts is tried on the first read.
        self.pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=self.max_size,
                                              timeout=outage.CONNECT_TIMEOUT)

    async def close(self) -> None:
        if self.pool is not None:
            await outage.close_pool(self.pool, "replica")
            self.pool = None

    async def take(self, min_position: int | None) -> asyncpg.Connection | None:
        """A replica connection that has replayed `min_position`, or None: the primary must answer.

        The caller gives a connection back with `give_back`.
        """
        if self.pool is None or time.monotonic() < self._retry_at:
            self.fallbacks += 1
            return None
        try:
            conn = await self.pool.acquire()
        except Exception as exc:  # any failure to reach the replica: the primary answers
            await self._skip(exc)
            return None
        usable = False
        try:
            usable = await self._caught_up(conn, min_position)
            if not usable:
                self.fallbacks += 1
        except Exception as exc:  # noqa: BLE001 - a replica that fails the probe is skipped like an unreachable one
            await self._skip(exc)
        finally:
            if not usable:  # also when the request is cancelled while it waits
                await self.give_back(conn)
        if usable:
            self._answering()
        return conn if usable else None

    async def give_back(self, conn: asyncpg.Connection) -> None:
        try:
            await self.pool.release(conn)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a broken connection is dropped by the pool either way
            log.debug("a replica connection could not be released: %s", outage.describe(exc))

    async def _caught_up(self, conn: asyncpg.Connection, min_position: int | None) -> bool:
        deadline = time.monotonic() + self.wait
        while True:
            replayed = await conn.fetchval(HEAD)
            if min_position is None or replayed >= min_position:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.debug("the replica has replayed to %d, not yet %d: the primary answers", replayed, min_position)
                return False
            await asyncio.sleep(min(POLL_SECONDS, left))

    async def _skip(self, exc: BaseException) -> None:
        self.fallbacks += 1
        delay = self._backoff.next()
        self._retry_at = time.monotonic() + delay
        if self.unavailable is None:
            log.warning("the read replica cannot be reached (%s): the primary answers reads; trying again in %.2f s",
                        outage.describe(exc), delay)
            if self.pool is not None:  # its idle connections are likely dead too: replace them when next taken
                await self.pool.expire_connections()
        self.unavailable = outage.describe(exc)

    def _answering(self) -> None:
        if self.unavailable is not None:
            log.warning("the read replica answers again: reads go to it")
            self.unavailable = None
        self._backoff.reset()

