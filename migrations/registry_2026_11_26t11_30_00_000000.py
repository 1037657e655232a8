"""The writer takes its lock and reads the head in one round trip."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T11:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "writer lock and head in one call"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
