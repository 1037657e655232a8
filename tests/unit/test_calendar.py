"""Trading-day (交易日) arithmetic on the seeded XSHG calendar, and the rules for publishing edits."""

from __future__ import annotations

import ast
import sys
from datetime import date, timedelta
from pathlib import Path

import msgspec
import pytest

from registry.calendar import domain
from registry.calendar.domain import (
    CalendarEdit,
    CalendarEditError,
    CalendarRangeError,
    MalformedCalendarEdit,
    TradingCalendar,
    weekdays_except,
)
from registry.calendar.seed import load_seed, load_seed_edit

D = date


@pytest.fixture(scope="module")
def xshg() -> TradingCalendar:
    return load_seed()


def small_calendar() -> TradingCalendar:
    """2030-01-01..2030-01-31 with weekends closed and a made-up holiday on Wednesday the 9th."""
    first, last = D(2030, 1, 1), D(2030, 1, 31)
    return TradingCalendar(
        weekdays_except(first, last, [D(2030, 1, 9)]), first_day=first, last_day=last
    )


# --- the seed ---------------------------------------------------------------------------


def test_the_seed_knows_2015_through_the_end_of_2026(xshg: TradingCalendar) -> None:
    assert (xshg.first_day, xshg.last_day) == (D(2015, 1, 1), D(2026, 12, 31))
    assert xshg.trading_days[0] == D(2015, 1, 5)  # 1-3 January 2015: 元旦 and a weekend
    assert xshg.trading_days[-1] == D(2026, 12, 31)


def test_the_seed_edit_names_its_source() -> None:
    assert load_seed_edit().reason.startswith("seed: exchange_calendars ")


def test_the_committed_seed_matches_exchange_calendars() -> None:
    pytest.importorskip("exchange_calendars")
    from registry.calendar.seed import build_xshg_seed

    edit = load_seed_edit()
    rebuilt = build_xshg_seed(edit.first_day, edit.last_day)
    assert rebuilt["trading_days"] == [d.isoformat() for d in edit.trading_days]


def test_the_2015_victory_day_closures_are_in_the_seed(xshg: TradingCalendar) -> None:
    assert not xshg.is_trading_day(D(2015, 9, 3))
    assert not xshg.is_trading_day(D(2015, 9, 4))
    assert xshg.next_trading_day(D(2015, 9, 2)) == D(2015, 9, 7)


# --- weekends and ordinary days ---------------------------------------------------------


def test_weekends_are_not_trading_days(xshg: TradingCalendar) -> None:
    assert not xshg.is_trading_day(D(2025, 3, 8))  # Saturday
    assert not xshg.is_trading_day(D(2025, 3, 9))  # Sunday
    assert xshg.is_trading_day(D(2025, 3, 10))


def test_a_make_up_working_saturday_is_still_not_a_trading_day(xshg: TradingCalendar) -> None:
    # 2025-09-28 (Sunday) and 2025-10-11 (Saturday) were 调休 working days, but exchanges stay shut.
    assert not xshg.is_trading_day(D(2025, 9, 28))
    assert not xshg.is_trading_day(D(2025, 10, 11))


def test_one_trading_day_after_friday_is_monday(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 7), 1) == D(2025, 3, 10)


def test_one_trading_day_after_a_saturday_is_the_following_monday(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 8), 1) == D(2025, 3, 10)


def test_zero_trading_days_from_a_trading_day_is_that_day(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 12), 0) == D(2025, 3, 12)


def test_zero_trading_days_from_a_weekend_rolls_forward_to_monday(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 9), 0) == D(2025, 3, 10)


def test_minus_one_trading_day_from_monday_is_the_friday_before(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 10), -1) == D(2025, 3, 7)


def test_minus_one_trading_day_from_a_sunday_is_the_friday_before(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 9), -1) == D(2025, 3, 7)
    assert xshg.previous_trading_day(D(2025, 3, 9)) == D(2025, 3, 7)


def test_adding_then_subtracting_returns_to_a_trading_day(xshg: TradingCalendar) -> None:
    start = D(2024, 6, 3)
    for n in (1, 5, 17, 250):
        assert xshg.add_trading_days(xshg.add_trading_days(start, n), -n) == start


# --- National Day (国庆节) and Spring Festival (春节) ------------------------------------


