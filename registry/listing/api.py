"""HTTP for the listing pipeline: facts, stage, evaluations and next steps, moves, rulebooks, the overview."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.access.policy import READ_ALL, allow, ensure_own, identity_of
from registry.access.tokens import Role
from registry.clock import business_date
from registry.errors import BadRequest, NotFound
from registry.http.commands import run_command
from registry.http.openapi import refuses
from registry.http.pagination import Page, clamp_limit, position_cursor
from registry.http.params import After, Limit, PositionAfter
from registry.listing import service
from registry.listing.domain import FactName, FileFact, MoveNotAllowed, NoRulebookInForce, Stage
from registry.listing.service import (
    EvaluationReport,
    FactPage,
    NextStepReport,
    Overview,
    RulebookSummary,
    StageView,
)
from registry.parties.service import enterprise_stream

On = Annotated[dt.date | None, QueryParameter(description="business date (Asia/Shanghai); today if omitted")]
ENTERPRISE_OWN = allow(*READ_ALL, own=(Role.enterprise,))


def _today(state: State) -> dt.date:
    """The business date as the writer sees it (the one clock commands use)."""
    return business_date(state.db.writer.clock())


class EnterpriseListingController(Controller):
    path = "/enterprises/{uscc:str}"
    tags = ["listing · 挂牌与转层"]

    @post("/facts", summary="File a fact with its source document (a correction is a new filing)",
          opt=allow(Role.operator, own=(Role.enterprise,), writes=True, if_match=True))
    async def file_fact(self, request: Request, uscc: FromPath[str], data: JSONBody[FileFact]) -> Response[Any]:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        return await run_command(request, command="FileFact", body={"uscc": uscc, **msgspec.to_builtins(data)},
                                 handler=service.file_fact(uscc, data), streams=[enterprise_stream(uscc)])

    @get("/facts", summary="Filed facts, as known at the end of a date; superseded filings say by which",
         opt=ENTERPRISE_OWN)
    async def facts(self, request: Request, state: State, uscc: FromPath[str],
                    as_of: Annotated[dt.date | None, QueryParameter(description="filings made by this date")] = None,
                    in_force: Annotated[bool, QueryParameter(description="only filings not superseded")] = False,
                    name: FromQuery[FactName | None] = None, after: PositionAfter = None, limit: Limit = None) -> FactPage:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            return await service.list_facts(conn, uscc, as_of=as_of, in_force_only=in_force, name=name,
                                            after=position_cursor(after), limit=n)

    @get("/stage", summary="The enterprise's stage, allowed moves, move history and security codes",
         opt=ENTERPRISE_OWN)
    async def stage(self, request: Request, state: State, uscc: FromPath[str]) -> StageView:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        async with state.db.connection() as conn:
            return await service.stage_view(conn, uscc)

    @get("/evaluations", summary="Evaluate a move on a date: every criterion, the standards met, the rulebooks used",
         opt=ENTERPRISE_OWN | refuses(MoveNotAllowed, NoRulebookInForce))
    async def evaluation(self, request: Request, state: State, uscc: FromPath[str],
                         to: Annotated[Stage | None, QueryParameter(description="the stage to move to")] = None,
                         on: On = None) -> EvaluationReport:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        if to is None:
            raise BadRequest("say which move to evaluate: ?to=<stage>", parameter="to")
        async with state.db.connection() as conn:
            return await service.evaluation_on(conn, uscc, to, on or _today(state))

    @get("/next-step", summary="What is missing for the next step (each forward move, its failed criteria)",
         opt=ENTERPRISE_OWN)
    async def next_step(self, request: Request, state: State, uscc: FromPath[str], on: On = None) -> NextStepReport:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        async with state.db.connection() as conn:
            return await service.next_step(conn, uscc, on or _today(state))

    @post("/moves", summary="Request a move (移板/转层); a failing one needs an override reason; a second "
                            "operator's approval carries it out", opt=allow(Role.operator, own=(Role.enterprise,),
                                                                            writes=True))
    async def request_move(self, request: Request, uscc: FromPath[str],
                           data: JSONBody[service.MoveRequest]) -> Response[Any]:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        return await run_command(request, command="RequestMove", body={"uscc": uscc, **msgspec.to_builtins(data)},
                                 handler=service.request_move(uscc, data), reason=data.reason)


class RulebookController(Controller):
    path = "/rulebooks"
    tags = ["listing · 挂牌与转层"]

    @get("/", summary="Rulebooks: every version, shipped or published, and which is in force on a date",
         opt=allow(*tuple(Role)))
    async def list_all(self, state: State, on: On = None, after: After = None,
                       limit: Limit = None) -> Page[RulebookSummary]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            books = await service.rulebook_summaries(conn, on or _today(state))
        items = [b for b in books if after is None or b.id > after][:n]
        return Page(items=items, next=items[-1].id if len(items) == n and items else None)

    @get("/{rulebook_id:str}", summary="One rulebook: each version's criteria, thresholds and provenance",
         opt=allow(*tuple(Role)))
    async def one(self, state: State, rulebook_id: FromPath[str], on: On = None) -> RulebookSummary:
        async with state.db.connection() as conn:
            found = await service.rulebook_summaries(conn, on or _today(state), only=rulebook_id, detail=True)
        if not found:
            raise NotFound(f"no rulebook {rulebook_id}", rulebook_id=rulebook_id)
        return found[0]

    @post("/", summary="Propose a new rulebook version (TOML); a second operator's approval publishes it",
          opt=allow(Role.operator, writes=True))
    async def propose(self, request: Request, data: JSONBody[service.PublishRulebook]) -> Response[Any]:
        return await run_command(request, command="ProposeRulebook", body=data,
                                 handler=service.request_publication(data), reason=data.reason)


class ListingController(Controller):
    path = "/listing"
    tags = ["listing · 挂牌与转层"]

    @get("/overview", summary="The pipeline as of a date: stage counts, moves per month, days per stage, the "
                              "reserve and what it lacks", opt=allow(*READ_ALL))
    async def overview(self, state: State, as_of: On = None) -> Overview:
        async with state.db.connection() as conn:
            return await service.overview(conn, as_of or _today(state))
