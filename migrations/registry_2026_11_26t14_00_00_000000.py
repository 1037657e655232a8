"""Warrant transfers projected together: one call applies a batch's transfers in log order."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "warrant transfers projected in batches"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
