"""`/health/live` (the process answers) and `/health/ready` (database reachable, migrations current)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State

from registry.access.policy import public
from registry.db.migrate import pending_migrations
from registry.eventlog import store
from registry.http.openapi import refuses
from registry.http.problems import problem


class Health(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: str
    log_size: int | None = None
    pending_migrations: list[str] | None = None


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is running", opt=public())
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="The database is reachable and its schema is current", opt=public() | refuses(503))
    async def ready(self, state: State) -> Response[Any]:
        try:
            async with state.db.connection() as conn:
                pending = await pending_migrations(conn, state.settings.resolved_migrations_path())
                size = (await store.head(conn))[0] if not pending else None  # dense positions: no count(*)
        except Exception as exc:  # any failure to reach the database means "not ready"
            return problem(503, "health.database_unreachable", "The database is not reachable", str(exc))
        if pending:
            return problem(503, "health.migrations_pending", "Migrations are pending",
                           f"{len(pending)} migration(s) not applied", extra={"pending_migrations": pending})
        return Response(Health(status="ready", log_size=size))
