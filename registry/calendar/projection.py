"""Query tables of the trading calendar: every day of the known span, and the span."""

from __future__ import annotations

import datetime as dt

import asyncpg

from registry.eventlog.projection import EventRecord, projection_tables, projects

projection_tables("trading_day", "calendar_span")


@projects("calendar.seeded", "calendar.published")
async def days_published(conn: asyncpg.Connection, e: EventRecord) -> None:
    first = dt.date.fromisoformat(e.data["first_day"])
    last = dt.date.fromisoformat(e.data["last_day"])
    trading = {dt.date.fromisoformat(d) for d in e.data["trading_days"]}
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    await conn.execute(
        "INSERT INTO trading_day (day, trading, last_position) SELECT * FROM unnest($1::date[], $2::boolean[], "
        "array_fill($3::bigint, ARRAY[cardinality($1::date[])])) "
        "ON CONFLICT (day) DO UPDATE SET trading = excluded.trading, last_position = excluded.last_position",
        days, [d in trading for d in days], e.position,
    )
    await conn.execute(
        "INSERT INTO calendar_span (first_day, last_day, source, last_position) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (singleton) DO UPDATE SET first_day = least(calendar_span.first_day, excluded.first_day), "
        "last_day = greatest(calendar_span.last_day, excluded.last_day), source = excluded.source, "
        "last_position = excluded.last_position",
        first, last, e.data["reason"], e.position,
    )
