"""Warrant transfers have one projection: the batch function; the per-event SQL path retires."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T14:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "retire the per-event warrant transfer functions"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
