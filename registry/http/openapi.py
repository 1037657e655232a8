"""The OpenAPI document as the service behaves: every refusal, every header a client must send, stable ids.

Litestar writes the document from the handlers' signatures. What it cannot see is decided here, in one
place, from what each route declares (`registry.access.policy.allow`) and how the HTTP layer answers
(`registry.http.problems`, `registry.http.commands`):

- every operation lists each status it can refuse with, as an RFC 9457 problem (`application/problem+json`);
- every write asks for an `Idempotency-Key` header, and the writes that honour `If-Match` say so;
- every response carries `X-Request-Id`, and a 401 says how to authenticate (`WWW-Authenticate`);
- every read accepts `Min-Position` (read-your-writes over replicas) and may say `X-Read-Source`;
- `operationId` is `<resource><Handler>` from the controller and the handler's names, e.g.
  `warrantSeriesTransfer`: unique by construction, and it changes only when the code is renamed.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from dataclasses import fields
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OpenAPI, SecurityScheme
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from registry import errors
from registry.access.policy import PUBLIC, Access
from registry.access.tokens import Role
from registry.db.replica import PRIMARY, REPLICA
from registry.http.commands import IDEMPOTENCY_HEADER_NAME, IF_MATCH_PATTERN
from registry.http.pagination import MAX_POSITION
from registry.http.problems import PROBLEM_JSON, status_of_kind
from registry.http.read_position import HEADER_NAME as MIN_POSITION, READS, SOURCE_HEADER_NAME
from registry.http.request_id import HEADER as REQUEST_ID_HEADER

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem. `code` names the rule; the rule's figures are further members.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "pattern": "^urn:registry:problem:", "description": "urn:registry:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the path the request was sent to"},
        "code": {"type": "string", "description": "stable code of the refusal"},
        "request_id": {"type": "string", "description": "the request's X-Request-Id, for support"},
    },
    "additionalProperties": True,
}

REFUSALS = {
    400: "The request is malformed: a missing or bad header, parameter or body",
    401: "No valid bearer token was sent",
    403: "Your role, or the records you may act on, do not allow this",
    404: "A resource named by the request does not exist",
    409: "The request conflicts with the current state (e.g. If-Match names a version that has moved on)",
    413: "The request body is larger than the service accepts",
    415: "The request body is sent as something other than JSON (Content-Type: application/json)",
    422: "A business rule refuses the request; nothing was written",
    503: "The service cannot answer now",
}

_STRING = {"type": "string"}
_REQUEST_ID = {"description": "the request's id (the one sent, when sane; otherwise a new one)",
               "required": True, "schema": _STRING}


def refuses(*kinds: type[errors.RegistryError] | int) -> dict[str, Any]:
    """Route `opt` naming refusals the route's rules reach beyond what its shape implies (see `statuses`)."""
    return {"refuses": tuple(kind if isinstance(kind, int) else status_of_kind(kind) for kind in kinds)}


def statuses(handler: HTTPRouteHandler, method: str, path_parameters: bool) -> set[int]:
    """What a route can refuse with, from what it declares: anything can be malformed (a NUL in a header);
    a route needing a token may be called without a valid one (401); one not open to every role, or only to a caller's own
    records, refuses others (403); a named resource may be missing (404); a write may name missing
    records, collide with the state, break a rule or reuse an Idempotency-Key (404, 409, 422); a body
    may be too large (413) or not JSON (415)."""
    access = handler.opt.get("access")
    found = {400}
    if access != PUBLIC:
        found.add(401)
        if not isinstance(access, Access) or access.roles != frozenset(Role) or access.own:
            found.add(403)
    if path_parameters:
        found.add(404)
    if isinstance(access, Access) and access.writes:
        found |= {404, 409, 422}
    if method == "POST" and "data" in handler.parsed_fn_signature.parameters:
        found |= {413, 415}
    found.update(handler.opt.get("refuses", ()))
    return found


def operation_id(handler: HTTPRouteHandler, *_: Any) -> str:
    """`EnterpriseController.list_all` → `enterpriseListAll`."""
    owner, _, name = handler.fn.__qualname__.rpartition(".")
    resource = owner.removesuffix("Controller")
    words = [resource[:1].lower() + resource[1:], *(w.capitalize() for w in name.split("_") if w)]
    return "".join(words)


def _problem_response(status: int) -> dict[str, Any]:
    schema = {"allOf": [{"$ref": "#/components/schemas/Problem"},
                        {"type": "object", "properties": {"status": {"const": status}}}]}
    headers: dict[str, Any] = {REQUEST_ID_HEADER.title(): _REQUEST_ID}
    if status == 401:
        headers["WWW-Authenticate"] = {"description": "the scheme to authenticate with", "required": True,
                                       "schema": {"type": "string", "const": "Bearer"}}
    return {"description": REFUSALS[status], "headers": headers, "content": {PROBLEM_JSON: {"schema": schema}}}


