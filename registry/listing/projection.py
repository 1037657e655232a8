"""Query tables of the listing pipeline, kept by listing.* events: facts, stages, moves, security codes, rulebooks."""

from __future__ import annotations

import datetime as dt

import asyncpg
import msgspec

from registry.eventlog.projection import EventRecord, projection_tables, projects

projection_tables("listing_fact", "listing_stage", "listing_move", "security_code", "rulebook_version")


def _d(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


@projects("listing.fact_filed")
async def fact_filed(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO listing_fact (position, uscc, name, value, fiscal_period, source_document_digest, corrects, "
        "filed_on, filed_by) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)",
        e.position, d["uscc"], d["name"], msgspec.json.encode(d["value"]).decode(), d["fiscal_period"],
        d["source_document_digest"], d["corrects"], e.effective_date, e.actor,
    )


@projects("listing.moved")
async def moved(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    on = _d(d["on"])
    suspended_from = d["from_stage"] if d["to_stage"] == "suspended" else None
    await conn.execute(
        "INSERT INTO listing_stage (uscc, stage, since, suspended_from, last_position) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (uscc) DO UPDATE SET stage = excluded.stage, since = excluded.since, "
        "suspended_from = excluded.suspended_from, last_position = excluded.last_position",
        d["uscc"], d["to_stage"], on, suspended_from, e.position,
    )
    await conn.execute(
        "INSERT INTO listing_move (position, uscc, from_stage, to_stage, moved_on, approval_id, requested_by, "
        "approved_by, reason, override_reason, passed, rulebooks) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        e.position, d["uscc"], d["from_stage"], d["to_stage"], on, d["approval_id"], d["requested_by"],
        d["approved_by"], d["reason"], d["override_reason"], d["evaluation"]["passed"],
        d["evaluation"]["rulebooks_used"],
    )


@projects("listing.security_code_issued")
async def code_issued(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO security_code (code, uscc, board, issued_on, last_position) VALUES ($1, $2, $3, $4, $5)",
        d["code"], d["uscc"], d["board"], _d(d["on"]), e.position,
    )
    await conn.execute("UPDATE listing_stage SET security_code = $2, board = $3, last_position = $4 WHERE uscc = $1",
                       d["uscc"], d["code"], d["board"], e.position)


@projects("listing.security_code_retired")
async def code_retired(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute("UPDATE security_code SET retired_on = $2, last_position = $3 WHERE code = $1",
                       d["code"], _d(d["on"]), e.position)
    await conn.execute("UPDATE listing_stage SET security_code = NULL, board = NULL, last_position = $3 "
                       "WHERE uscc = $1 AND security_code = $2", d["uscc"], d["code"], e.position)


@projects("listing.rulebook_published")
async def rulebook_published(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO rulebook_version (id, version, effective_from, title, text, reason, approval_id, published_by, "
        "published_at, last_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        d["rulebook_id"], d["version"], _d(d["effective_from"]), d["title"], d["text"], d["reason"],
        d["approval_id"], d["published_by"], e.recorded_at, e.position,
    )
