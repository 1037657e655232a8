"""Query table of approval requests."""

from __future__ import annotations

import asyncpg
import msgspec

from registry.eventlog.projection import EventRecord, projection_tables, projects

projection_tables("approval_request")


@projects("approval.requested")
async def requested(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO approval_request (approval_id, action, payload, reason, status, requested_by, requested_at, "
        "last_position) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
        d["approval_id"], d["action"], msgspec.json.encode(d["payload"]).decode(), d["reason"], d["requested_by"],
        e.recorded_at, e.position,
    )


@projects("approval.approved", "approval.rejected")
async def decided(conn: asyncpg.Connection, e: EventRecord) -> None:
    d = e.data
    approved = e.type == "approval.approved"
    await conn.execute(
        "UPDATE approval_request SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5, "
        "last_position = $6 WHERE approval_id = $1",
        d["approval_id"], "approved" if approved else "rejected", d["approved_by" if approved else "rejected_by"],
        e.recorded_at, d["reason"], e.position,
    )
