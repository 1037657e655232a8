"""The live tail: one LISTEN connection per process wakes every follower when a batch commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from registry.db import outage
from registry.eventlog.writer import LOG_CHANNEL

log = logging.getLogger(__name__)

APPLICATION_NAME = "registry-live-tail"
"""How the LISTEN connection shows in pg_stat_activity."""


class LogTail:
    """Followers wait for "something was committed after position n"; missed wake-ups are harmless
    because a follower always re-reads from its own last position.

    The LISTEN connection is kept: when the server goes away it is replaced with backoff, and on
    reconnecting the head is read again and every follower woken, so whatever was committed while
    nobody listened is read by position, like any other batch — no gap, no repeat.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.head = -1
        self.reconnects = 0

    async def start(self) -> None:
        """Start listening; waits for the first connection a little, but a database that is away now is no error."""
        self._task = asyncio.create_task(self._keep_listening(), name="registry-log-tail")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), outage.CONNECT_TIMEOUT)

    async def _listen(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        conn = await asyncpg.connect(self._dsn, timeout=outage.CONNECT_TIMEOUT,
                                     server_settings={"application_name": APPLICATION_NAME})
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(LOG_CHANNEL, self._notified)
            # Listening first, then reading the head: nothing committed in between can be missed.
            last = await conn.fetchval("SELECT max(position) FROM event")
        except BaseException:
            conn.terminate()
            raise
        self._advance(-1 if last is None else last)
        return conn, closed

    async def _keep_listening(self) -> None:
        while True:
            self._conn, closed = await outage.reconnect(self._listen, "the live tail")
            self._listening.set()
            await closed.wait()
            self._conn = None
            self._listening.clear()
            self.reconnects += 1
            log.warning("the live tail lost its LISTEN connection; reconnecting")

    def _advance(self, position: int) -> None:
        self.head = max(self.head, position)
        self._changed.set()
        self._changed = asyncio.Event()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._advance(int(payload))

    async def wait_beyond(self, position: int, timeout: float) -> None:
        """Return as soon as the log is known to reach past `position`, or after `timeout` seconds.

        Comparing positions (not just waiting for the next wake-up) means a commit that lands
        between a follower's read and its wait is never slept through.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.head <= position:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 1.0)
            except Exception:  # noqa: BLE001 - a dead connection is simply dropped
                conn.terminate()
