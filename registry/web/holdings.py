"""What a holder may still do with a holding today, and why not.

No rule is restated here: each check the registry runs on a transfer or an exercise
(`registry.warrants.domain`) runs on today's facts, gathered by the warrant service's own
queries, and every refusal is kept — not just the first — with the day it stops applying
where that is knowable (the 5-trading-day holding interval).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import msgspec

from registry.calendar.domain import CalendarError, TradingCalendar
from registry.calendar.service import load_calendar
from registry.errors import RegistryError
from registry.warrants import domain, hot
from registry.warrants import service as warrants
from registry.warrants.domain import (
    AccountFacts,
    Balance,
    InsufficientAvailable,
    IntervalFacts,
    SeriesFacts,
)

_REASONS_ZH = {
    "warrant.series_not_live": "认股权已不在存续期（{series_status}）",
    "warrant.series_suspended": "发行人IPO申请期间，认股权暂停",
    "warrant.outside_validity_window": "不在有效期内（{valid_from} 至 {valid_until}）",
    "warrant.account_frozen": "账户已被冻结",
    "warrant.account_not_open": "账户不可用",
    "warrant.investor_not_qualified": "持有人不是有效的合格投资者",
    "warrant.holding_interval": "买卖间隔不足{trading_days_required}个交易日",
    "warrant.insufficient_available_units": "没有可用份额（质押 {pledged}、冻结 {frozen} 份不可动用）",
}


class Reason(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    zh: str
    en: str
    until: dt.date | None = None
    """The first day the reason no longer applies, where the rules say (the holding interval)."""


class Action(msgspec.Struct, kw_only=True, frozen=True):
    key: str
    zh: str
    en: str
    allowed: bool
    units: int
    """Units the action may move now (0 when refused)."""
    reasons: list[Reason]
    note: str | None = None


class HoldingOptions(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    account_id: str
    today: dt.date
    balance: Balance
    actions: list[Action]


def _reason(exc: RegistryError, until: dt.date | None = None, en: str | None = None) -> Reason:
    template = _REASONS_ZH.get(exc.code, exc.title)
    try:
        zh = template.format(**exc.figures)
    except (KeyError, IndexError):
        zh = template
    return Reason(code=exc.code, zh=zh, en=en or exc.detail, until=until)


def _collect(checks: list[Callable[[], Any]]) -> list[RegistryError]:
    refused = []
    for check in checks:
        try:
            check()
        except RegistryError as exc:
            refused.append(exc)
    return refused


def _no_available(balance: Balance) -> None:
    if balance.available <= 0:
        raise InsufficientAvailable(
            f"nothing is available: {balance.pledged} pledged and {balance.frozen} frozen units neither transfer "
            "nor exercise", available=balance.available, pledged=balance.pledged, frozen=balance.frozen, requested=1)


def _intervals(rows: list[asyncpg.Record], calendar: TradingCalendar, today: dt.date,
               ) -> dict[tuple[str, str], IntervalFacts]:
    """Each (series, investor)'s last buy and sell, with the trading days since them (none if unknowable)."""
    def since(day: dt.date | None) -> int | None:
        return None if day is None else calendar.trading_days_between(day, today)

    found = {}
    for row in rows:
        try:
            found[(row["series_code"], row["investor_id"])] = IntervalFacts(
                last_buy=row["last_buy"], last_sell=row["last_sell"], trading_days_since_buy=since(row["last_buy"]),
                trading_days_since_sell=since(row["last_sell"]))
        except CalendarError:
            pass  # beyond the published calendar: as if no trade were known
    return found


def _interval_check(interval: IntervalFacts, side: str, minimum: int, t_plus_allowed: bool,
                    earliest: Callable[[dt.date, int], dt.date | None]) -> Reason | None:
    try:
        domain.check_interval(interval, side, minimum=minimum, t_plus_allowed=t_plus_allowed)
    except domain.HoldingIntervalNotElapsed as exc:
        last = dt.date.fromisoformat(exc.figures["last_opposite_trade"])
        needed = exc.figures["trading_days_required"]
        day = earliest(last, needed)
        verb = "sell" if side == "sell" else "buy"
        when = f"{verb} allowed from {day}" if day else f"{verb} allowed {needed} trading days after {last}"
        return _reason(exc, until=day, en=f"{when}: {minimum}-trading-day holding interval "
                                          f"(last {'bought' if side == 'sell' else 'sold'} on {last})")
    return None


