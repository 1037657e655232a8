"""Warrant registry projections."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "warrant registry"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
