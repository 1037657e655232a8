"""Request ids: taken from X-Request-Id when sane, generated otherwise; echoed and logged."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_SCOPE_KEY = "registry.request_id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    return _request_id.get()


def request_id_for(scope: Scope) -> str:
    """The id of the request in `scope`, fixed on first use (also for requests no route matched)."""
    request_id = scope.get(_SCOPE_KEY)  # type: ignore[misc]
    if request_id is None:
        incoming = dict(scope.get("headers", [])).get(HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SANE.match(incoming) else str(uuid.uuid4())
        scope[_SCOPE_KEY] = request_id  # type: ignore[literal-required]
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """`before_send` hook: every HTTP response carries X-Request-Id, even a 404 from the router."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)["X-Request-Id"] = request_id_for(scope)


class RequestIdMiddleware:
    """Fixes the request id before any handler runs, so logs and responses agree."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _request_id.set(request_id_for(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _request_id.reset(token)


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every log record so log lines can be matched to responses."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True
