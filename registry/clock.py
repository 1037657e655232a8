"""The market's clock. Business dates follow Asia/Shanghai; events are recorded in UTC.

Everything that asks "what day is it for the market" reads one clock: the writer's (`Writer.clock`),
made here from the `REGISTRY_CLOCK` setting. Unset, it is the system clock. Set to a moment, the
market's clock starts there and runs on at real speed — a training or test market that stands on a
chosen day whatever the calendar on the wall says.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

Clock = Callable[[], dt.datetime]
"""Returns the current moment, timezone-aware, in UTC."""


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def market_clock(start: dt.datetime | None = None) -> Clock:
    """The system clock, or one that starts at `start` now and runs on (a naive `start` is Shanghai time)."""
    if start is None:
        return system_clock
    if start.tzinfo is None:
        start = start.replace(tzinfo=SHANGHAI)
    origin, started = start.astimezone(dt.timezone.utc), time.monotonic()
    return lambda: origin + dt.timedelta(seconds=time.monotonic() - started)


def fixed_clock(moment: dt.datetime) -> Clock:
    """A clock that stands still at `moment` (back-dated loading, tests)."""
    utc = moment.astimezone(dt.timezone.utc)
    return lambda: utc


def market_moment(day: dt.date, at: dt.time = dt.time(10)) -> dt.datetime:
    """`at` o'clock in Tianjin on `day`, as a UTC moment (10:00: the market is open)."""
    return dt.datetime.combine(day, at, SHANGHAI).astimezone(dt.timezone.utc)


def business_date(moment: dt.datetime) -> dt.date:
    """The market's calendar date at `moment` (e.g. 2026-11-26T17:00Z is 2026-11-27 in Tianjin)."""
    return moment.astimezone(SHANGHAI).date()
