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

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.head = max(self.head, int(payload))
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when a batch commits, or after `timeout` seconds (followers then poll once)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
