"""HTTP for exports: an issuer's warrants as an Open Cap Format package, and the cross-chain records feed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from registry.access.policy import READ_ALL, allow, ensure_own, identity_of
from registry.access.tokens import Role
from registry.errors import BadRequest, UnreadableEvent
from registry.exports import crosschain, ocf
from registry.http.openapi import refuses
from registry.http.pagination import Page, clamp_limit, position_cursor
from registry.http.params import AsOf, AtPosition, Limit, PositionAfter
from registry.eventlog.store import position_at



class OcfPackage(msgspec.Struct, kw_only=True, frozen=True):
    """An OCF v1.2.0 package: file name → file object (the manifest lists the others with their md5)."""

    at_position: int
    files: dict[str, dict[str, Any]]


class EnterpriseExportController(Controller):
    path = "/enterprises/{uscc:str}/exports"
    tags = ["exports"]

    @get("/ocf", summary="The enterprise's 认股权 as an Open Cap Format v1.2.0 package, as of a date or log position",
         opt=allow(*READ_ALL, own=(Role.enterprise,)) | refuses(UnreadableEvent))
    async def ocf_package(self, request: Request, state: State, uscc: FromPath[str], as_of: AsOf = None,
                          at_position: AtPosition = None) -> OcfPackage:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        async with state.db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            position = await position_at(conn, as_of, at_position)
            return OcfPackage(at_position=position, files=await ocf.load_package(conn, uscc, position,
                                                                                  now=state.db.writer.clock()))


class RegistrationRecordController(Controller):
    path = "/exports/registration-records"
    tags = ["exports"]

    @get("/", summary="Cross-chain records (跨链业务数据模型 v2.0.0) in log order: registration (one per balance "
                      "change), product (series) and subject (enterprises, investors). `limit` counts log events; "
                      "the cursor is a log position", opt=allow(*READ_ALL) | refuses(UnreadableEvent))
    async def records(
        self, state: State,
        after: PositionAfter = None, limit: Limit = None,
        series: Annotated[str | None, QueryParameter(description="only this warrant series' records")] = None,
        record_type: Annotated[str | None, QueryParameter(name="type", description="registration, product or "
                                                                                   "subject",
                                                          schema_extra={"enum": list(crosschain.RECORD_TYPES)})] = None,
    ) -> Page[dict[str, Any]]:
        if record_type is not None and record_type not in crosschain.RECORD_TYPES:
            raise BadRequest("type is registration, product or subject", type=record_type)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            items, last = await crosschain.load_records(
                conn, after=position_cursor(after), limit=n, market_name=state.settings.market_name,
                lockup_trading_days=state.settings.holding_interval_trading_days, series=series, kind=record_type)
        return Page(items=items, next=None if last is None else str(last))
