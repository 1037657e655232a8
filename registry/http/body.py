"""Every JSON request body is decoded once, strictly, into the Struct its handler declares (registry.fields):
a body that is not UTF-8 JSON, nests too deeply, or breaks a field's type is a 400 naming the field."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from litestar import Request
from litestar.handlers import BaseRouteHandler
from litestar.types import Empty

from registry import fields
from registry.errors import BadRequest, UnsupportedMediaType
from registry.http.nul import is_json_media_type


@lru_cache(maxsize=None)
def _body_type(handler: BaseRouteHandler) -> Any:
    """The type a handler's `data` parameter declares (Any when it takes no JSON body of its own)."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    return Any if parameter is None else parameter.annotation


def decode_body(body: bytes, type_: Any) -> Any:
    try:
        raw = msgspec.json.decode(body)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: a string holds the byte {exc.object[exc.start]:#04x}",
                         where="body") from None
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {fields.MAX_DEPTH} levels", where="body") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", where="body") from None
    try:
        return fields.decode(raw, type_)
    except fields.FieldInvalid as exc:
        raise BadRequest(str(exc), where="body", field=exc.path,
                         errors=[{"key": exc.path, "message": exc.message, "source": "body"}]) from None


class StrictRequest(Request):  # type: ignore[type-arg]
    """Litestar's request, with `json()` holding the body to the handler's declared type (registry.fields)."""

    async def json(self) -> Any:
        if self._json is Empty:
            if (decoded := self._connection_state.json) is not Empty:
                self._json = decoded
            else:
                media_type = self.headers.get("content-type")
                if media_type is not None and not is_json_media_type(media_type.encode("latin-1")):
                    raise UnsupportedMediaType(f"the body is sent as {media_type!r}; send it as JSON with "
                                               "Content-Type: application/json", content_type=media_type)
                self._json = self._connection_state.json = decode_body(await self.body() or b"null",
                                                                       _body_type(self.route_handler))
        return self._json
