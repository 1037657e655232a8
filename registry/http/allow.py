"""`Allow` lists every method a resource has (RFC 9110 §10.2.1), on OPTIONS answers as on 405s; HEAD is
answered wherever GET is (RFC 9110 §9.3.2)."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from registry.http.request_id import request_id_for


async def allow_every_method(message: Message, scope: Scope) -> None:
    """`before_send` hook. Litestar 2 answers OPTIONS with the methods of the first handler registered for
    a path only (litestar-org/litestar#4169, fixed in 3): the path's full set replaces them. A resource
    that has GET has HEAD too."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    if "allow" not in headers:
        return
    methods = {m.strip() for m in headers["allow"].split(",")}
    if scope.get("method") == "OPTIONS":
        template = scope.get("path_template")  # the matched path with its parameters' names: /enterprises/{uscc}
        methods = {method for route in scope["app"].routes if isinstance(route, HTTPRoute)
                   and route.path_format == template for method in route.methods} or methods
    if "GET" in methods:
        methods.add("HEAD")
    headers["Allow"] = ", ".join(sorted(methods))


class HeadAsGet:
    """Answers HEAD as the same GET would be answered, without its body: Litestar 2 routes HEAD only to
    handlers declared for it, so pages, lists and health checks would otherwise refuse it with 405. It wraps
    the application's router (`Litestar.asgi_handler`), because routing picks the handler by method before
    any middleware runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}  # type: ignore[typeddict-item]
            await send(message)

        request_id_for(scope)  # fixed before copying, so the response and the logs name the same request
        await self.app({**scope, "method": "GET"}, receive, headers_only)  # type: ignore[typeddict-item]
