"""What a holder may still do with a holding today, and why not.

No rule is restated here: each check the registry runs on a transfer or an exercise
(`registry.warrants.domain`) runs on today's facts, gathered by the warrant service's own
queries, and every refusal is kept — not just the first — with the day it stops applying
where that is knowable (the 5-trading-day holding interval).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from registry.calendar.domain import CalendarError
from registry.calendar.service import load_calendar
from registry.errors import RegistryError
from registry.warrants import domain
from registry.warrants import service as warrants
from registry.warrants.domain import (
    AccountFacts,
    Balance,
    InsufficientAvailable,
    IntervalFacts,
)

# The rules a transfer and an exercise apply, one by one (the decide_* functions stop at the first).
check_live = domain.check_live
check_window = domain.check_window
check_can_send = domain.check_can_send
check_can_receive = domain.check_can_receive

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


async def _interval(conn: asyncpg.Connection, code: str, investor_id: str, today: dt.date,
                    ) -> tuple[IntervalFacts, Callable[[dt.date, int], dt.date | None]]:
    row = await conn.fetchrow("SELECT last_buy, last_sell FROM trade_interval WHERE series_code = $1 "
                              "AND investor_id = $2", code, investor_id)
    calendar = await load_calendar(conn)

    def since(day: dt.date | None) -> int | None:
        return None if day is None else calendar.trading_days_between(day, today)

    def earliest(day: dt.date, n: int) -> dt.date | None:
        try:
            return calendar.add_trading_days(day, n)
        except CalendarError:
            return None  # beyond the published calendar: the day is not yet knowable

    if row is None:
        return IntervalFacts(), earliest
    try:
        facts = IntervalFacts(last_buy=row["last_buy"], last_sell=row["last_sell"],
                              trading_days_since_buy=since(row["last_buy"]),
                              trading_days_since_sell=since(row["last_sell"]))
    except CalendarError:
        facts = IntervalFacts()
    return facts, earliest


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
    series = await warrants.series_facts(conn, code)
    account: AccountFacts = await warrants.account_facts(conn, account_id, today)
    balance = await warrants.holding_balance(conn, code, account_id)
    interval, earliest = await _interval(conn, code, account.investor_id, today)

    def live() -> None:
        check_live(series)

    def window() -> None:
        check_window(series, today)

    sell = [_reason(e) for e in _collect([live, window, lambda: check_can_send(account),
                                          lambda: _no_available(balance)])]
    if (r := _interval_check(interval, "sell", interval_days, t_plus_allowed, earliest)) is not None:
        sell.append(r)
    buy = [_reason(e) for e in _collect([live, window, lambda: check_can_receive(account, today)])]
    if (r := _interval_check(interval, "buy", interval_days, t_plus_allowed, earliest)) is not None:
        buy.append(r)
    exercise = [_reason(e) for e in _collect([live, window, lambda: check_can_send(account),
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
