"""Warrant registry use cases: gather the facts a rule needs, decide, append; and the queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import msgspec

from registry.approvals.service import approvable
from registry.calendar.service import answer
from registry.errors import Conflict, Forbidden, RuleViolation
from registry.eventlog import canonical
from registry.eventlog.model import NewEvent
from registry.eventlog.writer import NO_STREAM, Handler, WriteContext
from registry.fields import Identifier, Name, Reason, ShareAmount
from registry.parties.domain import EnterpriseNotFound
from registry.parties.service import enterprise_stream
from registry.warrants import domain, hot, projection  # noqa: F401 - projection registers the projectors
from registry.warrants.domain import (
    Balance,
    HolderCapBasis,
    IntervalFacts,
    Lot,
    SeriesFacts,
    SeriesNotFound,
    SeriesState,
    SeriesStatus,
    SeriesTerms,
)


def series_stream(code: str) -> str:
    return f"series-{code}"


# -- facts ----------------------------------------------------------------------------------


async def series_facts(conn: asyncpg.Connection, code: str) -> SeriesFacts:
    row = await conn.fetchrow(
        "SELECT s.*, (SELECT coalesce(sum(frozen), 0) FROM holding WHERE series_code = s.code) AS frozen_units "
        "FROM warrant_series s WHERE code = $1", code)
    if row is None:
        raise SeriesNotFound(f"no warrant series {code}", code=code)
    return SeriesFacts(
        code=row["code"], target_uscc=row["target_uscc"], status=SeriesStatus(row["status"]),
        terms=msgspec.json.decode(row["terms"], type=SeriesTerms), entitlement_per_unit=row["entitlement_per_unit"],
        valid_until=row["valid_until"], suspended_since=row["suspended_since"], units_issued=row["units_issued"],
        units_outstanding=row["units_outstanding"], units_exercised=row["units_exercised"],
        units_cancelled=row["units_cancelled"], units_expired=row["units_expired"], frozen_units=row["frozen_units"],
    )


async def holding_balance(conn: asyncpg.Connection, code: str, account_id: str) -> Balance:
    return (await holding_balances(conn, [(code, account_id)]))[(code, account_id)]


async def holding_balances(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Balance]:
    """The balances of (series, account) holdings, in one query; a holding never opened is zero."""
    rows = await conn.fetch(
        "SELECT h.series_code, h.account_id, h.available, h.pledged, h.frozen FROM holding h "
        "JOIN unnest($1::text[], $2::text[]) AS k(series_code, account_id) USING (series_code, account_id)",
        [code for code, _ in keys], [account for _, account in keys])
    found = {(r["series_code"], r["account_id"]): Balance(available=r["available"], pledged=r["pledged"],
                                                          frozen=r["frozen"]) for r in rows}
    return {key: found.get(key, Balance()) for key in keys}


async def active_lots(conn: asyncpg.Connection, code: str, account_id: str) -> list[Lot]:
    rows = await conn.fetch("SELECT lot_id, account_id, units, parent, origin FROM warrant_lot WHERE series_code = $1 "
                            "AND account_id = $2 AND active ORDER BY created_position, lot_id", code, account_id)
    return [Lot(**dict(r)) for r in rows]


# -- writes ---------------------------------------------------------------------------------


def _precheck_terms(terms: SeriesTerms) -> None:
    if not terms.allocations:
        raise domain.TermsInvalid("the initial allocation names at least one holder",
                                  problems=["the initial allocation names at least one holder"])


@approvable("warrant.register", "Register a warrant series (认股权初始登记)", SeriesTerms, _precheck_terms)
async def register(ctx: WriteContext, terms: SeriesTerms, approval_id: str) -> dict[str, Any]:
    legal_form = await ctx.conn.fetchval("SELECT legal_form FROM enterprise WHERE uscc = $1", terms.target_uscc)
    if legal_form is None:
        raise EnterpriseNotFound(f"no enterprise {terms.target_uscc}", uscc=terms.target_uscc)
    count = await ctx.conn.fetchval("SELECT count(*) FROM warrant_series")
    code = f"WR{count + 1:06d}"
    accounts = await hot.accounts(ctx, [a.account_id for a in terms.allocations], ctx.business_date)
    events = domain.decide_register(code, terms, accounts, approval_id=approval_id, today=ctx.business_date,
                                    legal_form=legal_form, basis=HolderCapBasis(ctx.settings.holder_cap_basis),
                                    position=ctx.next_position)
    await ctx.append(series_stream(code), NO_STREAM, events)
    return {"code": code, "units_issued": sum(a.units for a in terms.allocations)}


def confirm_rights(code: str, account_id: str) -> Handler:
    """确权: the holder (or an operator for it) confirms the units registered to the account."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        series = await series_facts(ctx.conn, code)
        row = await ctx.conn.fetchrow("SELECT available + pledged + frozen AS units, confirmed_at FROM holding "
                                      "WHERE series_code = $1 AND account_id = $2", code, account_id)
        if row is None or row["units"] == 0:
            raise domain.InsufficientUnits(f"account {account_id} holds no units of {code}", account_id=account_id)
        if row["confirmed_at"] is not None:
            raise Conflict(f"account {account_id}'s rights in {code} are already confirmed", account_id=account_id)
        stream = series_stream(series.code)
        await ctx.append(stream, await ctx.stream_version(stream), [NewEvent(
            type="warrant.rights_confirmed", effective_date=ctx.business_date,
            data={"code": code, "account_id": account_id, "units": row["units"], "confirmed_by": ctx.meta.actor})])
        return {"code": code, "account_id": account_id, "units": row["units"], "confirmed": True}
    return handler


