"""Query parameters several routes share, declared once so the document states their bounds the same way."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar.params import QueryParameter

from registry.http.pagination import DEFAULT_LIMIT, MAX_POSITION

Limit = Annotated[int | None, QueryParameter(ge=1, description=f"page size, at least 1 (default {DEFAULT_LIMIT}); "
                                                               "larger sizes are capped at the service's maximum")]
After = Annotated[str | None, QueryParameter(description="cursor: the previous page's `next`")]
PositionAfter = Annotated[str | None, QueryParameter(pattern=r"^(-?[0-9]{1,19})?$", description=(
    "cursor: a log position (or tree size), the previous page's `next`; empty for the first page"))]
AsOf = Annotated[dt.date | None, QueryParameter(description="business date (Asia/Shanghai): state at its end")]
AtPosition = Annotated[int | None, QueryParameter(description="log position: state just after it", ge=-1,
                                                  le=MAX_POSITION)]

__all__ = ["After", "AsOf", "AtPosition", "Limit", "PositionAfter"]
