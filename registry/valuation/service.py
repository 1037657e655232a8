"""Valuation use cases: value a series from recorded inputs (one event), read valuations, recompute them.

A valuation is the `valuation.recorded` event on the stream `valuation-<series code>`: the
series' own terms as the register held them, every input, every source and the whole
`ValuationResult`. Recomputing reads that event back from the log (not the projection) and
prices its inputs again; the figures must match to the last stored digit.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from registry.errors import BadRequest, NotFound, RuleViolation
from registry.eventlog import canonical
from registry.eventlog.model import NewEvent
from registry.eventlog.writer import Handler, WriteContext
from registry.fields import Figure, Whole
from registry.parties.service import get_investor, new_id
from registry.valuation import projection  # noqa: F401 - projection registers the projector
from registry.valuation.models import (
    MODEL_VERSION,
    QUANTLIB_VERSION,
    DlomMethod,
    InputSources,
    Style,
    ValuationInputs,
    ValuationResult,
    check_inputs,
    check_sources,
    price,
)
from registry.warrants.domain import ExerciseMethod, SeriesStatus, price_per_share
from registry.warrants.service import SeriesView, get_series

RECORDED = "valuation.recorded"
_VALUED_STATUSES = (SeriesStatus.registered, SeriesStatus.suspended)
_ID = re.compile(r"V[0-9]{8,}")


def valuation_stream(code: str) -> str:
    return f"valuation-{code}"


# -- errors ---------------------------------------------------------------------------------


class SeriesNotValuable(RuleViolation):
    """Only a live series (registered, or suspended pending the target's IPO) is valued: an expired,
    cancelled, terminated or fully exercised one has no warrants left to value (无存续认股权)."""

    code = "valuation.series_not_live"
    title = "The series is no longer live; nothing is left to value"


class ValuationDateAfterExpiry(RuleViolation):
    """估值基准日 (valuation date) falls before the series' current expiry (行权截止日): on or after it,
    no time is left for the warrant to be worth anything as an option."""

    code = "valuation.date_after_expiry"
    title = "The valuation date is on or after the series' expiry"


class ValuationNotFound(NotFound):
    code = "valuation.not_found"
    title = "No such valuation"


# -- the command ----------------------------------------------------------------------------


class ValueSeries(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """估值: the market inputs and their evidence. The series' own terms (exercise price, entitlement,
    expiry, units outstanding, whether exercise creates shares) come from the register, not the caller."""

    valuation_date: dt.date
    underlying_price: Figure
    """Value per share (or per yuan of registered capital) of the target; its basis is in `sources`."""
    volatility: Figure
    """Annual, as a fraction; its peers and method are in `sources`."""
    risk_free_rate: Figure
    """Continuously compounded, annual, as a fraction; its source is in `sources`."""
    dividend_yield: Figure = Decimal(0)
    shares_outstanding: Whole
    """Shares (or yuan of capital) in issue before any of this series is exercised."""
    style: Style
    """"european" (Black–Scholes–Merton) or "american" (binomial lattice, exercisable from the series'
    valid_from)."""
    lattice_steps: Whole = 1000
    dlom_method: DlomMethod | None = None
    liquidity_date: dt.date | None = None
    sources: InputSources


class SeriesTermsUsed(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The series' terms as the register held them when the valuation was made."""

    status: str
    underlying: str
    exercise_method: str
    exercise_price_per_unit: Decimal
    entitlement_per_unit: Decimal
    exercise_price_per_share: Decimal
    """exercise_price_per_unit / entitlement_per_unit, at the registry's price scale (6 dp)."""
    valid_from: dt.date
    valid_until: dt.date
    units_outstanding: int


def terms_used(series: SeriesView) -> SeriesTermsUsed:
    return SeriesTermsUsed(
        status=series.status, underlying=series.underlying, exercise_method=series.exercise_method,
        exercise_price_per_unit=series.exercise_price_per_unit, entitlement_per_unit=series.entitlement_per_unit,
        exercise_price_per_share=price_per_share(series.exercise_price_per_unit, series.entitlement_per_unit),
        valid_from=series.valid_from, valid_until=series.valid_until, units_outstanding=series.units_outstanding,
    )


