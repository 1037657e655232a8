"""Exports for outsiders: an issuer's warrants in Open Cap Format (`ocf`) and the regulators'
cross-chain registration records (`crosschain`), both rebuilt from the event log; `api` serves them.

`stream_events` is the one reader both use: a stream's events up to a log position, decoded from
their canonical bytes (the projections are not consulted, so an export is a function of the log).
"""

from __future__ import annotations

import asyncpg

from registry.eventlog import canonical
from registry.eventlog.model import StoredEvent


async def stream_events(conn: asyncpg.Connection, stream: str, upto: int | None = None) -> list[StoredEvent]:
    """Every event of `stream` with position ≤ `upto` (all of them when None), in log order."""
    rows = await conn.fetch(
        f"SELECT {canonical.STORED_COLUMNS} FROM event WHERE stream_id = $1 AND ($2::bigint IS NULL OR position <= $2) "
        "ORDER BY position", stream, upto)
    return [canonical.stored(r) for r in rows]
