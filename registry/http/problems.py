"""RFC 9457 problem+json for every error: the one place where an error kind becomes an HTTP status."""

from __future__ import annotations

import enum
import logging
import typing
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from registry import errors
from registry.db import outage
from registry.http.request_id import request_id_for

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS_BY_KIND: tuple[tuple[type[errors.RegistryError], int], ...] = (
    (errors.BadRequest, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.RuleViolation, 422),
    (errors.InternalError, 500),
    (errors.Unavailable, 503),
)

_HTTP_CODES = {
    400: "request.invalid", 401: "auth.unauthenticated", 403: "auth.forbidden", 404: "resource.not_found",
    405: "request.method_not_allowed", 406: "request.not_acceptable", 413: "request.too_large",
    415: "request.unsupported_media_type", 429: "request.rate_limited",
}


def status_of(error: errors.RegistryError) -> int:
    return status_of_kind(type(error))


def status_of_kind(kind: type[errors.RegistryError]) -> int:
    for parent, status in STATUS_BY_KIND:
        if issubclass(kind, parent):
            return status
    return 422


def problem(status: int, code: str, title: str, detail: str, request: Request | None = None,
            extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
            retry_after: int | None = None) -> Response[dict[str, Any]]:
    """A problem document; `extra` (the rule's figures) may not overwrite the standard members.

    `retry_after` (seconds) goes out as the Retry-After header of a 503.
    """
    body: dict[str, Any] = {
        "type": f"urn:registry:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    if request is not None:
        body["request_id"] = request_id_for(request.scope)
    for key, value in (extra or {}).items():
        if key not in body:
            body[key] = value
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if retry_after is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def registry_error_handler(request: Request, exc: errors.RegistryError) -> Response[dict[str, Any]]:
    status = status_of(exc)
    if isinstance(exc, errors.Unavailable):
        log.info("request refused for now: %s", exc.detail)
        return problem(status, exc.code, exc.title, exc.detail, request, exc.figures, retry_after=exc.retry_after)
    if status >= 500:
        log.error("request failed: %s", exc.detail)
    return problem(status, exc.code, exc.title, exc.detail, request, exc.figures)


def http_exception_handler(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        # Litestar reports body/query decoding errors here: wrong types, unknown fields, bad JSON.
        _name_a_missing_body(exc)
        return problem(400, "request.invalid", "The request is malformed", _validation_detail(exc), request,
                       {"errors": _with_allowed_values(_jsonable(exc.extra), request)})
    if status >= 500:
        log.error("HTTP %s: %s", status, exc.detail)
        return problem(status, "internal.error", "The service failed", "internal error", request)
    code = _HTTP_CODES.get(status, f"http.{status}")
    # the exception's own headers stay: a 405 names the methods the resource allows (RFC 9110 §15.5.6)
    return problem(status, code, exc.detail or "Request refused", exc.detail or "", request,
                   headers=dict(exc.headers or {}))


def out_of_range_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A number too large for the database (e.g. a position past 2^63) is the request's fault, not ours."""
    return problem(400, "request.value_out_of_range", "A value is out of range",
                   "a number in the request is too large or too small to be stored or compared", request)


def unexpected_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    if outage.lost(exc):  # a read that met the database going away: the same request works once it is back
        return registry_error_handler(request, outage.DatabaseUnavailable.now(exc))
    log.exception("unexpected error")
    return problem(500, "internal.error", "The service failed to carry out the request",
                   "an unexpected error occurred; nothing was written", request)


def _name_a_missing_body(exc: ValidationException) -> None:
    """Litestar reports an empty body as its handler's `data` argument missing (`'data'`): say so in words."""
    for error in exc.extra if isinstance(exc.extra, list) else ():
        if isinstance(error, dict) and error.get("source") == "body" and error.get("message") == "'data'":
            error.update(key="", message="the request has no body: send a JSON object with Content-Type: "
                                         "application/json")


def _validation_detail(exc: ValidationException) -> str:
    extra = exc.extra
    if isinstance(extra, list) and extra and isinstance(extra[0], dict) and "message" in extra[0]:
        parts = [f"{e.get('key', '')}: {e['message']}".strip(": ") for e in extra]
        return "; ".join(parts)
    return exc.detail or "the request could not be decoded"


def _with_allowed_values(errors_: Any, request: Request) -> Any:
    """A query or path parameter refused for a value outside its vocabulary: say which values it takes."""
    if not isinstance(errors_, list):
        return errors_
    for error in errors_:
        if isinstance(error, dict) and error.get("source") in ("query", "path") and isinstance(error.get("key"), str):
            allowed = _vocabulary(request, error["key"])
            if allowed is not None:
                error["allowed"] = allowed
    return errors_


def _vocabulary(request: Request, name: str) -> list[str] | None:
    try:
        field = request.route_handler.parsed_fn_signature.parameters.get(name)
    except AttributeError:
        return None
    annotation = getattr(field, "annotation", None)
    for kind in typing.get_args(annotation) or (annotation,):
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return [str(member.value) for member in kind]
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


EXCEPTION_HANDLERS = {
    errors.RegistryError: registry_error_handler,
    OverflowError: out_of_range_handler,
    asyncpg.DataError: out_of_range_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "problem", "status_of", "status_of_kind", "PROBLEM_JSON", "MediaType"]
