"""What every bench shares: progress lines, percentiles, and the throwaway PostgreSQL cluster it measures on."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import psutil

from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres
from registry.db.migrate import apply_migrations
from registry.settings import Settings


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def destroy(server: EmbeddedPostgres) -> None:
    """Stop and delete the bench cluster; never masks the error that ended the run."""
    try:
        server.destroy()
    except Exception as exc:  # noqa: BLE001 - e.g. someone changed the folder's permissions meanwhile
        print(f"warning: pg_ctl could not stop the bench cluster ({exc}); stopping its postmaster by pid",
              file=sys.stderr)
        pid = server.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the server this run started
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(timeout=30)
        shutil.rmtree(server.data_dir, ignore_errors=True)
    if server.socket_dir != server.pgdata:
        shutil.rmtree(server.socket_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def migrated_cluster(base: Path, settings: Settings) -> AsyncIterator[EmbeddedPostgres]:
    """A throwaway cluster in `base` with the registry's schema applied; destroyed on the way out."""
    server = EmbeddedPostgres(base)
    try:
        say(f"starting a throwaway PostgreSQL cluster in {base} ...")
        await asyncio.to_thread(server.start)
        await apply_migrations(server.dsn(SUPERUSER, DATABASE), settings.resolved_migrations_path())
        yield server
    finally:
        say("destroying the throwaway cluster")
        await asyncio.to_thread(destroy, server)
