"""HTTP for four-eyes: request an action, list what awaits a second operator, approve or reject."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.access.policy import READ_ALL, allow
from registry.access.tokens import Role
from registry.approvals import domain, service
from registry.approvals.service import ApprovalView
from registry.errors import BadRequest
from registry.http.commands import run_command
from registry.http.pagination import Page, clamp_limit, page
from registry.http.params import After, Limit


class ActionInfo(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    title: str


class ApprovalController(Controller):
    path = "/approvals"
    tags = ["four-eyes · 双人复核"]

    @post("/", summary="Request an action that a second operator must approve", opt=allow(Role.operator, writes=True))
    async def request_action(self, request: Request, data: JSONBody[domain.RequestApproval]) -> Response[Any]:
        return await run_command(request, command="RequestApproval", body=data,
                                 handler=service.request_approval(data), reason=data.reason)

    @get("/", summary="Approval requests (e.g. ?status=pending: the queue awaiting a second operator)",
         opt=allow(*READ_ALL))
    async def list_all(self, state: State,
                       after: After = None, limit: Limit = None,
                       status: FromQuery[domain.ApprovalStatus | None] = None,
                       action: FromQuery[str | None] = None) -> Page[ApprovalView]:
        if action is not None and action not in service.ACTIONS:
            raise BadRequest(f"{action!r} is not an approvable action (GET /approvals/actions lists them)",
                             parameter="action", allowed=sorted(service.ACTIONS))
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await service.list_approvals(conn, after=after, limit=n, status=status, action=action)
        return page(items, n, lambda a: a.approval_id)

    @get("/actions", summary="Actions that need a second operator", opt=allow(*READ_ALL))
    async def actions(self) -> list[ActionInfo]:
        return [ActionInfo(name=a.name, title=a.title) for a in sorted(service.ACTIONS.values(), key=lambda a: a.name)]

    @get("/{approval_id:str}", summary="One approval request", opt=allow(*READ_ALL))
    async def one(self, state: State, approval_id: FromPath[str]) -> ApprovalView:
        async with state.db.connection() as conn:
            return await service.get_approval(conn, approval_id)

    @post("/{approval_id:str}/approve", summary="Approve (by a second operator); the action runs now",
          opt=allow(Role.operator, writes=True), status_code=200)
    async def approve(self, request: Request, approval_id: FromPath[str],
                      data: JSONBody[domain.Decide]) -> Response[Any]:
        return await run_command(request, command="ApproveRequest", body={"approval_id": approval_id, **msgspec.to_builtins(data)},
                                 handler=service.approve(approval_id, data), reason=data.reason or None)

    @post("/{approval_id:str}/reject", summary="Reject (by a second operator), with a reason",
          opt=allow(Role.operator, writes=True), status_code=200)
    async def reject(self, request: Request, approval_id: FromPath[str],
                     data: JSONBody[domain.Decide]) -> Response[Any]:
        return await run_command(request, command="RejectRequest", body={"approval_id": approval_id, **msgspec.to_builtins(data)},
                                 handler=service.reject(approval_id, data), reason=data.reason or None)
