"""HTTP for the warrant registry: series, registers, transfers, balances, exercise, IPO suspension."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.access.policy import READ_ALL, allow, ensure_own, identity_of
from registry.access.tokens import Role
from registry.approvals import domain as approvals_domain
from registry.approvals import service as approvals
from registry.clock import business_date
from registry.errors import Forbidden
from registry.eventlog import store
from registry.eventlog.model import StoredEvent
from registry.fields import Identifier, Reason
from registry.http.commands import ETAG, run_command, with_etag
from registry.http.pagination import Page, clamp_limit, page, position_cursor
from registry.http.params import After, AsOf, AtPosition, Limit, PositionAfter
from registry.warrants import domain, service
from registry.warrants.service import CapTable, HolderRegister, Position, SeriesView



HOLDER_WRITE_ON_SERIES = allow(Role.operator, own=(Role.investor,), writes=True, if_match=True)
HOLDING_CHANGE = allow(Role.operator, writes=True, if_match=True)


class Proposal(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    terms: domain.SeriesTerms
    reason: Reason


async def _ensure_series_visible(request: Request, code: str) -> None:
    """Enterprises see only series on themselves; a missing series looks the same as another's."""
    identity = identity_of(request)
    if identity.role is Role.enterprise:
        async with request.app.state.db.connection() as conn:
            if await service.series_target(conn, code) != identity.subject:
                raise Forbidden("you may only act on your own records")


async def _ensure_account_holder(request: Request, account_id: str) -> None:
    identity = identity_of(request)
    if identity.role is Role.investor:
        async with request.app.state.db.connection() as conn:
            await service.ensure_holder_of_account(conn, identity.subject, account_id)


