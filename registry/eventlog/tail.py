"""The live tail: one LISTEN connection per process wakes every follower when a batch commits."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from registry.eventlog.writer import LOG_CHANNEL


class LogTail:
    """Followers wait for "something was committed after position n"; missed wake-ups are harmless
    because a follower always re-reads from its own last position."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self.head = -1

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(LOG_CHANNEL, self._notified)
        # Listening first, then reading the head: nothing committed in between can be missed.
        last = await self._conn.fetchval("SELECT max(position) FROM event")
        self.head = max(self.head, -1 if last is None else last)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.head = max(self.head, int(payload))
        self._changed.set()
        self._changed = asyncio.Event()

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
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
