"""`/health/live` (the process answers) and `/health/ready` (the service can read and write: database
reachable, the writer connected, migrations current).

Anyone may ask whether the service is ready, but only operators and regulators are told the log's
size or what failed; an anonymous caller learns the status and nothing else.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State

from registry.access.policy import READ_ALL, authenticate, public
from registry.db import outage
from registry.db.migrate import pending_migrations
from registry.errors import RegistryError
from registry.eventlog import store
from registry.http.openapi import refuses
from registry.http.problems import problem

NOT_READY_RETRY_SECONDS = 2


class Health(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: str
    log_size: int | None = None


class Failure(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    """`health.writer_unavailable` (commands), `health.database_unreachable` (reads), `health.migrations_pending`."""
    detail: str


def _insider(request: Request) -> bool:
    """An operator or a regulator: someone who is told what failed (a public route authenticates nobody)."""
    try:
        return authenticate(request).role in READ_ALL
    except RegistryError:
        return False


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is running", opt=public())
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="The service can read and write: database reachable, writer connected, schema current; "
                           "operators and regulators also see the log's size, or what failed",
         opt=public() | refuses(503))
    async def ready(self, request: Request, state: State) -> Response[Any]:
        failures: list[Failure] = []
        writer = state.db.writer
        if writer is None or writer.unavailable is not None:
            failures.append(Failure(code="health.writer_unavailable", detail="commands cannot be written: "
                                    f"{'not started' if writer is None else writer.unavailable}"))
        size = None
        try:
            async with state.db.primary() as conn:  # ready to write: the primary answers
                pending = await pending_migrations(conn, state.settings.resolved_migrations_path())
                size = (await store.head(conn))[0] if not pending else None  # dense positions: no count(*)
        except Exception as exc:  # any failure to reach the database means "not ready"
            cause = exc.__cause__ if isinstance(exc, outage.DatabaseUnavailable) and exc.__cause__ else exc
            failures.append(Failure(code="health.database_unreachable", detail=f"reads fail: {outage.describe(cause)}"))
        else:
            if pending:
                failures.append(Failure(code="health.migrations_pending",
                                        detail=f"{len(pending)} migration(s) not applied: {', '.join(pending)}"))
        insider = _insider(request)
        if not failures:
            return Response(Health(status="ready", log_size=size if insider else None))
        if not insider:
            return problem(503, "health.not_ready", "The service is not ready", "not ready",
                           retry_after=NOT_READY_RETRY_SECONDS)
        return problem(503, failures[0].code, "The service is not ready", "; ".join(f.detail for f in failures),
                       extra={"failed": msgspec.to_builtins(failures)}, retry_after=NOT_READY_RETRY_SECONDS)