class WarrantSeriesController(Controller):
    path = "/warrant-series"
    tags = ["warrants · 认股权"]

    @post("/", summary="Propose a series (非公开发行); an operator approves it into registration (初始登记)",
          opt=allow(Role.operator, own=(Role.enterprise,), writes=True))
    async def propose(self, request: Request, data: JSONBody[Proposal]) -> Response[Any]:
        ensure_own(identity_of(request), Role.enterprise, data.terms.target_uscc)
        cmd = approvals_domain.RequestApproval(action="warrant.register", payload=msgspec.to_builtins(data.terms),
                                               reason=data.reason)
        return await run_command(request, command="ProposeWarrantSeries", body=data,
                                 handler=approvals.request_approval(cmd), reason=data.reason)

    @get("/", summary="Warrant series (an enterprise sees only the series on itself)",
         opt=allow(*READ_ALL, Role.enterprise))
    async def list_all(self, request: Request, state: State, after: After = None, limit: Limit = None,
                       target_uscc: FromQuery[str | None] = None,
                       status: FromQuery[domain.SeriesStatus | None] = None) -> Page[SeriesView]:
        identity = identity_of(request)
        if identity.role is Role.enterprise:
            target_uscc = identity.subject
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_series(conn, after=after, limit=n, target_uscc=target_uscc, status=status)
        return page(items, n, lambda s: s.code)

    @get("/{code:str}", summary="One series", opt=allow(*READ_ALL, own=(Role.enterprise,)), response_headers=ETAG)
    async def one(self, request: Request, state: State, code: FromPath[str]) -> Response[SeriesView]:
        await _ensure_series_visible(request, code)
        async with state.db.connection() as conn:
            view = await service.get_series(conn, code)
            return with_etag(view, await store.stream_version(conn, service.series_stream(code)))

    @get("/{code:str}/register", summary="Holder register (持有人名册) and rights confirmation (确权表), as of a date "
                                        "or log position", opt=allow(*READ_ALL, own=(Role.enterprise,)))
    async def register(self, request: Request, state: State, code: FromPath[str], as_of: AsOf = None,
                       at_position: AtPosition = None) -> HolderRegister:
        await _ensure_series_visible(request, code)
        async with state.db.connection() as conn:
            position = await store.position_at(conn, as_of, at_position)
            return await service.holder_register(conn, code, position)

    @get("/{code:str}/history", summary="The series' events, optionally only those touching one account",
         opt=allow(*READ_ALL, own=(Role.enterprise,)))
    async def history(self, request: Request, state: State, code: FromPath[str], after: PositionAfter = None,
                      limit: Limit = None, account_id: FromQuery[str | None] = None) -> Page[StoredEvent]:
        await _ensure_series_visible(request, code)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            await service.get_series(conn, code)
            if account_id is None:
                events = await store.read_events(conn, after=position_cursor(after),
                                                 stream=service.series_stream(code), limit=n)
                last = events[-1].position if len(events) == n else None
            else:
                events, last = await store.read_matching(
                    conn, lambda e: account_id in {e.data.get("account_id"), e.data.get("from_account"),
                                                   e.data.get("to_account")},
                    after=position_cursor(after), limit=n, stream=service.series_stream(code))
        return Page(items=events, next=None if last is None else str(last))

    @post("/{code:str}/confirmations", summary="Confirm a holder's rights (确权)",
          opt=HOLDER_WRITE_ON_SERIES)
    async def confirm(self, request: Request, code: FromPath[str], data: JSONBody[AccountRef]) -> Response[Any]:
        await _ensure_account_holder(request, data.account_id)
        return await run_command(request, command="ConfirmRights", body={"code": code, "account_id": data.account_id},
                                 handler=service.confirm_rights(code, data.account_id), streams=[service.series_stream(code)])

    @post("/{code:str}/transfers", summary="Transfer units to one named counterparty (转让)",
          opt=HOLDER_WRITE_ON_SERIES)
    async def transfer(self, request: Request, code: FromPath[str], data: JSONBody[domain.Transfer]) -> Response[Any]:
        await _ensure_account_holder(request, data.from_account)
        return await run_command(request, command="TransferWarrants", body={"code": code, **msgspec.to_builtins(data)},
                                 handler=service.transfer(code, data), streams=[service.series_stream(code)],
                                 savepoint=False)

    @post("/{code:str}/holdings/{account_id:str}/freezes", summary="Freeze units (冻结)",
          opt=HOLDING_CHANGE, status_code=200)
    async def freeze(self, request: Request, code: FromPath[str], account_id: FromPath[str],
                     data: JSONBody[domain.BalanceChange]) -> Response[Any]:
        return await self._move(request, code, account_id, "freeze", data)

    @post("/{code:str}/holdings/{account_id:str}/thaws", summary="Thaw frozen units (解冻)",
          opt=HOLDING_CHANGE, status_code=200)
    async def thaw(self, request: Request, code: FromPath[str], account_id: FromPath[str],
                   data: JSONBody[domain.BalanceChange]) -> Response[Any]:
        return await self._move(request, code, account_id, "thaw", data)

    @post("/{code:str}/holdings/{account_id:str}/pledges", summary="Pledge units (质押)",
          opt=HOLDING_CHANGE, status_code=200)
    async def pledge(self, request: Request, code: FromPath[str], account_id: FromPath[str],
                     data: JSONBody[domain.BalanceChange]) -> Response[Any]:
        return await self._move(request, code, account_id, "pledge", data)

    @post("/{code:str}/holdings/{account_id:str}/releases", summary="Release pledged units (解除质押)",
          opt=HOLDING_CHANGE, status_code=200)
    async def release(self, request: Request, code: FromPath[str], account_id: FromPath[str],
                      data: JSONBody[domain.BalanceChange]) -> Response[Any]:
        return await self._move(request, code, account_id, "release", data)

    async def _move(self, request: Request, code: str, account_id: str, kind: str,
                    data: domain.BalanceChange) -> Response[Any]:
        return await run_command(request, command=f"{kind.capitalize()}Units",
                                 body={"code": code, "account_id": account_id, **msgspec.to_builtins(data)},
                                 handler=service.move_balance(code, kind, account_id, data), reason=data.reason,
                                 streams=[service.series_stream(code)])

    @post("/{code:str}/exercises", summary="Exercise units (行权), whole or partial",
          opt=HOLDER_WRITE_ON_SERIES)
    async def exercise(self, request: Request, code: FromPath[str], data: JSONBody[domain.Exercise]) -> Response[Any]:
        await _ensure_account_holder(request, data.account_id)
        return await run_command(request, command="ExerciseWarrants", body={"code": code, **msgspec.to_builtins(data)},
                                 handler=service.exercise(code, data), streams=[service.series_stream(code)])

    @post("/{code:str}/exercises/{exercise_id:str}/confirmations",
          summary="The issuer confirms the capital increase or share transfer; the share register changes",
          opt=allow(Role.operator, own=(Role.enterprise,), writes=True), status_code=200)
    async def confirm_exercise(self, request: Request, code: FromPath[str],
                               exercise_id: FromPath[str]) -> Response[Any]:
        await _ensure_series_visible(request, code)
        return await run_command(request, command="ConfirmExercise", body={"code": code, "exercise_id": exercise_id},
                                 handler=service.confirm_exercise(code, exercise_id))

    @post("/{code:str}/adjustments", summary="Adjust entitlement and price (bonus issue, split, conversion, "
                                             "down-round)", opt=allow(Role.operator, writes=True),
          status_code=200)
    async def adjust(self, request: Request, code: FromPath[str], data: JSONBody[domain.Adjustment]) -> Response[Any]:
        return await run_command(request, command="AdjustSeries", body={"code": code, **msgspec.to_builtins(data)},
                                 handler=service.adjust(code, data), reason=data.reason)

    @post("/{code:str}/cancellations", summary="Cancel the series' outstanding units (注销登记)",
          opt=allow(Role.operator, writes=True), status_code=200)
    async def cancel(self, request: Request, code: FromPath[str], data: JSONBody[service.Cancel]) -> Response[Any]:
        return await run_command(request, command="CancelSeries", body={"code": code, "reason": data.reason},
                                 handler=service.cancel(code, data), reason=data.reason)