def _write_headers(access: Access) -> list[dict[str, Any]]:
    headers = [{
        "name": IDEMPOTENCY_HEADER_NAME, "in": "header", "required": True,
        "description": "a unique string the client chooses per intended write: the same key and body answer "
                       "the first result again (Idempotent-Replayed: true); the same key with another body is "
                       "refused",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
    }]
    if access.if_match:
        headers.append({
            "name": "If-Match", "in": "header", "required": False,
            "description": 'the version (ETag) of the resource the decision was made on, e.g. "3"; -1 for '
                           "none yet. 409 if it has moved on since",
            "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
        })
    return headers


_MIN_POSITION = {
    "name": MIN_POSITION, "in": "header", "required": False,
    "description": "a log position this read must reflect, e.g. a write's `log.last_position`: the answer comes "
                   "from a replica that has replayed it, or else from the primary (read-your-writes)",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
}
_READ_SOURCE = {"description": "where the read was answered from, when the service reads from replicas",
                "required": False, "schema": {"type": "string", "enum": [PRIMARY, REPLICA]}}


def describe_operation(operation: dict[str, Any], handler: HTTPRouteHandler, method: str,
                       path_parameters: bool) -> None:
    """Adds to one generated operation what the route does beyond its signature."""
    for parameter in operation.get("parameters", ()):
        _drop_null(parameter)
    responses = operation.setdefault("responses", {})
    for response in responses.values():
        headers = response.setdefault("headers", {})
        for header in headers.values():
            header.setdefault("schema", _STRING)
        headers[REQUEST_ID_HEADER.title()] = _REQUEST_ID
    for status in sorted(statuses(handler, method, path_parameters)):
        responses[str(status)] = _problem_response(status)
    if method in READS:
        operation.setdefault("parameters", []).append(deepcopy(_MIN_POSITION))
        for response in responses.values():
            response["headers"][SOURCE_HEADER_NAME] = _READ_SOURCE
    access = handler.opt.get("access")
    if access == PUBLIC:
        operation["security"] = []
    if isinstance(access, Access) and access.writes:
        operation.setdefault("parameters", []).extend(_write_headers(access))
        for status, response in responses.items():
            if status.startswith("2"):
                response["headers"]["Idempotent-Replayed"] = {
                    "description": "present (true) when an earlier request with the same key is answered again",
                    "required": False, "schema": {"type": "string", "const": "true"}}


def _drop_null(parameter: dict[str, Any]) -> None:
    """An omitted parameter is absent, never null: `oneOf: [X, null]` becomes X, keeping the constraints."""
    schema = parameter.get("schema", {})
    kinds = schema.get("oneOf", ())
    if len(kinds) == 2 and {"type": "null"} in kinds:
        (kind,) = (k for k in kinds if k != {"type": "null"})
        del schema["oneOf"]
        parameter["schema"] = {**kind, **schema}


class RouteCatalog(ReceiveRoutePlugin):
    """Remembers the app's HTTP routes as they are registered, for the document's second pass."""

    __slots__ = ("by_path",)

    def __init__(self) -> None:
        self.by_path: dict[str, HTTPRoute] = {}

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):
            self.by_path[route.path] = route  # a path registered again comes back with all its handlers


class _Document(OpenAPI):
    """The generated document; `to_schema()` adds what `describe_operation` knows."""

    catalog: RouteCatalog

    def to_schema(self) -> dict[str, Any]:
        document = super().to_schema()
        document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = deepcopy(PROBLEM_SCHEMA)
        for route, handler, method in _operations(self.catalog.by_path.values()):
            operation = document["paths"][route.path_format or "/"][method.lower()]
            describe_operation(operation, handler, method, bool(route.path_parameters))
        return document


def _operations(routes: Iterable[HTTPRoute]) -> Iterable[tuple[HTTPRoute, HTTPRouteHandler, str]]:
    for route in routes:
        for method, (handler, _) in route.route_handler_map.items():
            if method != "OPTIONS" and handler.resolve_include_in_schema():
                yield route, handler, method


class _Config(OpenAPIConfig):
    catalog: RouteCatalog

    def to_openapi_schema(self) -> OpenAPI:
        plain = super().to_openapi_schema()
        document = _Document(**{f.name: getattr(plain, f.name) for f in fields(plain)})
        document.catalog = self.catalog
        return document


def openapi_config(catalog: RouteCatalog, **kwargs: Any) -> OpenAPIConfig:
    """The service's OpenAPI configuration; `catalog` must be among the app's plugins."""
    config = _Config(
        operation_id_creator=operation_id,
        components=Components(security_schemes={
            "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
        }),
        security=[{"bearer": []}],
        **kwargs,
    )
    config.catalog = catalog
    return config


__all__ = ["RouteCatalog", "describe_operation", "openapi_config", "operation_id", "refuses", "statuses"]
