"""Query table of warrant valuations, kept by valuation.recorded events (which carry every input and output)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg
import msgspec

from registry.eventlog.projection import EventRecord, projection_tables, projects

projection_tables("valuation")


@projects("valuation.recorded")
async def valuation_recorded(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO valuation (valuation_id, series_code, valuation_date, model, model_version, quantlib_version, "
        "value_per_unit, series_terms, inputs, sources, result, recorded_at, recorded_by, last_position) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        d["valuation_id"], d["code"], dt.date.fromisoformat(d["valuation_date"]), d["model"], d["model_version"],
        d["quantlib_version"], Decimal(d["result"]["value_per_unit"]),
        msgspec.json.encode(d["series_terms"]).decode(), msgspec.json.encode(d["inputs"]).decode(),
        msgspec.json.encode(d["sources"]).decode(), msgspec.json.encode(d["result"]).decode(),
        e.recorded_at, e.actor, e.position,
    )
