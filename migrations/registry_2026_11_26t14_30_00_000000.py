"""Listing stages, boards, qualification categories and specialised levels are checked by the database too."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T14:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "closed vocabularies of listing and parties as CHECK constraints"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
