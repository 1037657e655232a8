"""`Min-Position`: a read that must reflect a write the client made (read-your-writes over replicas).

A write answers with the log positions it produced (`log.last_position`). A client that reads right
after sends it back as `Min-Position` on its GET requests: they are then answered from a replica only
once the replica has replayed that position, otherwise from the primary (`registry.db.replica`).
The header is read once per request, here; with a replica configured, `X-Read-Source` says which
answered.
"""

from __future__ import annotations

import re

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from registry.db import replica
from registry.errors import BadRequest
from registry.http.pagination import MAX_POSITION

HEADER_NAME = "Min-Position"
SOURCE_HEADER_NAME = "X-Read-Source"
READS = frozenset({"GET", "HEAD"})
_HEADER = HEADER_NAME.lower().encode()
_DIGITS = re.compile(rb"0*([0-9]{1,19})")
"""A non-negative decimal integer; leading zeros aside, at most 19 digits (then checked against MAX_POSITION)."""


def min_position(scope: Scope) -> int | None:
    """The request's `Min-Position`, if it sent one: a log position, 0 to 2^63 - 1."""
    raw = next((value for name, value in scope.get("headers", []) if name == _HEADER), None)
    if raw is None:
        return None
    match = _DIGITS.fullmatch(raw.strip())
    if match is None or int(match.group(1)) > MAX_POSITION:
        raise BadRequest(f"{HEADER_NAME} is a log position (digits only, at most {MAX_POSITION}): send a write's "
                         "log.last_position", header=HEADER_NAME)
    return int(match.group(1))


class ReadPositionMiddleware:
    """Reads a GET request's `Min-Position` before its handler runs; says where its reads were served from."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READS:
            await self.app(scope, receive, send)
            return
        with replica.reading(min_position(scope)) as read:

            async def send_with_source(message: Message) -> None:
                if message["type"] == "http.response.start" and read.source is not None:
                    MutableScopeHeaders.from_message(message)[SOURCE_HEADER_NAME] = read.source
                await send(message)

            await self.app(scope, receive, send_with_source)
