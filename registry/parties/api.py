"""HTTP for parties: enterprises, investors, securities accounts, qualified-investor status."""

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
from registry.errors import Forbidden
from registry.eventlog.store import stream_version
from registry.http.commands import ETAG, run_command, with_etag
from registry.http.pagination import Page, clamp_limit, page
from registry.http.params import After, Limit
from registry.parties import domain, service
from registry.parties.qualification import QualificationThresholds
from registry.parties.service import AccountView, EnterpriseView, InvestorView, QualificationView



class EnterpriseController(Controller):
    path = "/enterprises"
    tags = ["parties · 企业"]

    @post("/", summary="Register an enterprise (挂牌企业登记)", opt=allow(Role.operator, writes=True, if_match=True))
    async def register(self, request: Request, data: JSONBody[domain.RegisterEnterprise], state: State) -> Response[Any]:
        handler = service.register_enterprise(data, province_prefix=state.settings.province_prefix)
        return await run_command(request, command="RegisterEnterprise", body=data, handler=handler,
                                 streams=[service.enterprise_stream(data.uscc)])

    @get("/", summary="Enterprises, by USCC", opt=allow(*READ_ALL))
    async def list_all(self, state: State, after: After = None, limit: Limit = None,
                       status: FromQuery[domain.EnterpriseStatus | None] = None,
                       specialised_level: FromQuery[domain.SpecialisedLevel | None] = None,
                       name_contains: FromQuery[str | None] = None) -> Page[EnterpriseView]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_enterprises(conn, after=after, limit=n, status=status,
                                                   specialised_level=specialised_level, name_contains=name_contains)
        return page(items, n, lambda e: e.uscc)

    @get("/{uscc:str}", summary="One enterprise", opt=allow(*READ_ALL, own=(Role.enterprise,)), response_headers=ETAG)
    async def one(self, request: Request, state: State, uscc: FromPath[str]) -> Response[EnterpriseView]:
        ensure_own(identity_of(request), Role.enterprise, uscc)
        async with state.db.connection() as conn:
            view = await service.get_enterprise(conn, uscc)
            return with_etag(view, await stream_version(conn, service.enterprise_stream(uscc)))


class InvestorController(Controller):
    path = "/investors"
    tags = ["parties · 投资者"]

    @post("/", summary="Register an investor (natural person or institution)", opt=allow(Role.operator, writes=True))
    async def register(self, request: Request, data: JSONBody[domain.RegisterInvestor]) -> Response[Any]:
        return await run_command(request, command="RegisterInvestor", body=data,
                                 handler=service.register_investor(data))

    @get("/", summary="Investors", opt=allow(*READ_ALL))
    async def list_all(self, state: State, after: After = None, limit: Limit = None,
                       kind: FromQuery[domain.InvestorKind | None] = None) -> Page[InvestorView]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_investors(conn, after=after, limit=n, kind=kind)
        return page(items, n, lambda i: i.investor_id)

    @get("/{investor_id:str}", summary="One investor", opt=allow(*READ_ALL, own=(Role.investor,)),
         response_headers=ETAG)
    async def one(self, request: Request, state: State, investor_id: FromPath[str]) -> Response[InvestorView]:
        ensure_own(identity_of(request), Role.investor, investor_id)
        async with state.db.connection() as conn:
            view = await service.get_investor(conn, investor_id)
            return with_etag(view, await stream_version(conn, service.investor_stream(investor_id)))

    @post("/{investor_id:str}/accounts", summary="Open a securities account (开户)",
          opt=allow(Role.operator, writes=True))
    async def open_account(self, request: Request, investor_id: FromPath[str], data: JSONBody[domain.OpenAccount]) -> Response[Any]:
        return await run_command(request, command="OpenAccount", body={"investor_id": investor_id, **msgspec.to_builtins(data)},
                                 handler=service.open_account(investor_id, data))

    @get("/{investor_id:str}/accounts", summary="An investor's accounts", opt=allow(*READ_ALL, own=(Role.investor,)))
    async def accounts(self, request: Request, state: State, investor_id: FromPath[str], after: After = None,
                       limit: Limit = None, status: FromQuery[domain.AccountStatus | None] = None) -> Page[AccountView]:
        ensure_own(identity_of(request), Role.investor, investor_id)
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            await service.get_investor(conn, investor_id)
            items = await service.list_accounts(conn, investor_id=investor_id, after=after, limit=n, status=status)
        return page(items, n, lambda a: a.account_id)

    @post("/{investor_id:str}/qualifications", summary="Record qualified-investor status (合格投资者认定)",
          opt=allow(Role.operator, writes=True, if_match=True))
    async def grant(self, request: Request, investor_id: FromPath[str], data: JSONBody[domain.GrantQualification]) -> Response[Any]:
        return await run_command(request, command="GrantQualification",
                                 body={"investor_id": investor_id, **msgspec.to_builtins(data)},
                                 handler=service.grant_qualification(investor_id, data,
                                                                     request.app.state.settings.qualification_thresholds),
                                 streams=[service.investor_stream(investor_id)])

    @post("/{investor_id:str}/qualifications/{sequence:int}/revocations", summary="Revoke a qualified-investor status",
          opt=allow(Role.operator, writes=True, if_match=True))
    async def revoke(self, request: Request, investor_id: FromPath[str], sequence: FromPath[int],
                     data: JSONBody[domain.RevokeQualification]) -> Response[Any]:
        return await run_command(request, command="RevokeQualification",
                                 body={"investor_id": investor_id, "sequence": sequence, **msgspec.to_builtins(data)},
                                 handler=service.revoke_qualification(investor_id, sequence, data), reason=data.reason,
                                 streams=[service.investor_stream(investor_id)])

    @get("/{investor_id:str}/qualifications", summary="Qualified-investor statuses, and whether qualified on a date",
         opt=allow(*READ_ALL, own=(Role.investor,)))
    async def statuses(self, request: Request, state: State, investor_id: FromPath[str],
                       as_of: FromQuery[dt.date | None] = None) -> QualificationReport:
        ensure_own(identity_of(request), Role.investor, investor_id)
        day = as_of or business_date(state.db.writer.clock())  # the business date's one seam
        async with state.db.connection() as conn:
            await service.get_investor(conn, investor_id)
            items = await service.qualifications(conn, investor_id)
            qualified = await service.investor_is_qualified(conn, investor_id, day)
        return QualificationReport(investor_id=investor_id, as_of=day, qualified=qualified, statuses=items)