def test_national_day_2025_closes_the_market_from_1_to_8_october(xshg: TradingCalendar) -> None:
    # In 2025 中秋节 fell on 6 October, so the closure ran 1-8 October.
    assert not any(xshg.is_trading_day(D(2025, 10, day)) for day in range(1, 9))
    assert xshg.is_trading_day(D(2025, 9, 30))
    assert xshg.is_trading_day(D(2025, 10, 9))


def test_the_trading_day_after_30_september_2025_is_9_october(xshg: TradingCalendar) -> None:
    assert xshg.next_trading_day(D(2025, 9, 30)) == D(2025, 10, 9)
    assert xshg.previous_trading_day(D(2025, 10, 9)) == D(2025, 9, 30)


def test_zero_trading_days_from_national_day_rolls_forward_past_the_holiday(
    xshg: TradingCalendar,
) -> None:
    assert xshg.add_trading_days(D(2025, 10, 1), 0) == D(2025, 10, 9)


def test_national_day_2026_closes_the_market_from_1_to_7_october(xshg: TradingCalendar) -> None:
    assert not any(xshg.is_trading_day(D(2026, 10, day)) for day in range(1, 8))
    assert not xshg.is_trading_day(D(2026, 9, 25))  # 中秋节 2026
    assert xshg.next_trading_day(D(2026, 9, 30)) == D(2026, 10, 8)


def test_spring_festival_2025_closes_the_market_from_28_january_to_4_february(
    xshg: TradingCalendar,
) -> None:
    assert xshg.next_trading_day(D(2025, 1, 27)) == D(2025, 2, 5)
    assert xshg.trading_days_between(D(2025, 1, 27), D(2025, 2, 5)) == 1


def test_spring_festival_2026_closes_the_market_from_16_to_23_february(
    xshg: TradingCalendar,
) -> None:
    assert not any(xshg.is_trading_day(D(2026, 2, day)) for day in range(14, 24))
    assert xshg.next_trading_day(D(2026, 2, 13)) == D(2026, 2, 24)
    assert xshg.add_trading_days(D(2026, 2, 24), -1) == D(2026, 2, 13)


def test_five_trading_days_across_spring_festival_2026(xshg: TradingCalendar) -> None:
    # 11, 12, 13 February, then 24, 25 February.
    assert xshg.add_trading_days(D(2026, 2, 10), 5) == D(2026, 2, 25)


# --- counting (start, end] --------------------------------------------------------------


def test_trading_days_between_excludes_the_start_and_includes_the_end(
    xshg: TradingCalendar,
) -> None:
    assert xshg.trading_days_between(D(2025, 3, 10), D(2025, 3, 14)) == 4  # Tue..Fri
    assert xshg.trading_days_between(D(2025, 3, 10), D(2025, 3, 10)) == 0


def test_trading_days_between_is_negative_when_the_end_comes_first(xshg: TradingCalendar) -> None:
    assert xshg.trading_days_between(D(2025, 3, 14), D(2025, 3, 10)) == -4


def test_trading_days_between_counts_nothing_across_a_whole_holiday(xshg: TradingCalendar) -> None:
    assert xshg.trading_days_between(D(2025, 9, 30), D(2025, 10, 8)) == 0


def test_a_calendar_year_of_2025_has_243_trading_days(xshg: TradingCalendar) -> None:
    assert xshg.trading_days_between(D(2024, 12, 31), D(2025, 12, 31)) == 243


def test_counting_and_adding_agree_between_trading_days(xshg: TradingCalendar) -> None:
    start, end = D(2025, 9, 26), D(2026, 2, 27)
    assert xshg.add_trading_days(start, xshg.trading_days_between(start, end)) == end


# --- the 5-trading-day holding interval (间隔不少于5个交易日) ----------------------------


def test_a_buy_on_30_september_2025_may_be_sold_from_15_october(xshg: TradingCalendar) -> None:
    # Read as "the sale may happen on T+5 trading days" (the brief leaves T+5 vs T+6 open):
    # 9, 10, 13, 14, 15 October are the five trading days after the buy.
    bought_on = D(2025, 9, 30)
    first_allowed_sale = xshg.add_trading_days(bought_on, 5)
    assert first_allowed_sale == D(2025, 10, 15)
    assert xshg.trading_days_between(bought_on, first_allowed_sale) == 5
    assert xshg.trading_days_between(bought_on, xshg.previous_trading_day(first_allowed_sale)) == 4


def test_a_buy_on_an_ordinary_monday_may_be_sold_the_next_monday(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2025, 3, 10), 5) == D(2025, 3, 17)


