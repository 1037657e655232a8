"""Reconnecting after an outage: how long to wait between attempts, what a client is told, what counts as 'gone'."""

from __future__ import annotations

import asyncpg

from registry.db.outage import FIRST_DELAY, MOST_DELAY, Backoff, lost, retry_after


def test_reconnection_attempts_back_off_exponentially_up_to_a_ceiling_and_start_over_after_success() -> None:
    backoff = Backoff()
    delays = [backoff.next() for _ in range(12)]
    assert delays[:3] == [FIRST_DELAY, FIRST_DELAY * 2, FIRST_DELAY * 4]
    assert max(delays) == MOST_DELAY == delays[-1]
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:]))
    backoff.reset()
    assert backoff.next() == FIRST_DELAY


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert [retry_after(s) for s in (-3.0, 0.0, 0.2, 1.0, 1.01, 2.5)] == [1, 1, 1, 1, 2, 3]


def test_a_lost_server_is_told_apart_from_a_refused_statement() -> None:
    assert lost(asyncpg.AdminShutdownError("terminating connection due to administrator command"))
    assert lost(asyncpg.CannotConnectNowError("the database system is starting up"))
    assert lost(ConnectionRefusedError())
    assert lost(asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"))
    assert not lost(asyncpg.UniqueViolationError("duplicate key"))
    assert not lost(asyncpg.QueryCanceledError("canceling statement due to statement timeout"))


class _Connection:
    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


def test_a_commands_own_io_failing_on_a_healthy_connection_is_not_an_outage() -> None:
    assert not lost(OSError("no such file"), _Connection(closed=False))
    assert not lost(TimeoutError(), _Connection(closed=False))
    assert lost(ConnectionResetError(), _Connection(closed=True))
    assert lost(asyncpg.AdminShutdownError("terminating connection"), _Connection(closed=False))