class ThresholdController(Controller):
    path = "/qualification-thresholds"
    tags = ["parties · 投资者"]

    @get("/", summary="The 合格投资者 thresholds in force, with their source", opt=allow(*tuple(Role)))
    async def thresholds(self, state: State) -> QualificationThresholds:
        return state.settings.qualification_thresholds


class QualificationReport(msgspec.Struct, kw_only=True, frozen=True):
    investor_id: str
    as_of: dt.date
    qualified: bool
    statuses: list[QualificationView]


ACCOUNT_ACTION = allow(Role.operator, writes=True, if_match=True)


class AccountController(Controller):
    path = "/accounts"
    tags = ["parties · 账户"]

    @get("/", summary="Accounts", opt=allow(*READ_ALL))
    async def list_all(self, state: State, after: After = None, limit: Limit = None,
                       status: FromQuery[domain.AccountStatus | None] = None,
                       investor_id: FromQuery[str | None] = None) -> Page[AccountView]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_accounts(conn, investor_id=investor_id, after=after, limit=n, status=status)
        return page(items, n, lambda a: a.account_id)

    @get("/{account_id:str}", summary="One account", opt=allow(*READ_ALL, own=(Role.investor,)), response_headers=ETAG)
    async def one(self, request: Request, state: State, account_id: FromPath[str]) -> Response[AccountView]:
        async with state.db.connection() as conn:
            await ensure_account_owner(request, conn, account_id)
            view = await service.get_account(conn, account_id)
            return with_etag(view, await stream_version(conn, service.account_stream(account_id)))

    @post("/{account_id:str}/freezes", summary="Freeze an account (冻结) on a court order or regulator's demand",
          opt=ACCOUNT_ACTION, status_code=200)
    async def freeze(self, request: Request, account_id: FromPath[str], data: JSONBody[domain.FreezeAccount]) -> Response[Any]:
        return await _account_action(request, "FreezeAccount", account_id, data, service.freeze_account)

    @post("/{account_id:str}/thaws", summary="Thaw a frozen account (解冻)", opt=ACCOUNT_ACTION, status_code=200)
    async def thaw(self, request: Request, account_id: FromPath[str], data: JSONBody[domain.ThawAccount]) -> Response[Any]:
        return await _account_action(request, "ThawAccount", account_id, data, service.thaw_account)

    @post("/{account_id:str}/closures", summary="Close an empty account (销户)", opt=ACCOUNT_ACTION, status_code=200)
    async def close(self, request: Request, account_id: FromPath[str], data: JSONBody[domain.CloseAccount]) -> Response[Any]:
        return await _account_action(request, "CloseAccount", account_id, data, service.close_account)


async def _account_action(request: Request, command: str, account_id: str, data: Any, make_handler: Any) -> Response[Any]:
    """One account lifecycle command on the account's own stream (so If-Match applies)."""
    return await run_command(request, command=command, body={"account_id": account_id, **msgspec.to_builtins(data)},
                             handler=make_handler(account_id, data), reason=data.reason,
                             streams=[service.account_stream(account_id)])


async def ensure_account_owner(request: Request, conn: Any, account_id: str) -> None:
    """An investor reaches only its own accounts; a missing account looks the same as someone else's."""
    identity = identity_of(request)
    if identity.role is Role.investor and await service.account_owner(conn, account_id) != identity.subject:
        raise Forbidden("you may only act on your own records")
    if identity.role is Role.enterprise:
        raise Forbidden("you may only act on your own records")
