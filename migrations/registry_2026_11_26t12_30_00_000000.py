"""Listing pipeline projections."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T12:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "listing pipeline"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
