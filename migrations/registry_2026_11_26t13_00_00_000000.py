"""Merkle tree over the event log (complete subtrees) and signed checkpoints."""

from registry.db.migrate import sql_migration

ID = "2026-11-26T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "merkle tree and signed checkpoints"


async def forwards():
    return sql_migration(__file__, ID, DESCRIPTION)
