"""Business dates: the market keeps Asia/Shanghai time; events are recorded in UTC."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def business_date(moment: dt.datetime) -> dt.date:
    """The market's calendar date at `moment` (e.g. 2026-11-26T17:00Z is 2026-11-27 in Tianjin)."""
    return moment.astimezone(SHANGHAI).date()
