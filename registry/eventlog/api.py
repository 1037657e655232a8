"""The event feed over HTTP: events after a position with filters, and a live tail (server-sent events)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from registry.access.policy import READ_ALL, allow
from registry.db.outage import DatabaseUnavailable
from registry.eventlog import store
from registry.eventlog.model import StoredEvent
from registry.http.pagination import Page, clamp_limit, position_cursor

After = Annotated[str | None, QueryParameter(description="cursor: events after this position")]
Stream = Annotated[str | None, QueryParameter(description="only this stream (e.g. series-WR000001)")]
Type = Annotated[str | None, QueryParameter(name="type", description="only this event type")]
Actor = Annotated[str | None, QueryParameter(description="only events written by this user")]
Role = Annotated[str | None, QueryParameter(description="only events written in this role")]
Since = Annotated[dt.datetime | None, QueryParameter(description="recorded at or after (with offset)")]
Until = Annotated[dt.datetime | None, QueryParameter(description="recorded before (with offset)")]
TAIL_BATCH = 500
KEEPALIVE_SECONDS = 15.0


class EventController(Controller):
    path = "/events"
    tags = ["event log"]

    @get("/", summary="Events after a position, in log order, filtered", opt=allow(*READ_ALL))
    async def list_events(self, state: State, after: After = None, stream: Stream = None,
                          event_type: Type = None, actor: Actor = None, role: Role = None, since: Since = None,
                          until: Until = None,
                          limit: Annotated[int | None, QueryParameter(description="page size (capped)")] = None,
                          ) -> Page[StoredEvent]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        filters = {"stream": stream, "event_type": event_type, "actor": actor, "since": since, "until": until}
        async with state.db.connection() as conn:
            if role is None:
                items = await store.read_events(conn, after=position_cursor(after), limit=n, **filters)
                last = items[-1].position if len(items) == n else None
            else:  # the role is inside the hashed document, not a column: read on until the page is full
                items, last = await store.read_matching(conn, lambda e: e.meta.role == role,
                                                        after=position_cursor(after), limit=n, **filters)
        return Page(items=items, next=None if last is None else str(last))

    @get("/live", summary="Live tail as server-sent events; resumes after `after` or Last-Event-ID, "
                          "with no event skipped or repeated", opt=allow(*READ_ALL))
    async def live(self, request: Request, state: State, after: After = None, stream: Stream = None,
                   event_type: Type = None, actor: Actor = None,
                   limit: Annotated[int | None, QueryParameter(ge=1, description="close after this many events")] = None,
                   ) -> ServerSentEvent:
        resume = request.headers.get("last-event-id")
        position = position_cursor(resume if resume else after)
        position = -1 if position is None else position
        tail = await state.db.tail()
        encoder = msgspec.json.Encoder()

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            nonlocal position
            sent = 0
            while limit is None or sent < limit:
                known = tail.head  # everything committed up to here is visible to the read below
                try:
                    async with state.db.connection() as conn:
                        batch = await store.read_events(conn, after=position, stream=stream, event_type=event_type,
                                                        actor=actor, limit=TAIL_BATCH)
                except DatabaseUnavailable as exc:
                    # the follower stays connected and resumes after its last event once the database is back
                    yield ServerSentEventMessage(comment="the database is unavailable; resuming when it is back")
                    await asyncio.sleep(exc.retry_after)
                    continue
                for event in batch:
                    yield ServerSentEventMessage(id=event.position, event=event.type,
                                                 data=encoder.encode(event).decode())
                    position = event.position
                    sent += 1
                    if limit is not None and sent >= limit:
                        return
                if len(batch) < TAIL_BATCH:
                    # the read saw every event up to `known` (filtered ones too): wait for anything newer
                    seen = max(position, known)
                    await tail.wait_beyond(seen, KEEPALIVE_SECONDS)
                    if tail.head <= seen:
                        yield ServerSentEventMessage(comment="keep-alive")

        return ServerSentEvent(events())
