"""HTTP for the trading calendar (交易日历): the known span, days, and trading-day arithmetic."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from registry.access.policy import allow
from registry.access.tokens import Role
from registry.calendar import service
from registry.calendar.domain import CalendarRangeError
from registry.errors import BadRequest
from registry.http.openapi import refuses

EVERYONE = tuple(Role)
OUTSIDE_THE_SPAN_REFUSED = allow(*EVERYONE) | refuses(service.CalendarRefused)
"""Days beyond the span the calendar knows are refused (422), never guessed."""
MAX_DAYS = 400


class CalendarSpan(msgspec.Struct, kw_only=True, frozen=True):
    first_day: dt.date
    last_day: dt.date
    source: str
    last_position: int


class Day(msgspec.Struct, kw_only=True, frozen=True):
    day: dt.date
    trading: bool


class DayDetail(msgspec.Struct, kw_only=True, frozen=True):
    day: dt.date
    trading: bool
    previous_trading_day: dt.date | None
    next_trading_day: dt.date | None


class Added(msgspec.Struct, kw_only=True, frozen=True):
    start: dt.date
    n: int
    result: dt.date


class Between(msgspec.Struct, kw_only=True, frozen=True):
    start: dt.date
    end: dt.date
    trading_days: int
    """Trading days in (start, end]."""


class CalendarController(Controller):
    path = "/calendar"
    tags = ["trading calendar · 交易日历"]

    @get("/", summary="The span of days the calendar knows, and its source", opt=allow(*EVERYONE))
    async def span(self, state: State) -> CalendarSpan:
        async with state.db.connection() as conn:
            await service.load_calendar(conn)
            row = await conn.fetchrow("SELECT first_day, last_day, source, last_position FROM calendar_span")
        return msgspec.convert(dict(row), CalendarSpan)

    @get("/days", summary="Each day in [start, end], trading or not", opt=OUTSIDE_THE_SPAN_REFUSED)
    async def days(self, state: State, start: FromQuery[dt.date], end: FromQuery[dt.date]) -> list[Day]:
        if end < start or (end - start).days >= MAX_DAYS:
            raise BadRequest(f"ask for 1 to {MAX_DAYS} days with start <= end", start=start.isoformat(),
                             end=end.isoformat())
        async with state.db.connection() as conn:
            calendar = await service.load_calendar(conn)
        service.answer(calendar.is_trading_day, start)
        service.answer(calendar.is_trading_day, end)
        return [Day(day=d, trading=calendar.is_trading_day(d))
                for d in (start + dt.timedelta(days=i) for i in range((end - start).days + 1))]

    @get("/days/{day:date}", summary="Is this a trading day; the trading days around it", opt=OUTSIDE_THE_SPAN_REFUSED)
    async def day(self, state: State, day: FromPath[dt.date]) -> DayDetail:
        async with state.db.connection() as conn:
            calendar = await service.load_calendar(conn)
        trading = service.answer(calendar.is_trading_day, day)

        def around(fn):  # noqa: ANN001, ANN202 - the neighbour may lie beyond the known span
            try:
                return fn(day)
            except CalendarRangeError:
                return None

        return DayDetail(day=day, trading=trading, previous_trading_day=around(calendar.previous_trading_day),
                         next_trading_day=around(calendar.next_trading_day))

    @get("/add", summary="The date n trading days after (or before, n < 0) a date", opt=OUTSIDE_THE_SPAN_REFUSED)
    async def add(self, state: State, start: FromQuery[dt.date], n: FromQuery[int]) -> Added:
        async with state.db.connection() as conn:
            calendar = await service.load_calendar(conn)
        return Added(start=start, n=n, result=service.answer(calendar.add_trading_days, start, n))

    @get("/between", summary="Trading days in (start, end]", opt=OUTSIDE_THE_SPAN_REFUSED)
    async def between(self, state: State, start: FromQuery[dt.date], end: FromQuery[dt.date]) -> Between:
        async with state.db.connection() as conn:
            calendar = await service.load_calendar(conn)
        return Between(start=start, end=end, trading_days=service.answer(calendar.trading_days_between, start, end))
