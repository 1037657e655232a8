"""`Allow` lists every method a resource has (RFC 9110 §10.2.1), on OPTIONS answers as on 405s."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


async def allow_every_method(message: Message, scope: Scope) -> None:
    """`before_send` hook. Litestar 2 answers OPTIONS with the methods of the first handler registered for
    a path only (litestar-org/litestar#4169, fixed in 3): the path's full set replaces them."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = MutableScopeHeaders.from_message(message)
    template = scope.get("path_template")  # the matched path with its parameters' names: /enterprises/{uscc}
    methods = {method for route in scope["app"].routes if isinstance(route, HTTPRoute)
               and route.path_format == template for method in route.methods}
    if "allow" in headers and methods:
        headers["Allow"] = ", ".join(sorted(methods))