def decide_inputs(code: str, terms: SeriesTermsUsed, cmd: ValueSeries) -> ValuationInputs:
    """The pricing inputs for a series on a date: the caller's market figures over the register's terms.

    Refuses a series that is no longer live, a valuation date on or after expiry, and every input or
    source the models cannot honestly price (`check_inputs`, then `check_sources`).
    """
    if terms.status not in _VALUED_STATUSES:
        raise SeriesNotValuable(f"series {code} is {terms.status}; only a live series is valued",
                                code=code, series_status=terms.status)
    if cmd.valuation_date >= terms.valid_until:
        raise ValuationDateAfterExpiry(
            f"valuation date {cmd.valuation_date} is not before the series' expiry {terms.valid_until}",
            valuation_date=cmd.valuation_date.isoformat(), expiry_date=terms.valid_until.isoformat())
    american = cmd.style == "american"
    inputs = ValuationInputs(
        valuation_date=cmd.valuation_date, expiry_date=terms.valid_until, underlying_price=cmd.underlying_price,
        exercise_price=terms.exercise_price_per_share, volatility=cmd.volatility,
        risk_free_rate=cmd.risk_free_rate, dividend_yield=cmd.dividend_yield,
        shares_outstanding=cmd.shares_outstanding, new_shares_per_warrant=terms.entitlement_per_unit,
        warrants_outstanding=terms.units_outstanding,
        creates_new_shares=terms.exercise_method == ExerciseMethod.capital_increase,
        style=cmd.style,
        # the series' exercise window opens at valid_from; a window already open needs no start date
        exercise_start_date=terms.valid_from if american and terms.valid_from > cmd.valuation_date else None,
        lattice_steps=cmd.lattice_steps, dlom_method=cmd.dlom_method, liquidity_date=cmd.liquidity_date,
    )
    check_inputs(inputs)
    check_sources(cmd.sources, cmd.valuation_date)
    return inputs


def _json(value: Any) -> Any:
    """JSON builtins exactly as stored (Decimals as their strings, dates ISO, tuples as lists)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def canonical_bytes(result: ValuationResult | dict[str, Any]) -> bytes:
    """A result's canonical JSON (sorted keys, no spaces): what "identical" compares."""
    return msgspec.json.encode(_json(result), order="sorted")


def record_valuation(code: str, cmd: ValueSeries) -> Handler:
    """Price the series in the writer (QuantLib's evaluation date is process-wide; the writer is serial)."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        terms = terms_used(await get_series(ctx.conn, code))
        inputs = decide_inputs(code, terms, cmd)
        result = price(inputs)
        valuation_id = new_id("V", ctx.next_position)
        data = {
            "valuation_id": valuation_id, "code": code, "valuation_date": cmd.valuation_date.isoformat(),
            "model": result.model, "model_version": result.model_version,
            "quantlib_version": result.quantlib_version, "series_terms": _json(terms), "inputs": _json(inputs),
            "sources": _json(cmd.sources), "result": _json(result),
        }
        stream = valuation_stream(code)
        await ctx.append(stream, await ctx.stream_version(stream),
                         [NewEvent(type=RECORDED, effective_date=cmd.valuation_date, data=data)])
        return {"valuation_id": valuation_id, "code": code, "valuation_date": data["valuation_date"],
                "model": result.model, "value_per_unit": str(result.value_per_unit),
                "value_of_all_warrants": str(result.value_of_all_warrants), "result": data["result"]}
    return handler


# -- recomputation --------------------------------------------------------------------------


class RecordedValuation(msgspec.Struct, kw_only=True, frozen=True):
    """A valuation.recorded event as read back from the log."""

    position: int
    valuation_id: str
    code: str
    valuation_date: dt.date
    inputs: ValuationInputs
    result: dict[str, Any]
    """The stored figures, untouched (the strings as hashed into the log)."""


class Recomputation(msgspec.Struct, kw_only=True, frozen=True):
    """A past valuation priced again from its stored inputs, beside what was stored."""

    valuation_id: str
    code: str
    valuation_date: dt.date
    position: int
    """Log position of the valuation.recorded event."""
    stored: ValuationResult
    recomputed: ValuationResult
    identical: bool
    """True when the two results' canonical JSON is byte for byte the same."""
    differences: list[str]
    """Fields whose stored and recomputed values differ."""
    model_version_now: str
    quantlib_version_now: str


