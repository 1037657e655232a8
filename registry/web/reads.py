"""Read-only questions the pages ask that no service answers as such: a holding's history, the
series an operator must act on, and display names. Each reads the same projections and log the
API reads; none writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg
import msgspec

from registry.eventlog import canonical
from registry.eventlog.model import StoredEvent
from registry.warrants.service import series_stream

EVENT_NAMES = {
    "warrant.series_registered": ("初始登记", "series registered"),
    "warrant.units_issued": ("份额登记", "units issued"),
    "warrant.rights_confirmed": ("确权", "rights confirmed"),
    "warrant.transferred": ("转让", "transferred"),
    "warrant.units_frozen": ("冻结", "frozen"),
    "warrant.units_thawed": ("解冻", "thawed"),
    "warrant.units_pledged": ("质押", "pledged"),
    "warrant.units_released": ("解除质押", "pledge released"),
    "warrant.exercised": ("行权", "exercised"),
    "warrant.exercise_confirmed": ("行权确认", "exercise confirmed"),
    "warrant.series_suspended": ("暂停（发行人IPO申请）", "suspended (IPO filing)"),
    "warrant.series_resumed": ("恢复，有效期顺延", "resumed, expiry extended"),
    "warrant.adjusted": ("调整", "adjusted"),
    "warrant.series_expired": ("到期", "expired"),
    "warrant.series_cancelled": ("注销", "cancelled"),
    "warrant.series_terminated": ("终止（发行人上市）", "terminated (IPO approved)"),
}
_SERIES_WIDE = {"warrant.series_registered", "warrant.series_suspended", "warrant.series_resumed",
                "warrant.adjusted", "warrant.series_expired", "warrant.series_cancelled",
                "warrant.series_terminated"}


async def investor_names(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    rows = await conn.fetch("SELECT investor_id, name FROM investor WHERE investor_id = ANY($1::text[])", wanted)
    return {r["investor_id"]: r["name"] for r in rows}


class HistoryLine(msgspec.Struct, kw_only=True, frozen=True):
    """One event on a holding: the balance before and after it, as the registration records show."""

    position: int
    day: dt.date | None
    type: str
    name_zh: str
    name_en: str
    units: int | None
    before: dict[str, int] | None
    after: dict[str, int] | None
    counterparty: str | None
    note: str | None


def _line(e: StoredEvent, account_id: str) -> HistoryLine | None:
    d: dict[str, Any] = e.data
    zh, en = EVENT_NAMES.get(e.type, (e.type, e.type))
    common = {"position": e.position, "day": e.effective_date, "type": e.type, "name_zh": zh, "name_en": en}
    if d.get("from_account") == account_id:
        return HistoryLine(**common, units=-d["units"], before=d["from_before"], after=d["from_after"],
                           counterparty=d["to_account"], note=d.get("mode"))
    if d.get("to_account") == account_id:
        return HistoryLine(**common, units=d["units"], before=d["to_before"], after=d["to_after"],
                           counterparty=d["from_account"], note=d.get("mode"))
    if d.get("account_id") == account_id:
        note = d.get("document_ref") or d.get("reason")
        units = d.get("units")
        if e.type == "warrant.exercised":
            note = f"应付 payment due ¥{d['payment_due_fen'] / 100:,.2f} → {d['payee']['id']}"
            units = -units  # the units leave the holding
        return HistoryLine(**common, units=units, before=d.get("before"), after=d.get("after"),
                           counterparty=None, note=note)
    if e.type in _SERIES_WIDE:
        return HistoryLine(**common, units=None, before=None, after=None, counterparty=None, note=d.get("reason"))
    return None


async def holding_history(conn: asyncpg.Connection, code: str, account_id: str) -> list[HistoryLine]:
    """The series' events that touch the account, and those that change the whole series, in log order.

    A busy series has many thousands of events: the database picks out the ones whose stored bytes
    name the account (as a JSON string) or that change the whole series, and only those are decoded;
    `_line` then decides exactly.
    """
    rows = await conn.fetch(
        f"SELECT {canonical.STORED_COLUMNS} FROM event WHERE stream_id = $1 "
        "AND (position($2::bytea IN canonical) > 0 OR event_type = ANY($3::text[])) ORDER BY position",
        series_stream(code), msgspec.json.encode(account_id), sorted(_SERIES_WIDE))
    events = (canonical.stored(r) for r in rows)
    return [line for e in events if (line := _line(e, account_id)) is not None]


class SeriesAttention(msgspec.Struct, kw_only=True, frozen=True):
    """A live series an operator should look at, and every reason why."""

    code: str
    name: str
    target_uscc: str
    target_name: str
    status: str
    valid_until: dt.date
    days_left: int
    suspended_since: dt.date | None
    units_outstanding: int
    frozen_units: int
    frozen_holdings: int
    reasons: list[tuple[str, str]]
    """(中文, English) per reason."""


async def series_needing_action(conn: asyncpg.Connection, today: dt.date, within_days: int) -> list[SeriesAttention]:
    """Live series expiring within `within_days` (or already past expiry), suspended, or with frozen units."""
    rows = await conn.fetch(
        "SELECT s.code, s.name, s.target_uscc, e.name AS target_name, s.status, s.valid_until, s.suspended_since, "
        "s.units_outstanding, coalesce(sum(h.frozen), 0)::bigint AS frozen_units, "
        "count(h.account_id) FILTER (WHERE h.frozen > 0) AS frozen_holdings "
        "FROM warrant_series s JOIN enterprise e ON e.uscc = s.target_uscc "
        "LEFT JOIN holding h ON h.series_code = s.code "
        "WHERE s.status IN ('registered', 'suspended') GROUP BY s.code, e.name "
        "HAVING s.status = 'suspended' OR s.valid_until <= $1::date + $2::int OR coalesce(sum(h.frozen), 0) > 0 "
        "ORDER BY s.valid_until, s.code", today, within_days)
    found = []
    for r in rows:
        days_left = (r["valid_until"] - today).days
        reasons = []
        if r["status"] == "registered" and days_left < 0:
            reasons.append(("有效期已过，待到期处理", f"window closed {-days_left} day(s) ago: expiry is due"))
        elif r["status"] == "registered" and days_left <= within_days:
            reasons.append((f"{days_left} 天后到期", f"expires in {days_left} day(s)"))
        if r["status"] == "suspended":
            reasons.append((f"自 {r['suspended_since']} 起暂停（IPO申请）",
                            f"suspended since {r['suspended_since']} (IPO filing)"))
        if r["frozen_units"]:
            reasons.append((f"{r['frozen_holdings']} 个持仓冻结 {r['frozen_units']} 份",
                            f"{r['frozen_units']} units frozen on {r['frozen_holdings']} holding(s)"))
        found.append(SeriesAttention(**{k: r[k] for k in (
            "code", "name", "target_uscc", "target_name", "status", "valid_until", "suspended_since",
            "units_outstanding", "frozen_units", "frozen_holdings")}, days_left=days_left, reasons=reasons))
    return found
