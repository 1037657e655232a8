"""One error tree: every refusal has a stable code, a title, a detail and the figures involved.

The kind of an error (rule violation, conflict, not found, ...) decides its HTTP status in one
place (`registry/http/problems.py`); domain code never thinks in status codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar


class RegistryError(Exception):
    """Base of every error a user can be shown."""

    code: ClassVar[str] = "registry.error"
    title: ClassVar[str] = "The request could not be carried out"

    def __init__(self, detail: str, **figures: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.figures = figures


class BadRequest(RegistryError):
    """The request itself is malformed (missing header, bad JSON, wrong types)."""

    code = "request.invalid"
    title = "The request is malformed"


class Unauthenticated(RegistryError):
    code = "auth.unauthenticated"
    title = "Authentication is required"


class Forbidden(RegistryError):
    code = "auth.forbidden"
    title = "This action is not allowed for you"


class ForeignForm(Forbidden):
    """A page's form that the page itself did not send: posted from another site (login CSRF), or with the
    anti-forgery token of another browser or of an expired form."""

    code = "auth.foreign_form"
    title = "This form was not sent from this site's own page"


class NotFound(RegistryError):
    code = "resource.not_found"
    title = "No such resource"


class Conflict(RegistryError):
    """The request collides with the current state (stale version, reused key)."""

    code = "state.conflict"
    title = "The request conflicts with the current state"


class UnreadableEvent(Conflict):
    """An event in the log does not have the shape its type promises (only someone writing to the table
    as its owner could have put it there): what would be built from the log — an export, a replay —
    stops at it and names it rather than leave it out."""

    code = "eventlog.event_unreadable"
    title = "An event in the log cannot be read"

    def __init__(self, position: int, event_type: str, problem: str) -> None:
        super().__init__(f"event {position} ({event_type}) cannot be read: {problem}; `registry verify` and "
                         "`registry rebuild` name it too", position=position, event_type=event_type)


SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError)
"""What code reading an event's data raises when the data is not of its type's shape."""


@contextlib.contextmanager
def reading(position: int, event_type: str) -> Iterator[None]:
    """Code inside reads one event's data: data of the wrong shape is an UnreadableEvent naming it."""
    try:
        yield
    except SHAPE_ERRORS as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {str(exc)[:200]}"
        raise UnreadableEvent(position, event_type, detail) from None


class RuleViolation(RegistryError):
    """A business rule refuses the command; nothing was written."""

    code = "rule.violated"
    title = "A business rule refuses this command"


class PayloadTooLarge(RegistryError):
    code = "request.too_large"
    title = "The request body is too large"


class UnsupportedMediaType(RegistryError):
    """A body sent as something other than JSON (its Content-Type says so)."""

    code = "request.unsupported_media_type"
    title = "The request body must be JSON"


class Unavailable(RegistryError):
    """The service cannot carry out the request right now; the same request may be sent again later."""

    code = "service.unavailable"
    title = "The service is unavailable right now"

    def __init__(self, detail: str, *, retry_after: int = 1, **figures: Any) -> None:
        super().__init__(detail, retry_after_seconds=retry_after, **figures)
        self.retry_after = retry_after
        """Seconds after which the client may try again (the Retry-After header)."""


class InternalError(RegistryError):
    code = "internal.error"
    title = "The service failed to carry out the request; nothing was written"
