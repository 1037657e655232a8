"""HTTP for warrant valuations: value a series, read its valuations, recompute one, value a portfolio."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter

from registry.access.policy import READ_ALL, allow, ensure_own, identity_of
from registry.access.tokens import Role
from registry.clock import business_date
from registry.errors import Forbidden
from registry.http.commands import run_command
from registry.http.pagination import Page, clamp_limit, page
from registry.http.params import After, Limit
from registry.valuation import service
from registry.valuation.service import PortfolioValuation, Recomputation, ValuationView
from registry.warrants.service import series_target

AsOf = Annotated[dt.date | None, QueryParameter(
    description="only the latest valuation dated on or before this date (估值基准日)")]


async def _ensure_series_visible(request: Request, code: str) -> None:
    """Enterprises see valuations of series on themselves, investors of series they hold; a missing
    series looks the same as another's."""
    identity = identity_of(request)
    if identity.role not in (Role.enterprise, Role.investor):
        return
    async with request.app.state.db.connection() as conn:
        if identity.role is Role.enterprise:
            visible = await series_target(conn, code) == identity.subject
        else:
            visible = await service.holds_series(conn, identity.subject, code)
    if not visible:
        raise Forbidden("you may only act on your own records")


async def _ensure_valuation_visible(request: Request, valuation_id: str) -> None:
    if identity_of(request).role not in (Role.enterprise, Role.investor):
        return
    async with request.app.state.db.connection() as conn:
        code = await service.valuation_series(conn, valuation_id)
    if code is None:
        raise Forbidden("you may only act on your own records")
    await _ensure_series_visible(request, code)


class SeriesValuationController(Controller):
    path = "/warrant-series/{code:str}/valuations"
    tags = ["valuation · 估值"]

    @post("/", summary="Value a series on a date from recorded inputs and their sources (估值); the series' own "
                       "terms come from the register", opt=allow(Role.operator, writes=True, if_match=True))
    async def value(self, request: Request, code: FromPath[str], data: JSONBody[service.ValueSeries]) -> Response[Any]:
        return await run_command(request, command="RecordValuation", body={"code": code, **msgspec.to_builtins(data)},
                                 handler=service.record_valuation(code, data), streams=[service.valuation_stream(code)])

    @get("/", summary="A series' valuations, latest valuation date first; with as_of, the latest on or before it",
         opt=allow(*READ_ALL, own=(Role.enterprise, Role.investor)))
    async def list_all(self, request: Request, state: State, code: FromPath[str], after: After = None,
                       limit: Limit = None, as_of: AsOf = None) -> Page[ValuationView]:
        await _ensure_series_visible(request, code)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_valuations(conn, code, after=after, limit=n, as_of=as_of)
        return Page(items=items, next=None) if as_of is not None else page(items, n, service.cursor_of)


class ValuationController(Controller):
    path = "/valuations"
    tags = ["valuation · 估值"]

    @get("/{valuation_id:str}", summary="One valuation: every input, source and output",
         opt=allow(*READ_ALL, own=(Role.enterprise, Role.investor)))
    async def one(self, request: Request, state: State, valuation_id: FromPath[str]) -> ValuationView:
        await _ensure_valuation_visible(request, valuation_id)
        async with state.db.connection() as conn:
            return await service.get_valuation(conn, valuation_id)

    @get("/{valuation_id:str}/recomputation", summary="Price a past valuation again from the inputs stored in the "
                                                      "log; `identical` says whether every figure matches",
         opt=allow(Role.operator, Role.regulator))
    async def recomputation(self, state: State, valuation_id: FromPath[str]) -> Recomputation:
        # a read: nothing is appended. price() runs on the event loop's thread, between awaits, so it never
        # overlaps the writer's own pricing (QuantLib's evaluation date is process-wide).
        async with state.db.connection() as conn:
            recorded = await service.load_recorded(conn, valuation_id)
        return service.recompute(recorded)


class PortfolioValuationController(Controller):
    path = "/investors/{investor_id:str}/portfolio-valuation"
    tags = ["valuation · 估值"]

    @get("/", summary="An investor's positions × the latest value per unit of each series, stale ones flagged",
         opt=allow(*READ_ALL, own=(Role.investor,)))
    async def portfolio(self, request: Request, state: State, investor_id: FromPath[str]) -> PortfolioValuation:
        ensure_own(identity_of(request), Role.investor, investor_id)
        today = business_date(state.db.writer.clock())  # the writer's clock is the business date's one seam
        async with state.db.connection() as conn:
            return await service.portfolio(conn, investor_id, as_of=today,
                                           stale_after=state.settings.valuation_stale_after_days)
