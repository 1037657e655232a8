"""Trading-day (交易日) arithmetic over a known span, and the edits operators publish to extend it."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Annotated

import msgspec


class CalendarError(Exception):
    """Base of the calendar's business errors; `code` is stable and safe to show to clients."""

    code: str = "calendar.error"


class CalendarRangeError(CalendarError):
    """The calendar only answers inside the span it knows (已公布的交易日历); beyond it, it refuses.

    A trading calendar beyond its published span is unknown, not "weekdays": guessing would
    let a holding interval or a deadline silently land on a future holiday.
    """

    code = "calendar.beyond_known_range"

    def __init__(
        self, *, requested: date, first_day: date, last_day: date, detail: str = ""
    ) -> None:
        self.requested = requested
        self.first_day = first_day
        self.last_day = last_day
        self.detail = detail
        message = f"{requested.isoformat()} is outside the known trading calendar {first_day.isoformat()}..{last_day.isoformat()}"
        super().__init__(f"{message}: {detail}" if detail else message)


class CalendarEditError(CalendarError):
    """Past trading days are never rewritten (历史交易日不可追改).

    An edit may not change whether any day on or before `today` is a trading day, nor make a
    past day before the known span known after the fact: decisions already taken (holding
    intervals, deadlines) were computed against the calendar as it stood.

    One exception: a calendar that lapsed (its last known day passed before the next year was
    published) may be caught up by extending it over the past days that follow its last known
    day. No decision rests on those days — every question that reached past the known span was
    refused — and without the catch-up the market could never answer a trading-day question again.
    """

    code = "calendar.past_day_rewrite"

    def __init__(self, *, today: date, rewritten_days: tuple[date, ...]) -> None:
        self.today = today
        self.rewritten_days = rewritten_days
        shown = ", ".join(d.isoformat() for d in rewritten_days[:5])
        more = f" and {len(rewritten_days) - 5} more" if len(rewritten_days) > 5 else ""
        super().__init__(
            f"edit would change {len(rewritten_days)} day(s) on or before {today.isoformat()}: {shown}{more}"
        )


