"""A series issues at most 10^12 units: the database refuses more too, as the register's bounds say."""

from registry.db.migrate import sql_migration

ID = "2026-12-03T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "a warrant series issues at most 10^12 units"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