# --- beyond the known range (an explicit error, never a guess) --------------------------


def test_asking_about_a_day_after_the_known_span_is_refused(xshg: TradingCalendar) -> None:
    with pytest.raises(CalendarRangeError) as caught:
        xshg.is_trading_day(D(2027, 1, 4))
    error = caught.value
    assert error.code == "calendar.beyond_known_range"
    assert (error.requested, error.first_day, error.last_day) == (
        D(2027, 1, 4),
        D(2015, 1, 1),
        D(2026, 12, 31),
    )


def test_asking_about_a_day_before_the_known_span_is_refused(xshg: TradingCalendar) -> None:
    with pytest.raises(CalendarRangeError) as caught:
        xshg.is_trading_day(D(2014, 12, 31))
    assert caught.value.requested == D(2014, 12, 31)


def test_adding_trading_days_past_the_last_known_day_is_refused(xshg: TradingCalendar) -> None:
    assert xshg.add_trading_days(D(2026, 12, 24), 5) == D(2026, 12, 31)
    with pytest.raises(CalendarRangeError) as caught:
        xshg.add_trading_days(D(2026, 12, 24), 6)
    assert caught.value.code == "calendar.beyond_known_range"


def test_the_next_trading_day_after_the_last_known_day_is_refused(xshg: TradingCalendar) -> None:
    with pytest.raises(CalendarRangeError):
        xshg.next_trading_day(D(2026, 12, 31))


def test_the_trading_day_before_the_first_known_session_is_refused(xshg: TradingCalendar) -> None:
    # 1-4 January 2015 are known non-trading days, so nothing before 5 January is known to trade.
    with pytest.raises(CalendarRangeError):
        xshg.previous_trading_day(D(2015, 1, 5))
    with pytest.raises(CalendarRangeError):
        xshg.add_trading_days(D(2015, 1, 9), -5)
    assert xshg.add_trading_days(D(2015, 1, 9), -4) == D(2015, 1, 5)


def test_rolling_forward_from_a_closed_last_known_day_is_refused() -> None:
    calendar = TradingCalendar(
        weekdays_except(D(2030, 1, 1), D(2030, 1, 5)),
        first_day=D(2030, 1, 1),
        last_day=D(2030, 1, 5),
    )
    with pytest.raises(CalendarRangeError):
        calendar.add_trading_days(D(2030, 1, 5), 0)  # a Saturday; the next session is unknown


def test_counting_to_a_day_beyond_the_known_span_is_refused(xshg: TradingCalendar) -> None:
    with pytest.raises(CalendarRangeError) as caught:
        xshg.trading_days_between(D(2026, 12, 1), D(2027, 1, 8))
    assert caught.value.requested == D(2027, 1, 8)


# --- publishing next year's days, and refusing to rewrite the past ----------------------

HOLIDAYS_2027 = [
    D(2027, 1, 1),
    D(2027, 2, 5),
    D(2027, 2, 8),
    D(2027, 2, 9),
    D(2027, 2, 10),
]  # illustrative


def publish_2027() -> CalendarEdit:
    return CalendarEdit(
        first_day=D(2027, 1, 1),
        last_day=D(2027, 12, 31),
        trading_days=weekdays_except(D(2027, 1, 1), D(2027, 12, 31), HOLIDAYS_2027),
        reason="2027 holiday notice (illustrative)",
    )


def test_publishing_next_year_extends_the_known_span(xshg: TradingCalendar) -> None:
    extended = xshg.with_edit(publish_2027(), today=D(2026, 11, 20))
    assert extended.last_day == D(2027, 12, 31)
    assert extended.first_day == D(2015, 1, 1)
    assert extended.next_trading_day(D(2026, 12, 31)) == D(2027, 1, 4)
    assert extended.add_trading_days(D(2027, 2, 4), 1) == D(2027, 2, 11)
    assert not extended.is_trading_day(D(2027, 2, 9))


def test_publishing_next_year_leaves_the_old_calendar_untouched(xshg: TradingCalendar) -> None:
    xshg.with_edit(publish_2027(), today=D(2026, 11, 20))
    assert xshg.last_day == D(2026, 12, 31)
    with pytest.raises(CalendarRangeError):
        xshg.is_trading_day(D(2027, 1, 4))


