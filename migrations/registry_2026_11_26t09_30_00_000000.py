"""The event log, idempotency keys and the application role."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T09:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "event log, idempotency keys, application role"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
