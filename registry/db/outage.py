"""A lost database, told apart from a refused statement; the backoff of whoever reconnects; what callers hear meanwhile.

PostgreSQL goes away for ordinary reasons: a restart, a crash and its recovery, a failover to a
standby, an operator ending a backend. The service stays up through all of them: each long-lived
connection (the writer's, the live tail's) is replaced with exponential backoff, and a request
arriving meanwhile is answered 503 with `Retry-After`, never 500.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from registry.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
"""Longest wait for one connection attempt (a host that drops packets instead of refusing)."""
FIRST_DELAY = 0.05
CLOSE_TIMEOUT = 2.0
"""Longest wait at shutdown for pooled connections to come back (a dead server never answers them)."""
MOST_DELAY = 2.0
"""Reconnection backoff doubles from the first delay up to this: a server back up is found within ~2 s."""

LOST_SERVER = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and the socket closing under a query
    asyncpg.AdminShutdownError,  # 57P01: shutdown, or pg_terminate_backend()
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed; the server resets
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, recovering
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a failover left this connection on a standby
    asyncpg.exceptions.InternalClientError,  # the protocol broke (a terminated backend's message mid-command);
    # includes TargetServerAttributeNotMatched: no listed host is a primary (yet)
)
"""What asyncpg raises when the server, or the connection to it, is gone."""
LOST = (*LOST_SERVER, OSError, TimeoutError)
"""...and what reaching a server raises: refused, reset, no socket file, no answer."""


def lost(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """Whether `exc` means the database (or this connection to it) is gone, not that it refused something.

    With the connection in hand, an OSError or a timeout counts only if the connection closed: a command's
    own I/O failing on a healthy connection is that command's failure, not an outage."""
    if isinstance(exc, LOST_SERVER):
        return True
    if conn is not None:
        return conn.is_closed()
    return isinstance(exc, (OSError, TimeoutError))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached right now; nothing was written."""

    code = "database.unavailable"
    title = "The database is not reachable right now; nothing was written"

    @classmethod
    def now(cls, cause: BaseException | str, wait: float = 0.0) -> DatabaseUnavailable:
        """The refusal a caller gets: when to try again, not which host, socket or error (those go to the log,
        and readiness names them to operators and regulators)."""
        log.debug("refusing a request while the database is away: %s",
                 cause if isinstance(cause, str) else describe(cause))
        seconds = retry_after(wait)
        return cls(f"the database cannot be reached right now; try again in {seconds} s", retry_after=seconds)


class Backoff:
    """Delays between reconnection attempts: doubling from FIRST_DELAY, never above MOST_DELAY."""

    def __init__(self, first: float = FIRST_DELAY, most: float = MOST_DELAY) -> None:
        self._first, self._most = first, most
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._most)
        return delay

    def reset(self) -> None:
        self._next = self._first


def retry_after(seconds: float) -> int:
    """A Retry-After value: whole seconds, at least one."""
    return max(1, math.ceil(seconds))


async def reconnect(open_: Callable[[], Awaitable[T]], what: str,
                    failed: Callable[[BaseException, float], None] | None = None) -> T:
    """Call `open_()` until it succeeds, sleeping a growing delay between attempts; `failed(exc, delay)` hears each failure."""
    backoff = Backoff()
    attempt = 0
    while True:
        try:
            return await open_()
        except Exception as exc:  # every failure to connect is retried; readiness reports the latest
            attempt += 1
            delay = backoff.next()
            if failed is not None:
                failed(exc, delay)
            level = logging.WARNING if attempt == 1 or attempt % 20 == 0 else logging.DEBUG
            log.log(level, "%s cannot reach the database (attempt %d): %s; retrying in %.2f s",
                    what, attempt, describe(exc), delay)
            await asyncio.sleep(delay)


async def close_pool(pool: asyncpg.Pool, what: str) -> None:
    """Close a pool, waiting at most CLOSE_TIMEOUT for its connections; past that they are dropped."""
    try:
        await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
    except LOST:  # includes the timeout
        log.warning("the %s pool did not close in time; its connections are dropped", what)
        pool.terminate()
