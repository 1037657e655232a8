"""`registry valuation recompute <valuation_id>`: price a past valuation again from the log; exit 1 if it differs.

Reads the valuation.recorded event straight from the database as the application role (no
service needs to run), prints the stored and recomputed results, and exits 0 only when every
figure matches to the last stored digit.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import msgspec

from registry.settings import Settings

if TYPE_CHECKING:
    from registry.valuation.service import Recomputation

IDENTICAL, DIFFERENT, UNAVAILABLE = 0, 1, 2


async def recompute_from(dsn: str, valuation_id: str) -> Recomputation:
    """Read the valuation's event over one connection, then price it again."""
    import asyncpg

    from registry.valuation.service import load_recorded, recompute

    conn = await asyncpg.connect(dsn)
    try:
        recorded = await load_recorded(conn, valuation_id)
    finally:
        await conn.close()
    return recompute(recorded)


def main(args: argparse.Namespace) -> int:
    """Entry point of `registry valuation recompute`; `args` carries `valuation_id` (and `data_dir`)."""
    import asyncpg

    from registry.db.database import resolve
    from registry.errors import RegistryError

    settings = Settings.from_env(data_dir=getattr(args, "data_dir", None))
    dsns = resolve(settings)
    try:
        try:
            result = asyncio.run(recompute_from(dsns.app, args.valuation_id))
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError) as exc:
            print(f"no database to read: {exc} (run `registry migrate` first)", file=sys.stderr)
            return UNAVAILABLE
        except RegistryError as exc:
            print(f"{exc.code}: {exc.detail}", file=sys.stderr)
            return UNAVAILABLE if exc.code == "valuation.not_found" else DIFFERENT
    finally:
        if dsns.embedded is not None and dsns.started:
            dsns.embedded.stop()
    print(msgspec.json.format(msgspec.json.encode(result), indent=2).decode())
    if result.identical:
        print(f"IDENTICAL: valuation {result.valuation_id} recomputes to the same figures", file=sys.stderr)
        return IDENTICAL
    print(f"DIFFERENT: valuation {result.valuation_id} recomputes differently in {', '.join(result.differences)}",
          file=sys.stderr)
    return DIFFERENT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sub-command's arguments, for `registry/cli.py` to attach: `registry valuation recompute V00000042`."""
    parser.add_argument("valuation_id", help="the valuation's id, e.g. V00000042")