def test_the_holding_interval_may_run_into_a_newly_published_year(xshg: TradingCalendar) -> None:
    with pytest.raises(CalendarRangeError):
        xshg.add_trading_days(D(2026, 12, 28), 5)
    extended = xshg.with_edit(publish_2027(), today=D(2026, 11, 20))
    # 29, 30, 31 December; 1 January 2027 is 元旦 and 2-3 January a weekend; then 4, 5 January.
    assert extended.add_trading_days(D(2026, 12, 28), 5) == D(2027, 1, 5)


def test_a_future_holiday_may_be_added_to_the_known_span() -> None:
    calendar = small_calendar()
    extra_holiday = CalendarEdit(
        first_day=D(2030, 1, 20),
        last_day=D(2030, 1, 31),
        trading_days=weekdays_except(D(2030, 1, 20), D(2030, 1, 31), [D(2030, 1, 22)]),
        reason="extra closure announced",
    )
    edited = calendar.with_edit(extra_holiday, today=D(2030, 1, 10))
    assert not edited.is_trading_day(D(2030, 1, 22))
    assert edited.is_trading_day(D(2030, 1, 9)) is False  # days outside the edit keep their status
    assert edited.is_trading_day(D(2030, 1, 21))
    assert (edited.first_day, edited.last_day) == (calendar.first_day, calendar.last_day)


def test_an_edit_that_closes_today_is_refused() -> None:
    calendar = small_calendar()
    edit = CalendarEdit(
        first_day=D(2030, 1, 10),
        last_day=D(2030, 1, 31),
        trading_days=weekdays_except(D(2030, 1, 10), D(2030, 1, 31), [D(2030, 1, 10)]),
        reason="too late",
    )
    with pytest.raises(CalendarEditError) as caught:
        calendar.with_edit(edit, today=D(2030, 1, 10))
    error = caught.value
    assert error.code == "calendar.past_day_rewrite"
    assert error.today == D(2030, 1, 10)
    assert error.rewritten_days == (D(2030, 1, 10),)


def test_an_edit_that_reopens_a_past_holiday_is_refused(xshg: TradingCalendar) -> None:
    edit = CalendarEdit(
        first_day=D(2025, 10, 1),
        last_day=D(2025, 10, 31),
        trading_days=weekdays_except(D(2025, 10, 1), D(2025, 10, 31)),
        reason="rewrite history",
    )
    with pytest.raises(CalendarEditError) as caught:
        xshg.with_edit(edit, today=D(2026, 1, 5))
    assert caught.value.rewritten_days == tuple(D(2025, 10, d) for d in (1, 2, 3, 6, 7, 8))


def test_an_edit_restating_past_days_unchanged_is_accepted() -> None:
    calendar = small_calendar()
    restated = CalendarEdit(
        first_day=D(2030, 1, 1),
        last_day=D(2030, 2, 28),
        trading_days=weekdays_except(D(2030, 1, 1), D(2030, 2, 28), [D(2030, 1, 9), D(2030, 2, 4)]),
        reason="publish February, restating January",
    )
    edited = calendar.with_edit(restated, today=D(2030, 1, 20))
    assert edited.last_day == D(2030, 2, 28)
    assert not edited.is_trading_day(D(2030, 2, 4))


def test_an_edit_that_makes_a_past_day_before_the_calendar_known_is_refused() -> None:
    calendar = small_calendar()
    earlier = CalendarEdit(
        first_day=D(2029, 12, 1),
        last_day=D(2029, 12, 31),
        trading_days=weekdays_except(D(2029, 12, 1), D(2029, 12, 31)),
        reason="backfill",
    )
    with pytest.raises(CalendarEditError):
        calendar.with_edit(earlier, today=D(2030, 1, 10))


def test_a_lapsed_calendar_catches_up_over_past_days_after_its_last_known_day() -> None:
    calendar = small_calendar()
    late = CalendarEdit(
        first_day=D(2030, 2, 1),
        last_day=D(2030, 12, 31),
        trading_days=weekdays_except(D(2030, 2, 1), D(2030, 12, 31), [D(2030, 5, 1)]),
        reason="the notice for the rest of 2030, published late",
    )
    caught_up = calendar.with_edit(late, today=D(2030, 6, 10))
    assert caught_up.last_day == D(2030, 12, 31)
    assert not caught_up.is_trading_day(D(2030, 5, 1)) and caught_up.is_trading_day(D(2030, 5, 2))
    assert caught_up.add_trading_days(D(2030, 1, 31), 1) == D(2030, 2, 1)
    # once known, those past days are as fixed as any other
    reopened = CalendarEdit(first_day=D(2030, 5, 1), last_day=D(2030, 5, 31),
                            trading_days=weekdays_except(D(2030, 5, 1), D(2030, 5, 31)), reason="rewrite")
    with pytest.raises(CalendarEditError):
        caught_up.with_edit(reopened, today=D(2030, 6, 10))