class MalformedCalendarEdit(CalendarError):
    """An edit must describe one contiguous span completely; every problem found is listed."""

    code = "calendar.malformed_edit"

    def __init__(self, *, problems: tuple[str, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CalendarEdit(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Operators publish the trading days (交易日) of a span, e.g. next year's after the holiday notice.

    The edit states the whole truth for [first_day, last_day]: the listed days are trading
    days, every other day of the span is not. It is also the event payload, so it carries
    dates only and no derived state.
    """

    first_day: date
    last_day: date
    trading_days: Annotated[tuple[date, ...], msgspec.Meta(max_length=3660)]
    """Strictly ascending, each within [first_day, last_day] (ten years of days at most)."""
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, extra={"text": "prose"})]
    """Why: e.g. "国务院办公厅关于2027年部分节假日安排的通知" or the seed's source."""


MAX_EDIT_DAYS = 20 * 366
"""Longest span one edit states: every day of it becomes a row, and a span reaching 9999-12-31 would leave
no day after it to extend to."""


def edit_problems(edit: CalendarEdit) -> tuple[str, ...]:
    """Every way in which an edit fails to describe one span completely; empty when well formed."""
    problems = list(_span_problems(edit.first_day, edit.last_day, edit.trading_days))
    if (edit.last_day - edit.first_day).days >= MAX_EDIT_DAYS:
        problems.append(f"the edit spans {edit.first_day.isoformat()}..{edit.last_day.isoformat()}; one edit "
                        f"covers at most {MAX_EDIT_DAYS} days (the seed's twelve years fit)")
    if not edit.reason.strip():
        problems.append("reason is empty")
    return tuple(problems)


def _span_problems(
    first_day: date, last_day: date, trading_days: tuple[date, ...]
) -> tuple[str, ...]:
    problems: list[str] = []
    if last_day < first_day:
        problems.append(
            f"last_day {last_day.isoformat()} is before first_day {first_day.isoformat()}"
        )
    outside = [d for d in trading_days if not first_day <= d <= last_day]
    if outside:
        problems.append(
            "trading days outside the span: " + ", ".join(d.isoformat() for d in outside[:5])
        )
    out_of_order = [b for a, b in zip(trading_days, trading_days[1:]) if b <= a]
    if out_of_order:
        problems.append(
            "trading days not strictly ascending at: "
            + ", ".join(d.isoformat() for d in out_of_order[:5])
        )
    return tuple(problems)


def weekdays_except(
    first_day: date, last_day: date, closed_days: Iterable[date] = ()
) -> tuple[date, ...]:
    """Monday–Friday in [first_day, last_day] minus the announced closures (休市日).

    How the mainland exchanges publish a year: weekends are always closed (even a 调休
    make-up working Saturday is not a trading day), and the holiday notice names the
    weekday closures.
    """
    closed = frozenset(closed_days)
    days = []
    day = first_day
    while day <= last_day:
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    return tuple(days)


class TradingCalendar:
    """The market's trading days (交易日) over the span it knows, [first_day, last_day].

    A day inside the span is a trading day exactly when it is listed; a day outside the span
    is unknown and every question about it raises `CalendarRangeError`. Immutable: edits
    return a new calendar.
    """

    __slots__ = ("_first_day", "_last_day", "_ordinals")

    def __init__(self, trading_days: Iterable[date], *, first_day: date, last_day: date) -> None:
        days = tuple(trading_days)
        problems = _span_problems(first_day, last_day, days)
        if problems:
            # Bad construction data is a programming or seed-file error, not an operator's edit.
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "_first_day", first_day)
        object.__setattr__(self, "_last_day", last_day)
        object.__setattr__(self, "_ordinals", tuple(d.toordinal() for d in days))

    @classmethod
    def from_edit(cls, edit: CalendarEdit) -> TradingCalendar:
        """The calendar that knows exactly the edit's span: how a seed becomes the first state."""
        return cls(edit.trading_days, first_day=edit.first_day, last_day=edit.last_day)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("TradingCalendar is immutable; use with_edit to derive a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("TradingCalendar is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TradingCalendar):
            return NotImplemented
        return (self._first_day, self._last_day, self._ordinals) == (
            other._first_day,
            other._last_day,
            other._ordinals,
        )

    def __hash__(self) -> int:
        return hash((self._first_day, self._last_day, self._ordinals))

    def __repr__(self) -> str:
        return (
            f"TradingCalendar({self._first_day.isoformat()}..{self._last_day.isoformat()},"
            f" {len(self._ordinals)} trading days)"
        )

    @property
    def first_day(self) -> date:
        return self._first_day

    @property
    def last_day(self) -> date:
        return self._last_day

    @property
    def trading_days(self) -> tuple[date, ...]:
        """Every trading day of the known span, ascending (for snapshots and exports)."""
        return tuple(date.fromordinal(o) for o in self._ordinals)

    def knows(self, day: date) -> bool:
        """Whether `day` lies inside the known span; the only question that never raises."""
        return self._first_day <= day <= self._last_day

    def is_trading_day(self, day: date) -> bool:
        """Whether the market trades on `day` (交易日)."""
        self._require_known(day)
        ordinal = day.toordinal()
        index = bisect.bisect_left(self._ordinals, ordinal)
        return index < len(self._ordinals) and self._ordinals[index] == ordinal

    def add_trading_days(self, day: date, n: int) -> date:
        """Move `n` trading days from `day` (T+n in 交易日).

        - n > 0: the n-th trading day strictly after `day`. From a non-trading day, +1 is the
          next trading day after it (from Saturday, +1 is the following Monday if it trades).
        - n < 0: the |n|-th trading day strictly before `day`.
        - n = 0: `day` itself if it is a trading day, otherwise the next trading day after it
          (rolls forward, never back).

        Raises `CalendarRangeError` if `day` is unknown or the answer lies beyond the span.
        """
        self._require_known(day)
        ordinal = day.toordinal()
        if n > 0:
            index = bisect.bisect_right(self._ordinals, ordinal) + n - 1
        elif n < 0:
            index = bisect.bisect_left(self._ordinals, ordinal) + n
        else:
            index = bisect.bisect_left(self._ordinals, ordinal)
        if index < 0 or index >= len(self._ordinals):
            raise CalendarRangeError(
                requested=day,
                first_day=self._first_day,
                last_day=self._last_day,
                detail=f"moving {n} trading day(s) from it runs beyond the known span",
            )
        return date.fromordinal(self._ordinals[index])

    def next_trading_day(self, day: date) -> date:
        """The first trading day strictly after `day`."""
        return self.add_trading_days(day, 1)

    def previous_trading_day(self, day: date) -> date:
        """The last trading day strictly before `day`."""
        return self.add_trading_days(day, -1)

    def trading_days_between(self, start: date, end: date) -> int:
        """How many trading days lie in the half-open interval (start, end].

        `start` is excluded and `end` included, so a trade on T and a day T+k are k apart, and
        `add_trading_days(start, trading_days_between(start, end)) == end` whenever `start`
        and `end` are trading days. If end < start the count is negative:
        between(a, b) == -between(b, a).
        """
        self._require_known(start)
        self._require_known(end)
        return bisect.bisect_right(self._ordinals, end.toordinal()) - bisect.bisect_right(
            self._ordinals, start.toordinal()
        )

    def with_edit(self, edit: CalendarEdit, *, today: date) -> TradingCalendar:
        """A new calendar with the edit's span restated and the known span widened to cover it.

        The edit's span must touch or overlap the known span (no unknown gap may open inside
        the calendar). Refused with `CalendarEditError` if any day on or before `today` would
        change status, including a past day before the known span going from unknown to known;
        past days after the last known day may become known (catching up a lapsed calendar, see
        `CalendarEditError`). When folding stored edit events, pass the date on which each edit
        was accepted as `today`.
        """
        problems = list(edit_problems(edit))
        if not problems and (
            edit.first_day > self._last_day + timedelta(days=1)
            or edit.last_day < self._first_day - timedelta(days=1)
        ):
            problems.append(
                f"edit span {edit.first_day.isoformat()}..{edit.last_day.isoformat()} leaves a gap with"
                f" the known span {self._first_day.isoformat()}..{self._last_day.isoformat()}"
            )
        if problems:
            raise MalformedCalendarEdit(problems=tuple(problems))

        edited = frozenset(d.toordinal() for d in edit.trading_days)
        rewritten = []
        day = edit.first_day
        while day <= min(edit.last_day, today):
            if self.knows(day):
                if self.is_trading_day(day) != (day.toordinal() in edited):
                    rewritten.append(day)
            elif day < self._first_day:
                rewritten.append(day)
            day += timedelta(days=1)
        if rewritten:
            raise CalendarEditError(today=today, rewritten_days=tuple(rewritten))

        first_ordinal, last_ordinal = edit.first_day.toordinal(), edit.last_day.toordinal()
        before = self._ordinals[: bisect.bisect_left(self._ordinals, first_ordinal)]
        after = self._ordinals[bisect.bisect_right(self._ordinals, last_ordinal) :]
        ordinals = before + tuple(sorted(edited)) + after
        return TradingCalendar(
            (date.fromordinal(o) for o in ordinals),
            first_day=min(self._first_day, edit.first_day),
            last_day=max(self._last_day, edit.last_day),
        )

    def _require_known(self, day: date) -> None:
        if not self.knows(day):
            raise CalendarRangeError(
                requested=day, first_day=self._first_day, last_day=self._last_day
            )