async def load_recorded(conn: asyncpg.Connection, valuation_id: str) -> RecordedValuation:
    """Read a valuation from the log itself: its id is the log position of its event."""
    if not _ID.fullmatch(valuation_id):
        raise ValuationNotFound(f"no valuation {valuation_id}", valuation_id=valuation_id)
    raw = await conn.fetchval("SELECT canonical FROM event WHERE position = $1", int(valuation_id[1:]))
    event = None if raw is None else canonical.decode(bytes(raw))
    if event is None or event.type != RECORDED or event.data.get("valuation_id") != valuation_id:
        raise ValuationNotFound(f"no valuation {valuation_id}", valuation_id=valuation_id)
    d = event.data
    return RecordedValuation(position=event.position, valuation_id=valuation_id, code=d["code"],
                             valuation_date=dt.date.fromisoformat(d["valuation_date"]),
                             inputs=msgspec.convert(d["inputs"], ValuationInputs), result=d["result"])


def recompute(recorded: RecordedValuation) -> Recomputation:
    """Price the stored inputs again with this build's model and QuantLib; compare figure by figure."""
    again = _json(price(recorded.inputs))
    stored = recorded.result
    differences = sorted(k for k in set(stored) | set(again) if stored.get(k) != again.get(k))
    return Recomputation(
        valuation_id=recorded.valuation_id, code=recorded.code, valuation_date=recorded.valuation_date,
        position=recorded.position, stored=msgspec.convert(stored, ValuationResult),
        recomputed=msgspec.convert(again, ValuationResult),
        identical=canonical_bytes(stored) == canonical_bytes(again), differences=differences,
        model_version_now=MODEL_VERSION, quantlib_version_now=QUANTLIB_VERSION,
    )


# -- queries --------------------------------------------------------------------------------


class ValuationView(msgspec.Struct, kw_only=True, frozen=True):
    valuation_id: str
    code: str
    valuation_date: dt.date
    model: str
    model_version: str
    quantlib_version: str
    value_per_unit: Decimal
    series_terms: SeriesTermsUsed
    inputs: ValuationInputs
    sources: InputSources
    result: ValuationResult
    recorded_at: dt.datetime
    recorded_by: str
    position: int
    """Log position of the valuation.recorded event."""


_VIEW_SQL = ("SELECT valuation_id, series_code, valuation_date, model, model_version, quantlib_version, "
             "value_per_unit, series_terms, inputs, sources, result, recorded_at, recorded_by, last_position "
             "FROM valuation")


def _view(row: asyncpg.Record) -> ValuationView:
    return ValuationView(
        valuation_id=row["valuation_id"], code=row["series_code"], valuation_date=row["valuation_date"],
        model=row["model"], model_version=row["model_version"], quantlib_version=row["quantlib_version"],
        value_per_unit=row["value_per_unit"],
        series_terms=msgspec.json.decode(row["series_terms"], type=SeriesTermsUsed),
        inputs=msgspec.json.decode(row["inputs"], type=ValuationInputs),
        sources=msgspec.json.decode(row["sources"], type=InputSources),
        result=msgspec.json.decode(row["result"], type=ValuationResult),
        recorded_at=row["recorded_at"], recorded_by=row["recorded_by"], position=row["last_position"],
    )


def cursor_of(v: ValuationView) -> str:
    return f"{v.valuation_date.isoformat()}/{v.position}"


def _parse_cursor(after: str | None) -> tuple[dt.date | None, int | None]:
    if after is None or after == "":
        return None, None
    day, _, position = after.partition("/")
    try:
        return dt.date.fromisoformat(day), int(position)
    except ValueError:
        raise BadRequest("after must be a cursor returned as `next` by a previous page", after=after) from None


