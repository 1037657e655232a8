"""U+0000 is refused wherever a request carries text: PostgreSQL text cannot hold it, so it is a bad request."""

from __future__ import annotations

import re

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import BadRequest

_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A `\\u0000` escape in JSON that is not itself an escaped backslash followed by `u0000`."""
_DETAIL = "text in a request may not contain the NUL character (U+0000)"


def is_json_media_type(value: bytes) -> bool:
    """Whether a Content-Type header's value is JSON (`application/json`, or any `…+json`)."""
    media_type = value.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return is_json_media_type(value)
    return False


class RefuseNulMiddleware:
    """Checks the path, query string and headers before routing to the handler, and a JSON body as the
    handler reads it, so every route answers 400 instead of failing in the database."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            raise BadRequest(_DETAIL, where="url")
        if any(b"\x00" in value for _, value in scope.get("headers", [])):
            raise BadRequest(_DETAIL, where="headers")
        await self.app(scope, self._checked(receive) if _is_json(scope) else receive, send)

    @staticmethod
    def _checked(receive: Receive) -> Receive:
        body = bytearray()

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False) and b"\\u0000" in body and _JSON_NUL.search(body):
                    raise BadRequest(_DETAIL, where="body")
            return message

        return checked_receive
