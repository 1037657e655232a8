"""`/`: where a person who opens the service's address is sent — a browser to the pages, anyone else
told where the pages, the API documentation and the health checks are."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Redirect

from registry.access.policy import public


class Entrance(msgspec.Struct, kw_only=True, frozen=True):
    service: str
    market: str
    pages: str
    api_docs: str
    openapi: str
    health: str


@get("/", opt=public(), include_in_schema=False)
async def entrance(request: Request, state: State) -> Response[Any]:
    if "text/html" in request.headers.get("accept", ""):
        return Redirect(path="/ui/")  # a browser: the pages (which ask to sign in first)
    return Response(Entrance(service="registry — 区域性股权市场登记系统", market=state.settings.market_name,
                             pages="/ui/", api_docs="/schema", openapi="/schema/openapi.json",
                             health="/health/ready"))
