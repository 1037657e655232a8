"""Reading the event log over HTTP: events after a position, by stream or type."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from registry.access.policy import READ_ALL, allow
from registry.eventlog import store
from registry.eventlog.model import StoredEvent
from registry.http.pagination import Page, clamp_limit, page, position_cursor


class EventController(Controller):
    path = "/events"
    tags = ["event log"]

    @get("/", summary="Events after a position, in log order", opt=allow(*READ_ALL))
    async def list_events(
        self,
        state: State,
        after: Annotated[str | None, QueryParameter(description="cursor: return events after this position")] = None,
        stream: Annotated[str | None, QueryParameter(description="only this stream")] = None,
        event_type: Annotated[str | None, QueryParameter(name="type", description="only this event type")] = None,
        limit: Annotated[int | None, QueryParameter(description="page size (capped)")] = None,
    ) -> Page[StoredEvent]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await store.read_events(conn, after=position_cursor(after), stream=stream,
                                            event_type=event_type, limit=n)
        return page(items, n, lambda e: e.position)
