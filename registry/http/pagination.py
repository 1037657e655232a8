"""Cursor pagination, one way everywhere: `?after=<cursor>&limit=<n>` → `{"items": [...], "next": ...}`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from registry.errors import BadRequest
from registry.fields import MAX_BIGINT

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_POSITION = MAX_BIGINT
"""Log positions and tree sizes are PostgreSQL bigints; larger numbers are refused as bad requests."""


class Page(msgspec.Struct, Generic[T], kw_only=True, frozen=True):
    items: list[T]
    next: str | None
    """Cursor for the following page; null when this is the last one."""


def clamp_limit(limit: int | None, maximum: int) -> int:
    if limit is None:
        return min(DEFAULT_LIMIT, maximum)
    if limit < 1:
        raise BadRequest("limit must be at least 1", limit=limit)
    return min(limit, maximum)


def position_cursor(after: str | None) -> int | None:
    """Cursors over log-ordered lists are plain positions."""
    if after is None or after == "":
        return None
    try:
        value = int(after)
    except ValueError:
        raise BadRequest("after must be a cursor returned as `next` by a previous page", after=after) from None
    if not -1 <= value <= MAX_POSITION:
        raise BadRequest("after must be a cursor returned as `next` by a previous page", after=after)
    return value


def page(items: list[Any], limit: int, cursor_of: Any) -> Page[Any]:
    next_cursor = str(cursor_of(items[-1])) if len(items) == limit and items else None
    return Page(items=items, next=next_cursor)