def test_an_edit_that_leaves_a_gap_after_the_known_span_is_refused(xshg: TradingCalendar) -> None:
    edit = CalendarEdit(
        first_day=D(2027, 1, 2),
        last_day=D(2027, 12, 31),
        trading_days=weekdays_except(D(2027, 1, 2), D(2027, 12, 31)),
        reason="forgot new year's day",
    )
    with pytest.raises(MalformedCalendarEdit) as caught:
        xshg.with_edit(edit, today=D(2026, 11, 20))
    assert caught.value.code == "calendar.malformed_edit"
    assert "gap" in caught.value.problems[0]


def test_a_malformed_edit_reports_every_problem() -> None:
    edit = CalendarEdit(
        first_day=D(2030, 2, 1),
        last_day=D(2030, 2, 28),
        trading_days=(D(2030, 2, 5), D(2030, 2, 4), D(2030, 3, 1)),
        reason=" ",
    )
    with pytest.raises(MalformedCalendarEdit) as caught:
        small_calendar().with_edit(edit, today=D(2030, 1, 10))
    assert len(caught.value.problems) == 3  # outside the span, out of order, no reason


def test_folding_a_seed_and_an_edit_gives_the_extended_calendar(xshg: TradingCalendar) -> None:
    folded = TradingCalendar.from_edit(load_seed_edit()).with_edit(
        publish_2027(), today=D(2026, 11, 20)
    )
    assert folded == xshg.with_edit(publish_2027(), today=D(2026, 11, 20))
    assert folded != xshg


# --- the edit as an event payload, and the calendar as a value --------------------------


def test_a_calendar_edit_round_trips_through_json() -> None:
    edit = publish_2027()
    decoded = msgspec.json.decode(msgspec.json.encode(edit), type=CalendarEdit)
    assert decoded == edit


def test_a_calendar_edit_with_unknown_fields_is_rejected() -> None:
    raw = b'{"first_day":"2027-01-01","last_day":"2027-01-01","trading_days":[],"reason":"x","extra":1}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=CalendarEdit)


def test_a_calendar_cannot_be_mutated(xshg: TradingCalendar) -> None:
    with pytest.raises(AttributeError):
        xshg._last_day = D(2030, 1, 1)  # type: ignore[misc]


def test_a_calendar_refuses_trading_days_outside_its_span() -> None:
    with pytest.raises(ValueError):
        TradingCalendar([D(2030, 2, 1)], first_day=D(2030, 1, 1), last_day=D(2030, 1, 31))


def test_a_calendar_refuses_unsorted_trading_days() -> None:
    with pytest.raises(ValueError):
        TradingCalendar(
            [D(2030, 1, 3), D(2030, 1, 2)], first_day=D(2030, 1, 1), last_day=D(2030, 1, 31)
        )


def test_the_calendar_domain_imports_only_the_standard_library_and_msgspec() -> None:
    tree = ast.parse(Path(domain.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - set(sys.stdlib_module_names) <= {"msgspec"}


def test_every_day_of_the_seed_answers_consistently(xshg: TradingCalendar) -> None:
    trading = set(xshg.trading_days)
    day = xshg.first_day
    while day <= xshg.last_day:
        assert xshg.is_trading_day(day) == (day in trading)
        day += timedelta(days=1)


def test_an_edit_spanning_centuries_is_refused_as_malformed(xshg: TradingCalendar) -> None:
    """Every day of an edit's span becomes a row; one reaching 9999-12-31 would leave nothing to extend to."""
    edit = CalendarEdit(first_day=D(2027, 1, 1), last_day=D(9999, 12, 31), trading_days=(D(2027, 1, 4),),
                        reason="every day to the end of time")
    assert any("at most" in p for p in domain.edit_problems(edit))
    with pytest.raises(MalformedCalendarEdit):
        xshg.with_edit(edit, today=D(2026, 11, 20))
    assert domain.edit_problems(load_seed_edit()) == ()  # the seed's twelve years fit
