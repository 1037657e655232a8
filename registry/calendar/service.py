"""The market's trading calendar as data: seeded once from the XSHG calendar, extended by approved edits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from registry.approvals import domain as approvals_domain
from registry.approvals.service import approvable, approve, request_approval
from registry.calendar import projection  # noqa: F401 - registers the projector
from registry.calendar.domain import (
    CalendarEdit,
    CalendarError,
    MalformedCalendarEdit,
    TradingCalendar,
    edit_problems,
    weekdays_except,
)
from registry.calendar.seed import load_seed_edit
from registry.errors import RegistryError, RuleViolation
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.writer import NO_STREAM, WriteContext, Writer

CALENDAR_STREAM = "calendar-market"


class CalendarRefused(RuleViolation):
    """A calendar question or edit the calendar refuses (beyond the known span, past rewrite, malformed)."""

    title = "The trading calendar refuses this"

    def __init__(self, error: CalendarError) -> None:
        figures: dict[str, Any] = {}
        for name in ("requested", "first_day", "last_day", "today"):
            if hasattr(error, name):
                figures[name] = getattr(error, name).isoformat()
        if hasattr(error, "rewritten_days"):
            figures["rewritten_days"] = [d.isoformat() for d in error.rewritten_days[:20]]
        if hasattr(error, "problems"):
            figures["problems"] = list(error.problems)
        super().__init__(str(error), **figures)
        self.code = error.code


class NotSeeded(RegistryError):
    code = "calendar.not_seeded"
    title = "The trading calendar has not been seeded"


_cache: dict[tuple[str, int], TradingCalendar] = {}


async def load_calendar(conn: asyncpg.Connection, known: tuple[str, int] | None = None) -> TradingCalendar:
    """The calendar as the projection holds it (cached until the next calendar event).

    `known` is (database, calendar position) when the caller already read it, saving a round trip.
    """
    span = None
    key = known
    if key is None:
        span = await _span(conn)
        key = (span["db"], span["last_position"])
    calendar = _cache.get(key)
    if calendar is None:
        span = span or await _span(conn)
        days = [r["day"] for r in await conn.fetch("SELECT day FROM trading_day WHERE trading ORDER BY day")]
        calendar = TradingCalendar(days, first_day=span["first_day"], last_day=span["last_day"])
        _cache.clear()
        _cache[key] = calendar
    return calendar


async def _span(conn: asyncpg.Connection) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT current_database() AS db, first_day, last_day, last_position FROM calendar_span")
    if row is None:
        raise NotSeeded("the trading calendar has no days yet; run `registry migrate` or start the service")
    return row


def _event(type_: str, edit: CalendarEdit) -> NewEvent:
    return NewEvent(type=type_, data=msgspec.to_builtins(edit, order="sorted"))


async def ensure_seeded(writer: Writer) -> bool:
    """Append the seed (from exchange_calendars' XSHG sessions) once; True when this call did it."""
    edit = load_seed_edit()

    async def handler(ctx: WriteContext) -> dict[str, Any]:
        if await ctx.stream_version(CALENDAR_STREAM) != NO_STREAM:
            return {"seeded": False}
        await ctx.append(CALENDAR_STREAM, NO_STREAM, [_event("calendar.seeded", edit)])
        return {"seeded": True}

    meta = EventMeta(actor="system", role="system", command="SeedCalendar", reason=edit.reason)
    result = await writer.execute(handler, meta, streams=[CALENDAR_STREAM])
    return bool(result.response["seeded"])


def _precheck(edit: CalendarEdit) -> None:
    problems = edit_problems(edit)
    if problems:
        raise CalendarRefused(MalformedCalendarEdit(problems=problems))


@approvable("calendar.publish", "Publish trading days (e.g. next year's holiday notice)", CalendarEdit, _precheck)
async def publish(ctx: WriteContext, edit: CalendarEdit, approval_id: str) -> dict[str, Any]:
    """An approved edit: past days stay as they were (历史交易日不可追改)."""
    current = await load_calendar(ctx.conn)
    try:
        updated = current.with_edit(edit, today=ctx.business_date)
    except CalendarError as exc:
        raise CalendarRefused(exc) from None
    await ctx.append(CALENDAR_STREAM, await ctx.stream_version(CALENDAR_STREAM), [_event("calendar.published", edit)])
    return {"first_day": updated.first_day.isoformat(), "last_day": updated.last_day.isoformat()}


async def publish_weekdays_through(db: Any, day: dt.date, *, requester: EventMeta, approver: EventMeta,
                                   reason: str) -> TradingCalendar:
    """Extend the known calendar year by year (weekdays only) until it covers `day`, each year
    requested by one operator and approved by another. For the demo and the benches, which
    must run on any date; a real market publishes the holiday notice instead. `db` is the
    service's Database (its `connection()` to read, its `writer` to write)."""
    writer: Writer = db.writer
    while True:
        async with db.primary() as conn:
            calendar = await load_calendar(conn)
        if calendar.last_day >= day:
            return calendar
        year = calendar.last_day.year + 1
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
        edit = CalendarEdit(first_day=first, last_day=last, trading_days=weekdays_except(first, last),
                            reason=f"{reason}: weekdays of {year}")
        request = approvals_domain.RequestApproval(action="calendar.publish", payload=msgspec.to_builtins(edit),
                                                   reason=reason)
        approval = (await writer.execute(request_approval(request), requester)).response["approval_id"]
        await writer.execute(approve(approval, approvals_domain.Decide(reason=reason)), approver)


def answer(fn: Any, *args: Any) -> Any:
    """Calendar arithmetic with its refusals as problems."""
    try:
        return fn(*args)
    except CalendarError as exc:
        raise CalendarRefused(exc) from None


__all__ = ["CALENDAR_STREAM", "load_calendar", "ensure_seeded", "answer", "dt"]
