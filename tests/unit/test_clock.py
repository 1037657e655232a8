"""The market's one clock: the system's, or one that starts on a chosen day (`REGISTRY_CLOCK`) and runs on."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from registry.clock import business_date, fixed_clock, market_clock, market_moment, system_clock
from registry.settings import Settings


def test_unset_the_market_keeps_the_system_clock() -> None:
    assert market_clock(None) is system_clock
    assert Settings.from_env({}).clock is None


def test_a_set_clock_starts_at_the_chosen_moment_and_runs_on() -> None:
    settings = Settings.from_env({"REGISTRY_CLOCK": "2026-11-26T10:00+08:00"})
    clock = market_clock(settings.clock)
    first = clock()
    assert first.tzinfo is not None and first.utcoffset() == dt.timedelta(0)
    assert dt.timedelta(0) <= first - dt.datetime(2026, 11, 26, 2, tzinfo=dt.timezone.utc) < dt.timedelta(seconds=5)
    time.sleep(0.01)
    assert clock() > first
    assert business_date(first) == dt.date(2026, 11, 26)


def test_a_moment_without_an_offset_is_tianjin_time() -> None:
    clock = market_clock(Settings.from_env({"REGISTRY_CLOCK": "2026-11-26T23:30:00"}).clock)
    assert business_date(clock()) == dt.date(2026, 11, 26)
    assert clock().hour == 15  # 23:30 in Tianjin is 15:30 UTC


def test_a_malformed_clock_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"REGISTRY_CLOCK": "next tuesday"})


def test_a_fixed_clock_stands_still_and_a_market_moment_is_ten_in_tianjin() -> None:
    moment = market_moment(dt.date(2027, 1, 4))
    assert moment == dt.datetime(2027, 1, 4, 2, tzinfo=dt.timezone.utc)
    clock = fixed_clock(moment)
    assert clock() == clock() == moment
