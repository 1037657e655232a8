"""Parties and accounts projections."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "parties and accounts"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
