"""Valuation projection."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "valuation"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