async def holding_options(conn: asyncpg.Connection, code: str, account_id: str, *, today: dt.date,
                          interval_days: int, t_plus_allowed: bool) -> HoldingOptions:
    """Transfer out, receive more, exercise: allowed today or not, with every reason the rules give."""
    found = await options_for(conn, [(code, account_id)], today=today, interval_days=interval_days,
                              t_plus_allowed=t_plus_allowed)
    return found[(code, account_id)]


async def options_for(conn: asyncpg.Connection, holdings: Iterable[tuple[str, str]], *, today: dt.date,
                      interval_days: int, t_plus_allowed: bool) -> dict[tuple[str, str], HoldingOptions]:
    """`holding_options` for several (series, account) holdings: the calendar, each series' and each
    account's facts and the holding intervals are read once for all of them."""
    keys = list(dict.fromkeys(holdings))
    if not keys:
        return {}
    series = {code: await warrants.series_facts(conn, code) for code in dict.fromkeys(c for c, _ in keys)}
    accounts: dict[str, AccountFacts] = await hot.account_facts(conn, (a for _, a in keys), today)
    calendar = await load_calendar(conn)
    rows = await conn.fetch("SELECT series_code, investor_id, last_buy, last_sell FROM trade_interval "
                            "WHERE series_code = ANY($1::text[]) AND investor_id = ANY($2::text[])",
                            list(series), sorted({a.investor_id for a in accounts.values()}))
    intervals = _intervals(rows, calendar, today)
    balances = await warrants.holding_balances(conn, keys)

    def earliest(day: dt.date, n: int) -> dt.date | None:
        try:
            return calendar.add_trading_days(day, n)
        except CalendarError:
            return None  # beyond the published calendar: the day is not yet knowable

    found = {}
    for code, account_id in keys:
        account = accounts[account_id]
        found[(code, account_id)] = _options(
            code, account_id, today, series[code], account, balances[(code, account_id)],
            intervals.get((code, account.investor_id), IntervalFacts()), earliest, interval_days, t_plus_allowed)
    return found


def _options(code: str, account_id: str, today: dt.date, series: SeriesFacts, account: AccountFacts,
             balance: Balance, interval: IntervalFacts, earliest: Callable[[dt.date, int], dt.date | None],
             interval_days: int, t_plus_allowed: bool) -> HoldingOptions:
    def live() -> None:
        domain.check_live(series)

    def window() -> None:
        domain.check_window(series, today)

    sell = [_reason(e) for e in _collect([live, window, lambda: domain.check_can_send(account),
                                          lambda: _no_available(balance)])]
    if (r := _interval_check(interval, "sell", interval_days, t_plus_allowed, earliest)) is not None:
        sell.append(r)
    buy = [_reason(e) for e in _collect([live, window, lambda: domain.check_can_receive(account, today)])]
    if (r := _interval_check(interval, "buy", interval_days, t_plus_allowed, earliest)) is not None:
        buy.append(r)
    exercise = [_reason(e) for e in _collect([live, window, lambda: domain.check_can_send(account),
                                              lambda: _no_available(balance)])]
    modes = "、".join(str(m) for m in series.terms.transfer_modes)
    return HoldingOptions(code=code, account_id=account_id, today=today, balance=balance, actions=[
        Action(key="sell", zh="转让（卖出）", en="transfer out (sell)", allowed=not sell,
               units=0 if sell else balance.available, reasons=sell,
               note=f"一对一协议转让，对手方须为合格投资者 · bilateral, to one qualified investor; modes: {modes}"),
        Action(key="buy", zh="受让（买入）", en="receive (buy)", allowed=not buy, units=0, reasons=buy,
               note=f"持有人上限 holder cap {series.terms.max_holders}"),
        Action(key="exercise", zh="行权", en="exercise", allowed=not exercise,
               units=0 if exercise else balance.available, reasons=exercise,
               note=f"行权价 {series.terms.exercise_price_per_unit} 元/份 · exercise price per unit; "
                    f"有效期至 valid until {series.valid_until}"),
    ])
