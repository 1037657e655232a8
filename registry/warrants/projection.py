"""Query tables of the warrant registry, kept by warrant.* and shares.* events (which carry after-balances)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg
import msgspec

from registry.eventlog.projection import EventRecord, projection_tables, projects, projects_in_batches
from registry.warrants.domain import cost_after_leaving

projection_tables("warrant_series", "holding", "series_holder_ever", "warrant_lot", "trade_interval",
                  "warrant_exercise", "share_register")


def _d(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


@projects("warrant.series_registered")
async def series_registered(conn: asyncpg.Connection, e: EventRecord) -> None:
    d, t = e.data, e.data["terms"]
    await conn.execute(
        "INSERT INTO warrant_series (code, target_uscc, name, issuer_kind, issuing_shareholder_id, underlying, "
        "entitlement_per_unit, exercise_price_per_unit, valid_from, valid_until, original_valid_until, "
        "exercise_method, transfer_modes, max_holders, holder_cap_basis, anti_dilution, terms, status, "
        "units_issued, units_outstanding, approval_id, registered_at, last_position) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10,$11,$12,$13,$14,$15,$16,'registered',$17,$17,$18,$19,$20)",
        d["code"], t["target_uscc"], t["name"], t["issuer_kind"], t["issuing_shareholder_id"], t["underlying"],
        Decimal(t["entitlement_per_unit"]), Decimal(t["exercise_price_per_unit"]), _d(t["valid_from"]),
        _d(t["valid_until"]), t["exercise_method"], t["transfer_modes"], t["max_holders"], d["holder_cap_basis"],
        t["anti_dilution"], msgspec.json.encode(t).decode(), d["units_issued"], d["approval_id"], e.recorded_at,
        e.position,
    )


async def _set_holding(conn: asyncpg.Connection, code: str, account_id: str, investor_id: str, after: dict,
                       position: int, *, holders: list[str] | None = None, cost_delta: int = 0) -> None:
    await conn.execute(
        "INSERT INTO holding (series_code, account_id, investor_id, available, pledged, frozen, cost_fen, holders, "
        "last_position) VALUES ($1, $2, $3, $4, $5, $6, greatest($7, 0), coalesce($8, '{}'::text[]), $9) "
        "ON CONFLICT (series_code, account_id) DO UPDATE SET available = excluded.available, "
        "pledged = excluded.pledged, frozen = excluded.frozen, cost_fen = greatest(holding.cost_fen + $7, 0), "
        "holders = coalesce($8, holding.holders), last_position = excluded.last_position",
        code, account_id, investor_id, after["available"], after["pledged"], after["frozen"], cost_delta, holders,
        position,
    )
    if holders:
        await conn.execute("INSERT INTO series_holder_ever (series_code, holder_id) SELECT $1, unnest($2::text[]) "
                           "ON CONFLICT DO NOTHING", code, holders)


async def _lots(conn: asyncpg.Connection, code: str, d: dict, position: int) -> None:
    consumed = [lot["lot_id"] for lot in d["consumed_lots"]]
    if consumed:
        await conn.execute("UPDATE warrant_lot SET active = false WHERE lot_id = ANY($1::text[])", consumed)
    for lot in d["produced_lots"]:
        await conn.execute(
            "INSERT INTO warrant_lot (lot_id, series_code, account_id, units, parent, origin, active, "
            "created_position) VALUES ($1, $2, $3, $4, $5, $6, true, $7)",
            lot["lot_id"], code, lot["account_id"], lot["units"], lot["parent"], lot["origin"], position,
        )


async def _touch_interval(conn: asyncpg.Connection, code: str, investor_id: str, side: str, day: dt.date) -> None:
    column = "last_buy" if side == "buy" else "last_sell"
    await conn.execute(
        f"INSERT INTO trade_interval (series_code, investor_id, {column}) VALUES ($1, $2, $3) "
        f"ON CONFLICT (series_code, investor_id) DO UPDATE SET {column} = excluded.{column}",
        code, investor_id, day,
    )


@projects("warrant.units_issued")
async def units_issued(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await _set_holding(conn, d["code"], d["account_id"], d["investor_id"], d["after"], e.position,
                       holders=d["holders"], cost_delta=d["cost_fen"])
    await conn.execute(
        "INSERT INTO warrant_lot (lot_id, series_code, account_id, units, parent, origin, active, created_position) "
        "VALUES ($1, $2, $3, $4, NULL, 'issuance', true, $5)", d["lot_id"], d["code"], d["account_id"], d["units"],
        e.position)
    await _touch_interval(conn, d["code"], d["investor_id"], "buy", e.effective_date)  # issuance counts as a buy


@projects("warrant.rights_confirmed")
async def rights_confirmed(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute("UPDATE holding SET confirmed_at = $3, last_position = $4 WHERE series_code = $1 "
                       "AND account_id = $2", e.data["code"], e.data["account_id"], e.recorded_at, e.position)


class _Holding:
    """One holding row as a batch of transfers leaves it."""

    __slots__ = ("investor", "available", "pledged", "frozen", "cost", "holders", "position")

    def __init__(self, investor: str, cost: int, holders: list[str]) -> None:
        self.investor, self.cost, self.holders = investor, cost, holders
        self.available = self.pledged = self.frozen = self.position = 0

    def set_balance(self, after: dict[str, int], position: int) -> None:
        self.available, self.pledged, self.frozen = after["available"], after["pledged"], after["frozen"]
        self.position = position


@projects("warrant.transferred")
async def transferred(conn: asyncpg.Connection, e: EventRecord) -> None:
    await transferred_together(conn, [e])  # one transfer is a batch of one: the rules live in one place


@projects_in_batches("warrant.transferred")
async def transferred_together(conn: asyncpg.Connection, events: list[EventRecord]) -> None:
    """Transfers, in log order, folded into their net effect and written by a few set-based statements.

    The writer applies a batch's transfers here together; a rebuild applies them one at a time.
    Only the cost basis needs reading first: it moves by proportion, so it is carried forward
    event by event (a sale takes its share of the sender's cost, a purchase adds what was paid).
    """
    touched = {(e.data["code"], e.data[side]) for e in events for side in ("from_account", "to_account")}
    rows: dict[tuple[str, str], _Holding] = {}
    for r in await conn.fetch(
            # LATERAL ... OFFSET 0: a primary-key lookup per holding whatever plan the statement cache holds
            "SELECT h.* FROM unnest($1::text[], $2::text[]) AS k(code, account) CROSS JOIN LATERAL ("
            "SELECT series_code, account_id, investor_id, cost_fen, holders FROM holding "
            "WHERE series_code = k.code AND account_id = k.account OFFSET 0) AS h",
            [c for c, _ in touched], [a for _, a in touched]):
        rows[(r["series_code"], r["account_id"])] = _Holding(r["investor_id"], r["cost_fen"], list(r["holders"]))
    changed: dict[tuple[str, str], _Holding] = {}
    lots: dict[str, list] = {}
    retired: list[str] = []
    intervals: dict[tuple[str, str], list] = {}
    ever: dict[tuple[str, str], None] = {}
    for e in events:
        d, code = e.data, e.data["code"]
        sender = rows.get((code, d["from_account"]))
        if sender is not None:
            sender.cost = cost_after_leaving(sender.cost, d["units"], sum(d["from_before"].values()))
            sender.set_balance(d["from_after"], e.position)
            changed[(code, d["from_account"])] = sender
        receiver = rows.get((code, d["to_account"]))
        if receiver is None:
            receiver = rows[(code, d["to_account"])] = _Holding(d["to_investor"], 0, [])
        receiver.set_balance(d["to_after"], e.position)
        receiver.cost += d["consideration_fen"]
        receiver.holders = list(d["receiver_holders"])
        changed[(code, d["to_account"])] = receiver
        for holder in d["receiver_holders"]:
            ever[(code, holder)] = None
        for lot in d["consumed_lots"]:
            if lot["lot_id"] in lots:
                lots[lot["lot_id"]][6] = False  # produced earlier in this batch: inserted inactive
            else:
                retired.append(lot["lot_id"])
        for lot in d["produced_lots"]:
            lots[lot["lot_id"]] = [lot["lot_id"], code, lot["account_id"], lot["units"], lot["parent"], lot["origin"],
                                   True, e.position]
        if d["from_investor"] != d["to_investor"]:
            intervals.setdefault((code, d["from_investor"]), [None, None])[1] = e.effective_date
            intervals.setdefault((code, d["to_investor"]), [None, None])[0] = e.effective_date
    keys, holdings = list(changed), list(changed.values())
    lot_rows = list(lots.values())
    await conn.execute(
        "SELECT project_warrant_transfer_batch($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, "
        "$15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
        [c for c, _ in keys], [a for _, a in keys], [h.investor for h in holdings], [h.available for h in holdings],
        [h.pledged for h in holdings], [h.frozen for h in holdings], [h.cost for h in holdings],
        msgspec.json.encode([h.holders for h in holdings]).decode(), [h.position for h in holdings],
        *([row[i] for row in lot_rows] for i in range(8)),
        retired,
        [c for c, _ in intervals], [i for _, i in intervals], [v[0] for v in intervals.values()],
        [v[1] for v in intervals.values()],
        [c for c, _ in ever], [h for _, h in ever],
    )


@projects("warrant.units_frozen", "warrant.units_thawed", "warrant.units_pledged", "warrant.units_released")
async def balance_moved(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "UPDATE holding SET available = $3, pledged = $4, frozen = $5, last_position = $6 "
        "WHERE series_code = $1 AND account_id = $2",
        d["code"], d["account_id"], d["after"]["available"], d["after"]["pledged"], d["after"]["frozen"], e.position)


@projects("warrant.exercised")
async def exercised(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    code = d["code"]
    before_total = sum(d["before"].values())
    await conn.execute(
        "UPDATE holding SET available = $3, pledged = $4, frozen = $5, last_position = $6, "
        "cost_fen = cost_fen - div(cost_fen::numeric * $7::bigint, greatest($8::bigint, 1))::bigint "
        "WHERE series_code = $1 AND account_id = $2",
        code, d["account_id"], d["after"]["available"], d["after"]["pledged"], d["after"]["frozen"], e.position,
        d["units"], before_total)
    await _lots(conn, code, d, e.position)
    await conn.execute(
        "UPDATE warrant_series SET units_outstanding = units_outstanding - $2, units_exercised = units_exercised + $2, "
        "status = CASE WHEN units_outstanding - $2 = 0 THEN 'exercised' ELSE status END, last_position = $3 "
        "WHERE code = $1", code, d["units"], e.position)
    await conn.execute(
        "INSERT INTO warrant_exercise (exercise_id, series_code, account_id, investor_id, units, amount, method, "
        "payment_due_fen, payee_kind, payee_id, exercised_on, status, last_position) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'awaiting_confirmation', $12)",
        d["exercise_id"], code, d["account_id"], d["investor_id"], d["units"], Decimal(d["amount"]), d["method"],
        d["payment_due_fen"], d["payee"]["kind"], d["payee"]["id"], e.effective_date, e.position)


@projects("warrant.exercise_confirmed")
async def exercise_confirmed(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute("UPDATE warrant_exercise SET status = 'confirmed', confirmed_by = $2, last_position = $3 "
                       "WHERE exercise_id = $1", d["exercise_id"], d["confirmed_by"], e.position)
    uscc = await conn.fetchval("SELECT target_uscc FROM warrant_series WHERE code = $1", d["code"])
    for change in d["register_changes"]:
        await conn.execute(
            "INSERT INTO share_register (uscc, holder_id, amount, last_position) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (uscc, holder_id) DO UPDATE SET amount = excluded.amount, last_position = excluded.last_position",
            uscc, change["holder_id"], Decimal(change["after"]), e.position)


@projects("shares.registered")
async def shares_registered(conn: asyncpg.Connection, e: EventRecord) -> None:
    for holder in e.data["holders"]:
        await conn.execute(
            "INSERT INTO share_register (uscc, holder_id, holder_name, amount, last_position) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uscc, holder_id) DO UPDATE SET amount = excluded.amount, "
            "holder_name = excluded.holder_name, last_position = excluded.last_position",
            e.data["uscc"], holder["holder_id"], holder.get("holder_name"), Decimal(holder["amount"]), e.position)


@projects("warrant.series_suspended")
async def suspended(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute("UPDATE warrant_series SET status = 'suspended', suspended_since = $2, last_position = $3 "
                       "WHERE code = $1", e.data["code"], _d(e.data["since"]), e.position)


@projects("warrant.series_resumed")
async def resumed(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute("UPDATE warrant_series SET status = 'registered', suspended_since = NULL, valid_until = $2, "
                       "last_position = $3 WHERE code = $1", e.data["code"], _d(e.data["valid_until_after"]), e.position)


@projects("warrant.adjusted")
async def adjusted(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute("UPDATE warrant_series SET entitlement_per_unit = $2, last_position = $3 WHERE code = $1",
                       e.data["code"], Decimal(e.data["entitlement_after"]), e.position)


@projects("warrant.series_cancelled", "warrant.series_terminated", "warrant.series_expired")
async def ended(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    status = {"warrant.series_cancelled": "cancelled", "warrant.series_terminated": "terminated",
              "warrant.series_expired": "expired"}[e.type]
    column = "units_expired" if status == "expired" else "units_cancelled"
    units = d.get("units_expired", d.get("units_cancelled"))
    await conn.execute(
        f"UPDATE warrant_series SET status = $2, suspended_since = NULL, {column} = {column} + $3, "
        "units_outstanding = units_outstanding - $3, last_position = $4 WHERE code = $1",
        d["code"], status, units, e.position)
    await conn.execute("UPDATE holding SET available = 0, pledged = 0, frozen = 0, last_position = $2 "
                       "WHERE series_code = $1", d["code"], e.position)
    await conn.execute("UPDATE warrant_lot SET active = false WHERE series_code = $1", d["code"])
