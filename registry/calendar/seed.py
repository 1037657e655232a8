"""The initial trading days, taken from exchange_calendars' Shanghai (XSHG) calendar and committed as JSON.

Regenerate with `python -m registry.calendar.seed` (needs exchange_calendars); the service only
reads the committed `xshg_seed.json`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from importlib import resources
from pathlib import Path

import msgspec

from registry.calendar.domain import CalendarEdit, TradingCalendar

SEED_FILE = "xshg_seed.json"
SEED_FIRST_DAY = date(2015, 1, 1)


class CalendarSeed(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The committed seed file: where the days came from, and the span they cover completely."""

    source: str
    """e.g. "exchange_calendars 4.13.2 XSHG"."""
    note: str
    first_day: date
    last_day: date
    trading_days: tuple[date, ...]

    def as_edit(self) -> CalendarEdit:
        """The seed as the calendar's first edit (the payload of a seeding event)."""
        return CalendarEdit(
            first_day=self.first_day,
            last_day=self.last_day,
            trading_days=self.trading_days,
            reason=f"seed: {self.source}",
        )


def build_xshg_seed(start: date, end: date) -> dict:
    """The XSHG sessions in [start, end] as a seed document (the same shape as `xshg_seed.json`).

    exchange_calendars refuses an `end` beyond the last year whose holidays it records.
    """
    import exchange_calendars  # Only for regenerating the seed; not a run-time import.

    with _quiet_pandas():
        calendar = exchange_calendars.get_calendar(
            "XSHG", start=start.isoformat(), end=end.isoformat()
        )
        # The calendar was built for exactly [start, end]: all of its sessions are the span's trading days.
        sessions = [session.date() for session in calendar.sessions]
        last_recorded_day = _last_recorded_xshg_day()
    return {
        "source": f"exchange_calendars {exchange_calendars.__version__} XSHG",
        "note": (
            f"Shanghai Stock Exchange sessions {start.isoformat()}..{end.isoformat()}. exchange_calendars"
            f" records XSHG holidays only up to {last_recorded_day.isoformat()}; days after"
            " last_day are unknown until operators publish them (国务院办公厅 holiday notice, usually"
            " in November for the following year)."
        ),
        "first_day": start.isoformat(),
        "last_day": end.isoformat(),
        "trading_days": [session.isoformat() for session in sessions],
    }


def load_seed_edit() -> CalendarEdit:
    """The committed seed as the calendar's first edit."""
    raw = resources.files("registry.calendar").joinpath(SEED_FILE).read_bytes()
    return msgspec.json.decode(raw, type=CalendarSeed).as_edit()


def load_seed() -> TradingCalendar:
    """The trading calendar as seeded, before any operator edits."""
    return TradingCalendar.from_edit(load_seed_edit())


def _last_recorded_xshg_day() -> date:
    """The end of the last year whose XSHG holidays exchange_calendars hard-codes."""
    import exchange_calendars

    with _quiet_pandas():
        calendar_class = type(exchange_calendars.get_calendar("XSHG"))
        return calendar_class.bound_max().date()


@contextmanager
def _quiet_pandas() -> Iterator[None]:
    """Silence pandas deprecation noise raised inside exchange_calendars; nothing here can act on it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def main() -> None:
    seed = build_xshg_seed(SEED_FIRST_DAY, _last_recorded_xshg_day())
    path = Path(__file__).with_name(SEED_FILE)
    # One date per line keeps a regenerated seed reviewable as a diff.
    text = msgspec.json.format(msgspec.json.encode(seed), indent=1)
    path.write_bytes(text + b"\n")
    print(
        f"wrote {path}: {len(seed['trading_days'])} trading days {seed['first_day']}..{seed['last_day']}"
    )


if __name__ == "__main__":
    main()