def transfer(code: str, cmd: domain.Transfer) -> Handler:
    """转让, the hot path: decided on the writer's memory of the series and accounts (registry.warrants.hot),
    so a transfer reads nothing, and its projection is applied with the batch's other transfers."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        today = ctx.business_date
        series = await hot.series(ctx, code)
        sender = await hot.account(ctx, cmd.from_account, today)
        receiver = await hot.account(ctx, cmd.to_account, today)

        async def interval(investor_id: str) -> IntervalFacts:
            last_buy, last_sell = series.intervals.get(investor_id, (None, None))
            if last_buy is None and last_sell is None:
                return IntervalFacts()
            days = (await hot.calendar(ctx)).trading_days_between
            return IntervalFacts(
                last_buy=last_buy, last_sell=last_sell,
                trading_days_since_buy=None if last_buy is None else answer(days, last_buy, today),
                trading_days_since_sell=None if last_sell is None else answer(days, last_sell, today))

        transfer_id = f"T{ctx.next_position:08d}"
        events = domain.decide_transfer(
            series.facts, cmd, transfer_id=transfer_id, sender=sender, receiver=receiver,
            sender_balance=series.balances.get(cmd.from_account, Balance()),
            receiver_balance=series.balances.get(cmd.to_account, Balance()),
            sender_interval=await interval(sender.investor_id), receiver_interval=await interval(receiver.investor_id),
            holders_now=series.holders_now(), holders_ever=frozenset(series.holders_ever),
            sender_lots=series.sender_lots(cmd.from_account), today=today, basis=series.basis,
            interval_days=ctx.settings.holding_interval_trading_days,
            t_plus_allowed=ctx.settings.holding_interval_t_plus_allowed,
            receiver_cost_fen=series.costs.get(cmd.to_account, 0))
        stream = series_stream(code)
        await ctx.append(stream, await ctx.stream_version(stream), events)
        d = events[0].data
        return {"transfer_id": transfer_id, "code": code, "units": cmd.units, "from_account": cmd.from_account,
                "to_account": cmd.to_account, "from_balance": d["from_after"], "to_balance": d["to_after"],
                "holders_after": d["holders_after"]}
    handler.decides_from_memo = True  # type: ignore[attr-defined]
    handler.accounts = (cmd.from_account, cmd.to_account)  # type: ignore[attr-defined]  # prefetched per batch
    return handler


def move_balance(code: str, kind: str, account_id: str, cmd: domain.BalanceChange) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        series = await series_facts(ctx.conn, code)
        balance = await holding_balance(ctx.conn, code, account_id)
        events = domain.decide_balance_move(series, kind, account_id, balance, cmd, ctx.business_date)
        stream = series_stream(code)
        await ctx.append(stream, await ctx.stream_version(stream), events)
        d = events[0].data
        return {"code": code, "account_id": account_id, "before": d["before"], "change": cmd.units,
                "after": d["after"]}
    return handler


def exercise(code: str, cmd: domain.Exercise) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        today = ctx.business_date
        series = await series_facts(ctx.conn, code)
        account = await hot.account(ctx, cmd.account_id, today)
        exercise_id = f"E{ctx.next_position:08d}"
        events = domain.decide_exercise(series, cmd, exercise_id=exercise_id, account=account,
                                        balance=await holding_balance(ctx.conn, code, cmd.account_id),
                                        lots=await active_lots(ctx.conn, code, cmd.account_id), today=today)
        stream = series_stream(code)
        await ctx.append(stream, await ctx.stream_version(stream), events)
        d = events[0].data
        return {"exercise_id": exercise_id, "code": code, "units": cmd.units, "amount": d["amount"],
                "payment_due_fen": d["payment_due_fen"], "payee": d["payee"], "balance": d["after"],
                "status": "awaiting_confirmation"}
    return handler


def confirm_exercise(code: str, exercise_id: str) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        series = await series_facts(ctx.conn, code)
        row = await ctx.conn.fetchrow("SELECT * FROM warrant_exercise WHERE exercise_id = $1 AND series_code = $2",
                                      exercise_id, code)
        if row is None:
            raise domain.ExerciseNotFound(f"no exercise {exercise_id} in {code}", exercise_id=exercise_id)
        exercise_data = {"exercise_id": exercise_id, "amount": str(row["amount"]), "investor_id": row["investor_id"],
                         "method": row["method"], "payee": {"kind": row["payee_kind"], "id": row["payee_id"]}}
        register = {r["holder_id"]: r["amount"] for r in await ctx.conn.fetch(
            "SELECT holder_id, amount FROM share_register WHERE uscc = $1", series.target_uscc)}
        events = domain.decide_confirm_exercise(code, exercise_data, confirmed=row["status"] == "confirmed",
                                                register=register, today=ctx.business_date,
                                                confirmed_by=ctx.meta.actor)
        stream = series_stream(code)
        await ctx.append(stream, await ctx.stream_version(stream), events)
        return {"exercise_id": exercise_id, "status": "confirmed", "register_changes": events[0].data["register_changes"]}
    return handler


class RegisterShares(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The enterprise's existing 股东名册, recorded once before warrants are exercised into it."""

    holders: Annotated[list[ShareHolding], msgspec.Meta(max_length=100_000)]
    reason: Reason


