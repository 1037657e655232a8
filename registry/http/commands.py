"""Running a write from HTTP: Idempotency-Key, event metadata, the writer, and the response envelope."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import ResponseHeader

from registry.access.policy import identity_of
from registry.errors import BadRequest
from registry.eventlog.model import EventMeta
from registry.eventlog.writer import Handler, Idempotency
from registry.http.request_id import request_id_for

IDEMPOTENCY_HEADER_NAME = "Idempotency-Key"
IDEMPOTENCY_HEADER = IDEMPOTENCY_HEADER_NAME.lower()
IF_MATCH_PATTERN = r'^(W/)?"(-1|[0-9]{1,18})"$|^(-1|[0-9]{1,18})$'
"""What `if_match` accepts: a stream version of -1 or more, quoted as an ETag (or bare)."""
ETAG = [ResponseHeader(name="ETag", documentation_only=True, required=True,
                       description='the version of the resource\'s stream, e.g. "3": send it back as If-Match')]
"""Response headers of a handler answering `with_etag`."""


class WriteReceipt(msgspec.Struct, kw_only=True, frozen=True):
    """Where a write landed in the log; `replayed` when an earlier identical request is answered again."""

    first_position: int | None
    last_position: int | None
    replayed: bool


def idempotency_key(request: Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        raise BadRequest("every write needs an Idempotency-Key header (a client-chosen unique string)",
                         header="Idempotency-Key")
    if len(key) > 255:
        raise BadRequest("Idempotency-Key is longer than 255 characters", length=len(key))
    return key


def with_etag(content: Any, version: int) -> Response[Any]:
    """A resource with its stream version as ETag, for a later write's If-Match."""
    return Response(content, headers={"ETag": f'"{version}"'})


def if_match(request: Request) -> int | None:
    """`If-Match: "<version>"` — the version of the resource's stream the client decided on (409 if it moved)."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    match = re.match(IF_MATCH_PATTERN, raw.strip())
    if match is None:
        raise BadRequest('If-Match must be a stream version of -1 or more, e.g. If-Match: "3"', header="If-Match")
    return int(match.group(2) or match.group(3))


async def run_command(request: Request, *, command: str, body: Any, handler: Handler,
                      streams: Sequence[str] = (), reason: str | None = None,
                      savepoint: bool = True) -> Response[Any]:
    """Execute one command for the caller; the same key and body replay the original answer.

    `streams[0]` is the resource's own stream: on a route declaring `allow(..., if_match=True)`, an
    If-Match header states the version the client read. The answer's status is the route's own.
    `savepoint=False` only for handlers that refuse before they write (see Writer.execute).
    """
    conditional = request.route_handler.opt["access"].if_match
    if conditional != bool(streams):
        raise RuntimeError(f"{command}: a route declares if_match exactly when it names its resource's stream")
    key = idempotency_key(request)
    identity = identity_of(request)
    meta = EventMeta(actor=identity.subject, role=str(identity.role), command=command,
                     request_id=request_id_for(request.scope), idempotency_key=key, reason=reason)
    fingerprint = msgspec.to_builtins(body, order="sorted")
    idem = Idempotency.of(f"{identity.role}:{identity.subject}", key, command, fingerprint)
    stated = if_match(request)
    if stated is not None and not conditional:
        raise BadRequest("If-Match cannot be used on this action", header="If-Match")
    expects = {streams[0]: stated} if stated is not None else None
    result = await request.app.state.db.writer.execute(handler, meta, idempotency=idem, streams=streams,
                                                       expects=expects, savepoint=savepoint)
    content = dict(result.response) if isinstance(result.response, dict) else {"result": result.response}
    content["log"] = msgspec.to_builtins(WriteReceipt(first_position=result.first_position,
                                                      last_position=result.last_position,
                                                      replayed=result.replayed))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(content, status_code=request.route_handler.status_code, headers=headers)