async def list_valuations(conn: asyncpg.Connection, code: str, *, after: str | None, limit: int,
                          as_of: dt.date | None) -> list[ValuationView]:
    """A series' valuations, latest valuation date first (the later record first on the same date);
    with `as_of`, only the latest one dated on or before it."""
    await get_series(conn, code)
    if as_of is not None:
        rows = await conn.fetch(f"{_VIEW_SQL} WHERE series_code = $1 AND valuation_date <= $2 "
                                "ORDER BY valuation_date DESC, last_position DESC LIMIT 1", code, as_of)
        return [_view(r) for r in rows]
    day, position = _parse_cursor(after)
    rows = await conn.fetch(
        f"{_VIEW_SQL} WHERE series_code = $1 AND ($2::date IS NULL OR (valuation_date, last_position) < ($2, $3)) "
        "ORDER BY valuation_date DESC, last_position DESC LIMIT $4", code, day, position, limit)
    return [_view(r) for r in rows]


async def get_valuation(conn: asyncpg.Connection, valuation_id: str) -> ValuationView:
    row = await conn.fetchrow(f"{_VIEW_SQL} WHERE valuation_id = $1", valuation_id)
    if row is None:
        raise ValuationNotFound(f"no valuation {valuation_id}", valuation_id=valuation_id)
    return _view(row)


async def valuation_series(conn: asyncpg.Connection, valuation_id: str) -> str | None:
    return await conn.fetchval("SELECT series_code FROM valuation WHERE valuation_id = $1", valuation_id)


async def holds_series(conn: asyncpg.Connection, investor_id: str, code: str) -> bool:
    """Whether the investor holds units of the series now (in any of its own accounts)."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM holding WHERE series_code = $1 AND investor_id = $2 "
        "AND available + pledged + frozen > 0)", code, investor_id))


class PortfolioLine(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    series_name: str
    account_id: str
    units: int
    """Available + pledged + frozen."""
    valuation_id: str | None
    valuation_date: dt.date | None
    value_per_unit: Decimal | None
    value: Decimal | None
    """units × value_per_unit, exact (yuan)."""
    age_days: int | None
    """Days from the valuation date to `as_of`."""
    stale: bool
    """No valuation on or before `as_of`, or one older than `stale_after_days`."""


class PortfolioValuation(msgspec.Struct, kw_only=True, frozen=True):
    """An investor's positions at the latest value per unit of each series (持仓估值)."""

    investor_id: str
    as_of: dt.date
    stale_after_days: int
    positions: list[PortfolioLine]
    total_value: Decimal
    """Sum of the valued positions' values, stale ones included (they are flagged)."""
    unvalued_positions: int
    stale_positions: int


async def portfolio(conn: asyncpg.Connection, investor_id: str, *, as_of: dt.date,
                    stale_after: int) -> PortfolioValuation:
    await get_investor(conn, investor_id)
    rows = await conn.fetch(
        "SELECT h.series_code AS code, s.name AS series_name, h.account_id, "
        "h.available + h.pledged + h.frozen AS units, v.valuation_id, v.valuation_date, v.value_per_unit "
        "FROM holding h JOIN warrant_series s ON s.code = h.series_code LEFT JOIN LATERAL ("
        "SELECT valuation_id, valuation_date, value_per_unit FROM valuation WHERE series_code = h.series_code "
        "AND valuation_date <= $2 ORDER BY valuation_date DESC, last_position DESC LIMIT 1) v ON true "
        "WHERE h.investor_id = $1 AND h.available + h.pledged + h.frozen > 0 ORDER BY h.series_code, h.account_id",
        investor_id, as_of)
    lines = []
    for r in rows:
        valued = r["valuation_id"] is not None
        age = (as_of - r["valuation_date"]).days if valued else None
        lines.append(PortfolioLine(
            code=r["code"], series_name=r["series_name"], account_id=r["account_id"], units=r["units"],
            valuation_id=r["valuation_id"], valuation_date=r["valuation_date"], value_per_unit=r["value_per_unit"],
            value=r["units"] * r["value_per_unit"] if valued else None, age_days=age,
            stale=age is None or age > stale_after))
    return PortfolioValuation(
        investor_id=investor_id, as_of=as_of, stale_after_days=stale_after, positions=lines,
        total_value=sum((x.value for x in lines if x.value is not None), Decimal(0)),
        unvalued_positions=sum(1 for x in lines if x.value is None),
        stale_positions=sum(1 for x in lines if x.stale))