class ShareHolding(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    holder_id: Identifier
    holder_name: Name
    amount: ShareAmount

    def __post_init__(self) -> None:
        domain.check_figures(self)


def register_shares(uscc: str, cmd: RegisterShares) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        if await ctx.conn.fetchval("SELECT 1 FROM enterprise WHERE uscc = $1", uscc) is None:
            raise EnterpriseNotFound(f"no enterprise {uscc}", uscc=uscc)
        if await ctx.conn.fetchval("SELECT 1 FROM share_register WHERE uscc = $1 LIMIT 1", uscc):
            raise Conflict(f"enterprise {uscc}'s share register is already recorded; it changes by exercise",
                           uscc=uscc)
        if not cmd.holders or any(h.amount <= 0 for h in cmd.holders) or \
                len({h.holder_id for h in cmd.holders}) != len(cmd.holders):
            raise RuleViolation("list each holder once with a positive amount", field="holders")
        stream = enterprise_stream(uscc)
        await ctx.append(stream, await ctx.stream_version(stream), [NewEvent(
            type="shares.registered", effective_date=ctx.business_date, data={
                "uscc": uscc, "reason": cmd.reason,
                "holders": [{"holder_id": h.holder_id, "holder_name": h.holder_name, "amount": str(h.amount)}
                            for h in cmd.holders]})])
        return {"uscc": uscc, "holders": len(cmd.holders)}
    return handler


class IpoFiling(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    filed_on: dt.date
    reason: Reason


class IpoOutcome(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    outcome: Identifier
    """approved (the series end), rejected, withdrawn or not_accepted (validity resumes)."""
    on: dt.date
    reason: Reason


def ipo_filed(uscc: str, cmd: IpoFiling) -> Handler:
    """The target's IPO application (not a NEEQ listing) suspends every live series on it."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        codes = [r["code"] for r in await ctx.conn.fetch(
            "SELECT code FROM warrant_series WHERE target_uscc = $1 AND status = 'registered' ORDER BY code", uscc)]
        if not codes:
            raise domain.NothingToDo(f"enterprise {uscc} has no live warrant series to suspend", uscc=uscc)
        for code in codes:
            events = domain.decide_suspend(await series_facts(ctx.conn, code), filed_on=cmd.filed_on, reason=cmd.reason,
                                           today=ctx.business_date)
            await ctx.append(series_stream(code), await ctx.stream_version(series_stream(code)), events)
        return {"uscc": uscc, "suspended": codes}
    return handler


def ipo_outcome(uscc: str, cmd: IpoOutcome) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        if cmd.outcome not in ("approved", "rejected", "withdrawn", "not_accepted"):
            raise RuleViolation("outcome is approved, rejected, withdrawn or not_accepted", outcome=cmd.outcome)
        codes = [r["code"] for r in await ctx.conn.fetch(
            "SELECT code FROM warrant_series WHERE target_uscc = $1 AND status = 'suspended' ORDER BY code", uscc)]
        if not codes:
            raise domain.NothingToDo(f"enterprise {uscc} has no suspended warrant series", uscc=uscc)
        results = []
        for code in codes:
            events = domain.decide_ipo_outcome(await series_facts(ctx.conn, code), outcome=cmd.outcome, on=cmd.on,
                                               reason=cmd.reason, today=ctx.business_date)
            await ctx.append(series_stream(code), await ctx.stream_version(series_stream(code)), events)
            results.append({"code": code, "event": events[0].type, **{
                k: v for k, v in events[0].data.items() if k in ("valid_until_after", "units_cancelled")}})
        return {"uscc": uscc, "series": results}
    return handler


def adjust(code: str, cmd: domain.Adjustment) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        events = domain.decide_adjustment(await series_facts(ctx.conn, code), cmd)
        await ctx.append(series_stream(code), await ctx.stream_version(series_stream(code)), events)
        return {k: v for k, v in events[0].data.items()}
    return handler


class Cancel(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: Reason


def cancel(code: str, cmd: Cancel) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        events = domain.decide_cancel(await series_facts(ctx.conn, code), reason=cmd.reason, today=ctx.business_date)
        await ctx.append(series_stream(code), await ctx.stream_version(series_stream(code)), events)
        return {"code": code, "status": "cancelled", "units_cancelled": events[0].data["units_cancelled"]}
    return handler


def expire_due(today: dt.date | None = None) -> Handler:
    """Expire every series whose window (net of suspension) closed before `today` — each exactly once."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        day = today or ctx.business_date
        codes = [r["code"] for r in await ctx.conn.fetch(
            "SELECT code FROM warrant_series WHERE status = 'registered' AND valid_until < $1 ORDER BY code", day)]
        for code in codes:
            events = domain.decide_expire(await series_facts(ctx.conn, code), day)
            await ctx.append(series_stream(code), await ctx.stream_version(series_stream(code)), events)
        return {"expired": codes}
    return handler


# -- queries --------------------------------------------------------------------------------


async def series_state_at(conn: asyncpg.Connection, code: str, position: int) -> SeriesState:
    """Fold the series' events up to `position` (inclusive)."""
    rows = await conn.fetch("SELECT canonical FROM event WHERE stream_id = $1 AND position <= $2 ORDER BY position",
                            series_stream(code), position)
    if not rows:
        raise SeriesNotFound(f"no warrant series {code} at position {position}", code=code, at_position=position)
    state = SeriesState()
    for row in rows:
        e = canonical.decode(bytes(row["canonical"]))
        domain.evolve(state, e.type, e.data)
    return state


class RegisterLine(msgspec.Struct, kw_only=True, frozen=True):
    account_id: str
    holders: list[str]
    available: int
    pledged: int
    frozen: int
    total: int
    rights_confirmed: bool


class HolderRegister(msgspec.Struct, kw_only=True, frozen=True):
    """持有人名册 of a series at a point of the log."""

    code: str
    at_position: int
    status: str
    entitlement_per_unit: Decimal
    units_issued: int
    units_outstanding: int
    units_exercised: int
    units_cancelled: int
    units_expired: int
    holder_count: int
    lines: list[RegisterLine]


async def holder_register(conn: asyncpg.Connection, code: str, position: int) -> HolderRegister:
    s = await series_state_at(conn, code, position)
    lines = [RegisterLine(account_id=a, holders=s.account_holders[a], available=b.available, pledged=b.pledged,
                          frozen=b.frozen, total=b.total, rights_confirmed=a in s.confirmed)
             for a, b in sorted(s.balances.items()) if b.total > 0]
    return HolderRegister(code=code, at_position=position, status=s.status, entitlement_per_unit=s.entitlement_per_unit,
                          units_issued=s.units_issued, units_outstanding=s.units_outstanding,
                          units_exercised=s.units_exercised, units_cancelled=s.units_cancelled,
                          units_expired=s.units_expired, holder_count=len(s.holders_now()), lines=lines)


class SeriesView(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    target_uscc: str
    name: str
    issuer_kind: str
    underlying: str
    entitlement_per_unit: Decimal
    exercise_price_per_unit: Decimal
    valid_from: dt.date
    valid_until: dt.date
    original_valid_until: dt.date
    exercise_method: str
    transfer_modes: list[str]
    max_holders: int
    holder_cap_basis: str
    anti_dilution: str
    status: str
    suspended_since: dt.date | None
    units_issued: int
    units_outstanding: int
    units_exercised: int
    units_cancelled: int
    units_expired: int
    last_position: int


_SERIES_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(SeriesView))


async def get_series(conn: asyncpg.Connection, code: str) -> SeriesView:
    row = await conn.fetchrow(f"SELECT {_SERIES_COLUMNS} FROM warrant_series WHERE code = $1", code)
    if row is None:
        raise SeriesNotFound(f"no warrant series {code}", code=code)
    return msgspec.convert(dict(row), SeriesView)


async def list_series(conn: asyncpg.Connection, *, after: str | None, limit: int, target_uscc: str | None,
                      status: str | None) -> list[SeriesView]:
    rows = await conn.fetch(
        f"SELECT {_SERIES_COLUMNS} FROM warrant_series WHERE code > $1 AND ($2::text IS NULL OR target_uscc = $2) "
        "AND ($3::text IS NULL OR status = $3) ORDER BY code LIMIT $4", after or "", target_uscc, status, limit)
    return [msgspec.convert(dict(r), SeriesView) for r in rows]


async def series_target(conn: asyncpg.Connection, code: str) -> str | None:
    return await conn.fetchval("SELECT target_uscc FROM warrant_series WHERE code = $1", code)


class Position(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    series_name: str
    account_id: str
    available: int
    pledged: int
    frozen: int
    total: int
    cost_fen: int
    entitlement_per_unit: Decimal
    series_status: str
    rights_confirmed: bool
    value_per_unit: Decimal | None = None
    """The series' latest valuation (None: never valued)."""
    valuation_date: dt.date | None = None
    valuation_stale: bool | None = None
    """True when the latest valuation is older than the market's setting."""


async def positions(conn: asyncpg.Connection, investor_id: str, *, after: str | None, limit: int,
                    today: dt.date, stale_after_days: int) -> list[Position]:
    rows = await conn.fetch(
        "SELECT h.series_code AS code, s.name AS series_name, h.account_id, h.available, h.pledged, h.frozen, "
        "h.available + h.pledged + h.frozen AS total, h.cost_fen, s.entitlement_per_unit, s.status AS series_status, "
        "h.confirmed_at IS NOT NULL AS rights_confirmed, v.value_per_unit, v.valuation_date, "
        "CASE WHEN v.valuation_date IS NULL THEN NULL ELSE v.valuation_date < $4::date - $5::int END "
        "AS valuation_stale FROM holding h JOIN warrant_series s ON s.code = h.series_code "
        "LEFT JOIN LATERAL (SELECT value_per_unit, valuation_date FROM valuation WHERE series_code = h.series_code "
        "ORDER BY valuation_date DESC, last_position DESC LIMIT 1) v ON true "
        "WHERE h.investor_id = $1 AND h.available + h.pledged + h.frozen > 0 "
        "AND h.series_code || '/' || h.account_id > $2 ORDER BY h.series_code, h.account_id LIMIT $3",
        investor_id, after or "", limit, today, stale_after_days)
    return [msgspec.convert(dict(r), Position) for r in rows]


class ShareLine(msgspec.Struct, kw_only=True, frozen=True):
    holder_id: str
    holder_name: str | None
    amount: Decimal
    warrant_amount: Decimal
    fully_diluted: Decimal


class CapTable(msgspec.Struct, kw_only=True, frozen=True):
    """股东名册 plus warrants outstanding: shares (or capital) per holder, and fully diluted."""

    uscc: str
    at_position: int
    total_amount: Decimal
    total_fully_diluted: Decimal
    lines: list[ShareLine]


async def cap_table(conn: asyncpg.Connection, uscc: str, position: int) -> CapTable:
    """Rebuilt from the log up to `position`: the register's events and each series' state."""
    register: dict[str, Decimal] = {}
    names: dict[str, str | None] = {}
    rows = await conn.fetch(
        "SELECT canonical FROM event WHERE position <= $2 AND (stream_id = $1 OR (stream_id LIKE 'series-%' "
        "AND event_type = 'warrant.exercise_confirmed')) ORDER BY position", enterprise_stream(uscc), position)
    codes = {r["code"] for r in await conn.fetch("SELECT code FROM warrant_series WHERE target_uscc = $1", uscc)}
    for row in rows:
        e = canonical.decode(bytes(row["canonical"]))
        if e.type == "shares.registered":
            for h in e.data["holders"]:
                register[h["holder_id"]] = Decimal(h["amount"])
                names[h["holder_id"]] = h["holder_name"]
        elif e.type == "warrant.exercise_confirmed" and e.data["code"] in codes:
            for change in e.data["register_changes"]:
                register[change["holder_id"]] = Decimal(change["after"])
    held: list[tuple[str, Decimal]] = []  # (account, shares or capital its warrants entitle to)
    for code in sorted(codes):
        try:
            s = await series_state_at(conn, code, position)
        except SeriesNotFound:
            continue
        held += [(account, b.total * s.entitlement_per_unit) for account, b in s.balances.items() if b.total]
    investor_of = dict(await conn.fetch("SELECT account_id, investor_id FROM account WHERE account_id = ANY($1)",
                                        sorted({account for account, _ in held})))
    warrants: dict[str, Decimal] = {}
    for account, amount in held:
        holder = investor_of[account]
        warrants[holder] = warrants.get(holder, Decimal(0)) + amount
    holders = sorted(set(register) | set(warrants))
    lines = [ShareLine(holder_id=h, holder_name=names.get(h), amount=register.get(h, Decimal(0)),
                       warrant_amount=warrants.get(h, Decimal(0)),
                       fully_diluted=register.get(h, Decimal(0)) + warrants.get(h, Decimal(0))) for h in holders]
    return CapTable(uscc=uscc, at_position=position, total_amount=sum((x.amount for x in lines), Decimal(0)),
                    total_fully_diluted=sum((x.fully_diluted for x in lines), Decimal(0)), lines=lines)


async def ensure_holder_of_account(conn: asyncpg.Connection, investor_id: str, account_id: str) -> None:
    owner = await conn.fetchval("SELECT investor_id FROM account WHERE account_id = $1", account_id)
    if owner != investor_id:
        raise Forbidden("you may only act on your own records")
