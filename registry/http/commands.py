"""Running a write from HTTP: Idempotency-Key, event metadata, the writer, and the response envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, Response

from registry.access.policy import identity_of
from registry.errors import BadRequest
from registry.eventlog.model import EventMeta
from registry.eventlog.writer import Handler, Idempotency
from registry.http.request_id import request_id_for

IDEMPOTENCY_HEADER = "idempotency-key"


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


async def run_command(request: Request, *, command: str, body: Any, handler: Handler,
                      streams: Sequence[str] = (), reason: str | None = None, status: int = 201) -> Response[Any]:
    """Execute one command for the caller; the same key and body replay the original answer."""
    key = idempotency_key(request)
    identity = identity_of(request)
    meta = EventMeta(actor=identity.subject, role=str(identity.role), command=command,
                     request_id=request_id_for(request.scope), idempotency_key=key, reason=reason)
    fingerprint = msgspec.to_builtins(body, order="sorted")
    idem = Idempotency.of(f"{identity.role}:{identity.subject}", key, command, fingerprint)
    result = await request.app.state.db.writer.execute(handler, meta, idempotency=idem, streams=streams)
    content = dict(result.response) if isinstance(result.response, dict) else {"result": result.response}
    content["log"] = msgspec.to_builtins(WriteReceipt(first_position=result.first_position,
                                                      last_position=result.last_position,
                                                      replayed=result.replayed))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(content, status_code=status, headers=headers)
