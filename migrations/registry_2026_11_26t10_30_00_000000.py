"""Four-eyes approvals and trading calendar projections."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T10:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "four-eyes approvals and the trading calendar"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
