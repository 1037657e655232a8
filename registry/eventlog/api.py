"""The event feed over HTTP: events after a position with filters, and a live tail (server-sent events)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from registry.access.policy import READ_ALL, allow
from registry.db.outage import DatabaseUnavailable
from registry.eventlog import store
from registry.eventlog.model import StoredEvent
from registry.clock import market_moment
from registry.errors import BadRequest
from registry.http.pagination import Page, clamp_limit, position_cursor
from registry.http.params import Limit, PositionAfter

Stream = Annotated[str | None, QueryParameter(description="only this stream (e.g. series-WR000001)")]
Type = Annotated[str | None, QueryParameter(name="type", description="only this event type")]
Actor = Annotated[str | None, QueryParameter(description="only events written by this user")]
Role = Annotated[str | None, QueryParameter(description="only events written in this role")]
_MOMENT = {"one_of": [Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE),
                      Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME)]}
Since = Annotated[str | None, QueryParameter(schema_extra=_MOMENT, description=(
    "recorded at or after: a date-time with its offset (RFC 3339), or a date (from its start, Asia/Shanghai)"))]
Until = Annotated[str | None, QueryParameter(schema_extra=_MOMENT, description=(
    "recorded before: a date-time with its offset (RFC 3339), or a date (from its start, Asia/Shanghai)"))]
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def moment(name: str, raw: str | None) -> dt.datetime | None:
    """`since`/`until` as an instant: an RFC 3339 date-time with offset, or the start of a business date."""
    if raw is None:
        return None
    try:
        if _DATE.fullmatch(raw):
            return market_moment(dt.date.fromisoformat(raw), dt.time())
        if _DATE_TIME.fullmatch(raw):
            return dt.datetime.fromisoformat(raw.upper()).astimezone(dt.timezone.utc)
    except ValueError:
        pass
    except OverflowError:  # e.g. 0001-01-01 in Tianjin is a moment before year 1 in UTC
        raise BadRequest(f"{name} must be a moment from 0001-01-01 to 9999-12-31 in UTC", parameter=name,
                         value=raw) from None
    raise BadRequest(f"{name} must be a date-time with its offset, e.g. 2026-11-26T10:00:00+08:00, or a date, "
                     f"e.g. 2026-11-26", parameter=name, value=raw)
TAIL_BATCH = 500
KEEPALIVE_SECONDS = 15.0


class EventController(Controller):
    path = "/events"
    tags = ["event log"]

    @get("/", summary="Events after a position, in log order, filtered", opt=allow(*READ_ALL))
    async def list_events(self, state: State, after: PositionAfter = None, stream: Stream = None,
                          event_type: Type = None, actor: Actor = None, role: Role = None, since: Since = None,
                          until: Until = None, limit: Limit = None) -> Page[StoredEvent]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        filters = {"stream": stream, "event_type": event_type, "actor": actor, "since": moment("since", since),
                   "until": moment("until", until)}
        async with state.db.connection() as conn:
            if role is None:
                items = await store.read_events(conn, after=position_cursor(after), limit=n, **filters)
                last = items[-1].position if len(items) == n else None
            else:  # the role is inside the hashed document, not a column: read on until the page is full
                items, last = await store.read_matching(conn, lambda e: e.meta.role == role,
                                                        after=position_cursor(after), limit=n, **filters)
        return Page(items=items, next=None if last is None else str(last))

    @get("/live", summary="Live tail as server-sent events; resumes after `after` or Last-Event-ID, "
                          "with no event skipped or repeated", opt=allow(*READ_ALL), media_type="text/event-stream")
    async def live(self, request: Request, state: State, after: PositionAfter = None, stream: Stream = None,
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
                    async with state.db.connection(min_position=known) as conn:  # a replica that has replayed it
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
