"""One round trip each for what a transfer reads and what it projects."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T11:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "warrant transfer facts and projection functions"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