class AccountRef(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    account_id: Identifier


class EnterpriseWarrantController(Controller):
    """What the warrant registry needs from an enterprise: its share register and IPO filings."""

    path = "/enterprises/{uscc:str}"
    tags = ["warrants · 认股权"]

    @post("/share-register", summary="Record the existing 股东名册 (once)", opt=allow(Role.operator, writes=True))
    async def register_shares(self, request: Request, uscc: FromPath[str],
                              data: JSONBody[service.RegisterShares]) -> Response[Any]:
        return await run_command(request, command="RegisterShares",
                                 body={"uscc": uscc, **msgspec.to_builtins(data)},
                                 handler=service.register_shares(uscc, data), reason=data.reason)

    @get("/cap-table", summary="Shares and warrants per holder, fully diluted, as of a date or log position",
         opt=allow(*READ_ALL, own=(Role.enterprise,)))
    async def cap_table(self, request: Request, state: State, uscc: FromPath[str], as_of: AsOf = None,
                        at_position: AtPosition = None) -> CapTable:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        async with state.db.connection() as conn:
            position = await store.position_at(conn, as_of, at_position)
            return await service.cap_table(conn, uscc, position)

    @post("/ipo-filings", summary="The target filed for an IPO: its live series are suspended",
          opt=allow(Role.operator, writes=True), status_code=200)
    async def ipo_filing(self, request: Request, uscc: FromPath[str],
                         data: JSONBody[service.IpoFiling]) -> Response[Any]:
        return await run_command(request, command="RecordIpoFiling", body={"uscc": uscc, **msgspec.to_builtins(data)},
                                 handler=service.ipo_filed(uscc, data), reason=data.reason)

    @post("/ipo-outcomes", summary="The IPO was approved (series end) or not (they resume, expiry extended)",
          opt=allow(Role.operator, writes=True), status_code=200)
    async def ipo_outcome(self, request: Request, uscc: FromPath[str],
                          data: JSONBody[service.IpoOutcome]) -> Response[Any]:
        return await run_command(request, command="RecordIpoOutcome", body={"uscc": uscc, **msgspec.to_builtins(data)},
                                 handler=service.ipo_outcome(uscc, data), reason=data.reason)


class PositionController(Controller):
    path = "/investors/{investor_id:str}/positions"
    tags = ["warrants · 认股权"]

    @get("/", summary="An investor's warrant positions across all series", opt=allow(*READ_ALL, own=(Role.investor,)))
    async def positions(self, request: Request, state: State, investor_id: FromPath[str], after: After = None,
                        limit: Limit = None) -> Page[Position]:
        ensure_own(identity_of(request), Role.investor, investor_id)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.positions(conn, investor_id, after=after, limit=n,
                                            today=business_date(state.db.writer.clock()),
                                            stale_after_days=state.settings.valuation_stale_after_days)
        return page(items, n, lambda p: f"{p.code}/{p.account_id}")
