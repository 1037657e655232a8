"""Query tables for parties and accounts, kept by their events."""

from __future__ import annotations

import asyncpg

from registry.eventlog.projection import EventRecord, projection_tables, projects

projection_tables("enterprise", "investor", "account", "account_beneficial_owner", "qualification")


@projects("enterprise.registered")
async def enterprise_registered(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO enterprise (uscc, name, legal_form, registered_capital_fen, industry, specialised_level, status, "
        "registered_at, last_position) VALUES ($1, $2, $3, $4, $5, $6, 'registered', $7, $8)",
        d["uscc"], d["name"], d["legal_form"], d["registered_capital_fen"], d["industry"], d["specialised_level"],
        e.recorded_at, e.position,
    )


@projects("investor.registered")
async def investor_registered(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO investor (investor_id, kind, name, identity_document_digest, registered_at, last_position) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        d["investor_id"], d["kind"], d["name"], d["identity_document_digest"], e.recorded_at, e.position,
    )


@projects("account.opened")
async def account_opened(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO account (account_id, investor_id, kind, status, opened_at, last_position) "
        "VALUES ($1, $2, $3, 'open', $4, $5)",
        d["account_id"], d["investor_id"], d["kind"], e.recorded_at, e.position,
    )
    if d["beneficial_owners"]:
        await conn.execute(
            "INSERT INTO account_beneficial_owner (account_id, investor_id) SELECT $1, unnest($2::text[])",
            d["account_id"], d["beneficial_owners"],
        )


@projects("account.frozen")
async def account_frozen(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute(
        "UPDATE account SET status = 'frozen', freeze_basis = $2, freeze_document_ref = $3, last_position = $4 "
        "WHERE account_id = $1",
        e.data["account_id"], e.data["basis"], e.data["document_ref"], e.position,
    )


@projects("account.thawed")
async def account_thawed(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute(
        "UPDATE account SET status = 'open', freeze_basis = NULL, freeze_document_ref = NULL, last_position = $2 "
        "WHERE account_id = $1",
        e.data["account_id"], e.position,
    )


@projects("account.closed")
async def account_closed(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute("UPDATE account SET status = 'closed', last_position = $2 WHERE account_id = $1",
                       e.data["account_id"], e.position)


@projects("qualification.granted")
async def qualification_granted(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO qualification (investor_id, sequence, category, evidence_digest, valid_from, valid_until, "
        "last_position) VALUES ($1, $2, $3, $4, $5::text::date, $6::text::date, $7)",
        d["investor_id"], d["sequence"], d["category"], d["evidence_digest"], d["valid_from"], d["valid_until"],
        e.position,
    )


@projects("qualification.revoked")
async def qualification_revoked(conn: asyncpg.Connection, e: EventRecord) -> None:
    await conn.execute(
        "UPDATE qualification SET revoked_on = $3::text::date, last_position = $4 "
        "WHERE investor_id = $1 AND sequence = $2",
        e.data["investor_id"], e.data["sequence"], e.data["revoked_on"], e.position,
    )
